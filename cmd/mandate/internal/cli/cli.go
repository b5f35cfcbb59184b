// Package cli implements the mandate command's subcommands, so that
// cmd/mandate stays a thin entry point and every subcommand is testable.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/mandate-gw/mandate/gateway"
)

const usage = `Mandate — the enterprise MCP gateway that calls every platform as the user.

Usage:
  mandate serve    --config FILE     run the gateway
  mandate validate --config FILE     check a configuration file (exit 1 with every problem)
  mandate explain  --config FILE --user-claims claims.json --tool NAME
                                     show the policy decision for one user and tool
  mandate audit verify [--allow-restarts] FILE...
                                     check the audit log's hash chain
  mandate health   --url URL         probe a running gateway (exit 0 on HTTP 200)
  mandate version                    print the version

Run "mandate COMMAND -h" for a command's flags. The self-contained demo is a
separate program: go run ./cmd/mandate-demo [--tour]
`

// demoMoved is what `mandate demo` prints: the demo left this binary.
const demoMoved = "mandate demo: the demo is a separate program; from a checkout of the source run: go run ./cmd/mandate-demo [--tour]"

// Main runs one subcommand and returns the process exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "serve":
		err = serve(ctx, rest, stderr)
	case "validate":
		err = validate(rest, stdout, stderr)
	case "explain":
		err = explain(rest, stdout)
	case "audit":
		err = auditCmd(rest, stdout)
	case "health":
		err = health(rest, stdout)
	case "demo":
		// The demo is its own binary, so this one carries no IdP and no
		// sandbox; point whoever remembers the old command at it.
		fmt.Fprintln(stderr, demoMoved)
		return 2
	case "version":
		fmt.Fprintln(stdout, "mandate", gateway.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "mandate: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if errors.Is(err, errDenied) {
			return 1
		}
		var ue usageError
		if errors.As(err, &ue) {
			fmt.Fprintln(stderr, "mandate "+cmd+":", err)
			return 2
		}
		fmt.Fprintln(stderr, err)
		return 1
	}
	return 0
}

type usageError struct{ error }

func newFlags(name string, out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(out)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := newFlags("serve", stderr)
	path := fs.String("config", "config.yaml", "configuration file")
	level := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Errorf("--log-level: %v", err)}
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: lv}))
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	return gateway.Serve(ctx, cfg, gateway.Options{Logger: logger, ConfigPath: *path})
}

func validate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", stdout)
	path := fs.String("config", "config.yaml", "configuration file")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		return err
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintf(stderr, "%s: warning: %s\n", *path, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n", *path)
	return nil
}
