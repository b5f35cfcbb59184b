package demo

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// Main runs `mandate-demo [--tour] [flags]` (cmd/mandate-demo) and returns
// the process exit code: 0 on success or -h, 2 for a usage error (one line
// starting "mandate-demo: "), 1 for any other error (one line, e.g. a
// *PortInUseError).
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runCLI(ctx, args, stdout, stderr)
	var ue usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "mandate-demo:", err)
		return 2
	default:
		fmt.Fprintln(stderr, err)
		return 1
	}
}

type usageError struct{ error }

func runCLI(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mandate-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: go run ./cmd/mandate-demo [--tour] [flags]

Runs Mandate with an embedded IdP, Salesforce and ServiceNow sandboxes, an
example MCP server and an issue tracker with its own authorization server,
all on 127.0.0.1, and prints the MCP URL, a token per demo
user and MCP Inspector commands; serves until Ctrl-C. With --tour, runs a
scripted tour as every demo user, prints what each saw and the audit lines,
and exits.

Flags:
`)
		fs.PrintDefaults()
	}
	tour := fs.Bool("tour", false, "run the scripted tour through the gateway as every demo user, print the comparison and the audit lines, then exit")
	dir := fs.String("dir", "", "directory for the generated config.yaml, keys and audit log, private to you (default: a new $TMPDIR/"+DefaultDirName+"-* directory, mode 0700)")
	base := fs.Int("port-base", DefaultPortBase, fmt.Sprintf("gateway port; the IdP, Salesforce, ServiceNow, kb, tracker and the tracker's authorization server use the next %d (--tour uses free ports unless set)", PortCount-1))
	ports := map[string]*int{}
	for _, c := range Components {
		ports[c] = fs.Int(PortFlags[c][2:], 0, "port of the demo "+c+" (overrides --port-base)")
	}
	level := fs.String("log-level", "warn", "log level of the servers' logs on stderr: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))}
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Errorf("--log-level: %v", err)}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var p Ports
	if !*tour || set["port-base"] {
		if *base < 1 || *base > 65536-PortCount {
			return usageError{fmt.Errorf("--port-base: %d is not a port between 1 and %d", *base, 65536-PortCount)}
		}
		p = PortsFrom(*base)
	}
	for c, v := range ports {
		name := PortFlags[c][2:]
		if !set[name] {
			continue
		}
		if *v < 0 || *v > 65535 {
			return usageError{fmt.Errorf("--%s: %d is not a port (0 picks a free one)", name, *v)}
		}
		switch c {
		case CompGateway:
			p.Gateway = *v
		case CompIdP:
			p.IdP = *v
		case CompSalesforce:
			p.Salesforce = *v
		case CompServiceNow:
			p.ServiceNow = *v
		case CompKB:
			p.KB = *v
		case CompTracker:
			p.Tracker = *v
		case CompTrackerAS:
			p.TrackerAS = *v
		}
	}
	opts := Options{Dir: *dir, Ports: p, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))}
	if *tour {
		return Tour(ctx, opts, stdout)
	}
	return Run(ctx, opts, stdout)
}
