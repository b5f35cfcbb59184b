package demo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// InspectorPackage is the MCP Inspector release the printed commands use.
// Its CLI needs Node.js 22.19 or later (older Node makes npm pick an old
// Inspector without --header).
const InspectorPackage = "@modelcontextprotocol/inspector@2.12.0"

// Run starts the demo, writes how to use it to w (URLs, files, a token per
// user, MCP Inspector commands) and serves until ctx is done (Ctrl-C).
func Run(ctx context.Context, opts Options, w io.Writer) error {
	d, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	if err := d.WriteBanner(w); err != nil {
		_ = d.Close()
		return err
	}
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		d.watchConfig(wctx, w, ConfigPollInterval)
	}()
	select {
	case <-ctx.Done():
	case err = <-d.served:
		d.served = nil
	}
	stopWatch()
	<-watched
	if err != nil {
		_ = d.Close()
		return fmt.Errorf("gateway stopped: %w", err)
	}
	fmt.Fprintln(w, "\nStopping the demo.")
	return d.Close()
}

// ConfigPollInterval is how often Run checks config.yaml for edits.
const ConfigPollInterval = time.Second

// watchConfig applies edits of config.yaml to the running gateway (a
// reload: upstreams and policy change for new requests; sessions are told
// their lists changed) and says so on w; an invalid edit is reported and
// the previous configuration keeps serving.
func (d *Demo) watchConfig(ctx context.Context, w io.Writer, every time.Duration) {
	last := d.Config
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur, err := os.ReadFile(d.ConfigPath)
		if err != nil || bytes.Equal(cur, last) {
			continue
		}
		last = cur
		warnings, err := d.gw.ReloadFile(d.ConfigPath)
		if err != nil {
			fmt.Fprintf(w, "\n%s changed but was rejected; the previous configuration keeps serving:\n%v\n", d.ConfigPath, err)
			continue
		}
		fmt.Fprintf(w, "\n%s changed: reloaded (new requests use it; sessions are told their tool lists changed).\n", d.ConfigPath)
		for _, wn := range warnings {
			fmt.Fprintf(w, "  note: %s\n", wn)
		}
	}
}

// EnvName is the shell variable the banner stores u's token in (RITA_TOKEN).
func EnvName(u User) string { return strings.ToUpper(u.Name) + "_TOKEN" }

// InspectorCommand is a copy-pasteable MCP Inspector CLI command that calls
// method on the gateway with the token in the shell variable tokenVar.
// extra are more CLI arguments (e.g. --tool-name NAME).
func (d *Demo) InspectorCommand(tokenVar, method string, extra ...string) string {
	cmd := fmt.Sprintf(`npx -y %s --cli %s --transport http --method %s --header "Authorization: Bearer $%s"`,
		InspectorPackage, d.MCPURL, method, tokenVar)
	if len(extra) > 0 {
		cmd += " " + strings.Join(extra, " ")
	}
	return cmd
}

// WriteBanner writes the running demo's URLs, files, tokens and example
// commands.
func (d *Demo) WriteBanner(w io.Writer) error {
	bw := &errWriter{w: w}
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\n", args...) }
	p("Mandate demo is running on 127.0.0.1 (Ctrl-C stops it).")
	p("")
	p("  MCP endpoint  %s", d.MCPURL)
	p("                (paste it into Claude, VS Code, Cursor or Claude Code: the client signs in by itself at the demo IdP — pick a user, no password; docs/connect-clients.md)")
	p("  config        %s   (the file the gateway runs; try `go run ./cmd/mandate validate --config %s`)", d.ConfigPath, d.ConfigPath)
	p("  audit log     %s   (one JSON line per operation: tail -f it)", d.AuditPath)
	p("  IdP           %s   (zitadel OP: issuer, JWKS, RFC 8693 token exchange)", d.Issuer)
	p("  Salesforce    %s   (sandbox org; Mandate signs jwt_bearer assertions as the user)", d.SalesforceURL)
	p("  ServiceNow    %s   (sandbox instance; token exchange for the user)", d.ServiceNowURL)
	p("  kb            %s/mcp   (an internal MCP server; token exchange for the user)", d.KBURL)
	p("  tracker       %s   (an issue tracker whose own authorization server %s asks each user's consent: users connect once)", d.TrackerURL, d.TrackerIssuer)
	p("")
	p("Demo users — paste these lines into your shell (tokens valid for hours, aud = the MCP endpoint):")
	for _, u := range d.Users {
		roles := strings.Join(u.Roles, ", ")
		if roles == "" {
			roles = "none"
		}
		p("  # %s <%s>, %s; roles: %s", u.Name, u.Email, u.About, roles)
		p("  export %s=%s", EnvName(u), u.Token)
	}
	p("")
	p("Then list and call tools as a user with the MCP Inspector CLI (needs Node.js >= 22.19):")
	p("  %s", d.InspectorCommand("RITA_TOKEN", "tools/list"))
	p("  %s", d.InspectorCommand("RITA_TOKEN", "tools/call", "--tool-name", ToolPipeline))
	p("  %s", d.InspectorCommand("IVY_TOKEN", "tools/call", "--tool-name", ToolIncidents))
	p("Compare users: swap RITA_TOKEN for MORGAN_TOKEN, IVY_TOKEN or OSCAR_TOKEN.")
	p("Edit the policy in %s and save: the running gateway reloads it.", d.ConfigPath)
	p("`go run ./cmd/mandate-demo --tour` shows it all at once.")
	return bw.err
}
