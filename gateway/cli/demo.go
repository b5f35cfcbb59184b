package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	mdemo "github.com/mandate-gw/mandate/internal/demo"
)

// demo runs `mandate demo [--tour]`: the self-contained demo (IdP,
// Salesforce and ServiceNow sandboxes, an MCP upstream and the gateway).
func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: mandate demo [--tour] [flags]

Runs Mandate with an embedded IdP, Salesforce and ServiceNow sandboxes and an
example MCP server, all on 127.0.0.1, and prints the MCP URL, a token per demo
user and MCP Inspector commands; serves until Ctrl-C. With --tour, runs a
scripted tour as every demo user, prints what each saw and the audit lines,
and exits.

Flags:
`)
		fs.PrintDefaults()
	}
	tour := fs.Bool("tour", false, "run the scripted tour through the gateway as every demo user, print the comparison and the audit lines, then exit")
	dir := fs.String("dir", "", "directory for the generated config.yaml, keys and audit log, private to you (default: a new $TMPDIR/"+mdemo.DefaultDirName+"-* directory, mode 0700)")
	base := fs.Int("port-base", mdemo.DefaultPortBase, "gateway port; the IdP, Salesforce, ServiceNow and kb use the next four (--tour uses free ports unless set)")
	ports := map[string]*int{}
	for _, c := range []string{mdemo.CompGateway, mdemo.CompIdP, mdemo.CompSalesforce, mdemo.CompServiceNow, mdemo.CompKB} {
		ports[c] = fs.Int(mdemo.PortFlags[c][2:], 0, "port of the demo "+c+" (overrides --port-base)")
	}
	level := fs.String("log-level", "warn", "log level of the servers' logs on stderr: debug, info, warn, error")
	if err := parse(fs, args); err != nil {
		return err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return usageError{fmt.Errorf("--log-level: %v", err)}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var p mdemo.Ports
	if !*tour || set["port-base"] {
		if *base < 1 || *base > 65535-4 {
			return usageError{fmt.Errorf("--port-base: %d is not a port between 1 and 65531", *base)}
		}
		p = mdemo.PortsFrom(*base)
	}
	for c, v := range ports {
		name := mdemo.PortFlags[c][2:]
		if !set[name] {
			continue
		}
		if *v < 0 || *v > 65535 {
			return usageError{fmt.Errorf("--%s: %d is not a port (0 picks a free one)", name, *v)}
		}
		switch c {
		case mdemo.CompGateway:
			p.Gateway = *v
		case mdemo.CompIdP:
			p.IdP = *v
		case mdemo.CompSalesforce:
			p.Salesforce = *v
		case mdemo.CompServiceNow:
			p.ServiceNow = *v
		case mdemo.CompKB:
			p.KB = *v
		}
	}
	opts := mdemo.Options{Dir: *dir, Ports: p, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))}
	if *tour {
		return mdemo.Tour(ctx, opts, stdout)
	}
	return mdemo.Run(ctx, opts, stdout)
}
