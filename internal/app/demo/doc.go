// Package demo is the program behind cmd/mandate-demo (Main): Mandate's
// mission in one process on 127.0.0.1, with nothing to install. It starts
//
//   - the demo IdP (internal/app/devidp: zitadel's OpenID Provider) with four
//     users — rita (sales rep), morgan (her manager), ivy (IT service desk)
//     and oscar (marketing) — whose emails are the users of the sandboxes'
//     seed data, and a confidential client for the gateway's RFC 8693 token
//     exchanges;
//   - the Salesforce sandbox, with a connected app trusting an RSA key
//     generated at start (written 0600 into the demo directory) and
//     pre-authorizing the demo users: Mandate calls it as the user with an
//     RFC 7523 jwt_bearer assertion whose sub is the user's email;
//   - the ServiceNow sandbox, trusting the IdP's tokens whose aud is
//     ServiceNowClientID: Mandate exchanges the user's token for one;
//   - kb, an internal MCP server (go-sdk) that verifies tokens against the
//     IdP's JWKS with aud = KBAudience and answers from the user's roles;
//     Mandate reaches it by token exchange;
//   - tracker (internal/app/tracker), a Jira-like MCP server whose own
//     authorization server (a second devidp, users tracker-<name>) does not
//     trust the IdP and asks each user's consent: Mandate, its confidential
//     client (redirect URI public URL + /connect/callback), reaches it with
//     each user's own grant (flow authorization_code, configured once that
//     flow is in the build);
//   - the gateway, from a config.yaml it writes into the demo directory
//     (gateway.ParseConfig on the written bytes: what is printed is what
//     runs), with a policy that hides Salesforce from non-sales users and
//     denies servicenow update_incident to non-IT users, and a file audit log.
//
// Run prints the MCP URL, a token per user and MCP Inspector commands and
// serves until its context ends. Tour runs the same questions as every user
// through the real gateway with the go-sdk client and prints, side by side,
// what each saw and the audit lines the calls produced.
//
// Usage:
//
//	err := demo.Run(ctx, demo.Options{Ports: demo.PortsFrom(8080)}, os.Stdout) // until Ctrl-C
//	err = demo.Tour(ctx, demo.Options{}, os.Stdout)                             // free ports, then exit
//
//	d, err := demo.Start(ctx, demo.Options{Dir: t.TempDir()}) // for tests
//	defer d.Close()
//	rita, _ := d.User("rita")
//	cs, err := d.Connect(ctx, rita) // an MCP session to the gateway as rita
//
// A port that is taken is a *PortInUseError naming the port and the flag
// that moves it. Zero Options work: files (mode 0600) in a new private
// directory under os.TempDir() (mandate-demo-*, mode 0700), free ports,
// 8 h tokens, no logs.
package demo
