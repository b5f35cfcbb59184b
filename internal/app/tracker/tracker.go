// Package tracker is the demo's Jira-like issue tracker: an MCP server
// (go-sdk) on loopback that is an OAuth resource server per the MCP
// authorization spec, with its own authorization server — a devidp
// instance with the tracker's own users that asks each user's consent —
// which does NOT trust the company IdP. Mandate reaches it only with each
// user's own grant (credentials flow authorization_code): the demo of
// per-user grants (issue 16).
//
//   - Unauthenticated or invalid requests to /mcp get 401 with
//     WWW-Authenticate: Bearer resource_metadata="<base>/.well-known/oauth-protected-resource/mcp", scope="…".
//   - RFC 9728 protected resource metadata at that URL and at
//     /.well-known/oauth-protected-resource: resource = MCPURL exactly,
//     authorization_servers = [the tracker AS issuer].
//   - Access tokens: the AS's RS256 JWTs, verified against its JWKS, with
//     aud containing MCPURL and scope containing Scope.
//   - Tool my_issues: the caller's own issues, naming the caller's tracker
//     identity (sub tracker-<name>, email <name>@tracker.example).
//
// The AS's /authorize accepts login_hint=<demo user name> (signs that
// passwordless user in) and then shows a plain HTML consent page with one
// <form method="post">, approved by posting its fields with decision=allow
// (devidp Options.Consent).
//
// Usage:
//
//	t, err := tracker.Start(ctx, tracker.Options{})
//	defer t.Close()
//	err = t.RegisterClient("mandate", secret, []string{publicURL + "/connect/callback"})
//	// t.MCPURL, t.AS.Issuer(), t.AS.AuthorizationURL(), t.AS.TokenURL()
package tracker

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	// MCPPath is the MCP endpoint's path on the tracker server.
	MCPPath = "/mcp"
	// Scope is the scope a token needs to call the tracker.
	Scope = "issues.read"
	// ToolMyIssues is the tracker's tool (Mandate lists it as tracker_my_issues).
	ToolMyIssues = "my_issues"
	// IdentityPrefix and EmailDomain make a demo user's tracker identity:
	// sub tracker-rita, email rita@tracker.example.
	IdentityPrefix = "tracker-"
	EmailDomain    = "tracker.example"
	// prmPath is the RFC 9728 metadata of the MCP endpoint.
	prmPath = "/.well-known/oauth-protected-resource"
)

// Scopes are the scopes a client (Mandate) asks the tracker AS for: an
// OpenID sign-in, a refresh token, and reading issues.
var Scopes = []string{"openid", "offline_access", Scope}

// DefaultUsers are the demo users with tracker accounts.
var DefaultUsers = []string{"rita", "morgan", "ivy", "oscar"}

// Issue is one tracker issue.
type Issue struct {
	Key     string `json:"key"`
	Summary string `json:"summary"`
	Status  string `json:"status"`
}

// issues are the seed data, by tracker identity (sub).
var issues = map[string][]Issue{
	IdentityPrefix + "rita": {
		{Key: "SALES-101", Summary: "Prepare the Globex renewal quote", Status: "In Progress"},
		{Key: "SALES-104", Summary: "Update the Initech contact list", Status: "To Do"},
		{Key: "SALES-107", Summary: "Send the Acme pilot recap", Status: "Done"},
	},
	IdentityPrefix + "morgan": {
		{Key: "SALES-090", Summary: "Review Q3 forecast with the team", Status: "In Progress"},
		{Key: "SALES-095", Summary: "Approve discount for Globex", Status: "To Do"},
	},
	IdentityPrefix + "ivy": {
		{Key: "IT-311", Summary: "Replace the VPN certificate", Status: "In Progress"},
		{Key: "IT-315", Summary: "Onboard two new laptops", Status: "To Do"},
		{Key: "IT-318", Summary: "Patch the build servers", Status: "To Do"},
	},
	IdentityPrefix + "oscar": {
		{Key: "MKT-042", Summary: "Draft the spring campaign brief", Status: "To Do"},
	},
}

// Identity returns the tracker identity of a demo user: its sub and email.
func Identity(name string) (sub, email string) {
	return IdentityPrefix + name, name + "@" + EmailDomain
}

// Options configure a tracker. The zero value works (free ports).
type Options struct {
	// Listener of the MCP server; nil listens on 127.0.0.1:0.
	Listener net.Listener
	// ASAddr is the authorization server's listen address; default 127.0.0.1:0.
	ASAddr string
	// Users are the demo user names with a tracker account; default DefaultUsers.
	Users []string
	// SigningKey of the AS; nil generates one.
	SigningKey *rsa.PrivateKey
	// Logger; nil discards.
	Logger *slog.Logger
}

// Tracker is a running tracker: its authorization server and MCP server.
type Tracker struct {
	// AS is the tracker's authorization server (devidp with consent).
	AS *devidp.IdP
	// URL is the MCP server's base URL; MCPURL its MCP endpoint (the
	// resource, and the aud of the tokens it accepts).
	URL, MCPURL string

	srv  *http.Server
	done chan struct{}
}

// Start starts the tracker's authorization server and MCP server.
func Start(ctx context.Context, opts Options) (_ *Tracker, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln := opts.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("tracker: %w", err)
		}
	}
	names := opts.Users
	if names == nil {
		names = DefaultUsers
	}
	users := make([]devidp.User, 0, len(names))
	for _, n := range names {
		sub, email := Identity(n)
		users = append(users, devidp.User{ID: sub, Username: n, Email: email, GivenName: strings.ToUpper(n[:1]) + n[1:]})
	}
	as, err := devidp.Start(ctx, devidp.Options{Addr: opts.ASAddr, Users: users, Consent: true, SigningKey: opts.SigningKey, Logger: log})
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("tracker authorization server: %w", err)
	}
	t := &Tracker{AS: as, URL: "http://" + ln.Addr().String(), done: make(chan struct{})}
	t.MCPURL = t.URL + MCPPath
	t.srv = &http.Server{Handler: t.handler(ctx, log), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		defer close(t.done)
		if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("tracker server stopped", "error", err.Error())
		}
	}()
	return t, nil
}

// RegisterClient registers a confidential client (Mandate) at the tracker
// AS: authorization code with PKCE and the consent page, rotating refresh
// tokens with offline_access; its access tokens are for MCPURL.
func (t *Tracker) RegisterClient(id, secret string, redirectURIs []string) error {
	if secret == "" {
		return errors.New("tracker: a client secret is required")
	}
	return t.AS.AddClient(devidp.ClientConfig{ID: id, Secret: secret, RedirectURIs: redirectURIs, Audience: []string{t.MCPURL}})
}

// ResourceMetadataURL is the RFC 9728 metadata URL of the MCP endpoint.
func (t *Tracker) ResourceMetadataURL() string { return t.URL + prmPath + MCPPath }

// Close stops the MCP server and the authorization server.
func (t *Tracker) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if t.srv.Shutdown(ctx) != nil {
		_ = t.srv.Close()
	}
	<-t.done
	return t.AS.Close()
}

func (t *Tracker) handler(ctx context.Context, log *slog.Logger) http.Handler {
	verifier := oidc.NewVerifier(t.AS.Issuer(), oidc.NewRemoteKeySet(ctx, t.AS.JWKSURL()),
		&oidc.Config{ClientID: t.MCPURL, SupportedSigningAlgs: []string{oidc.RS256}})
	verify := func(ctx context.Context, raw string, _ *http.Request) (*auth.TokenInfo, error) {
		tok, err := verifier.Verify(ctx, raw)
		if err != nil {
			log.Debug("tracker: token refused", "error", err.Error())
			return nil, fmt.Errorf("%w: %v", auth.ErrInvalidToken, err)
		}
		var claims struct {
			Email string `json:"email"`
			Scope string `json:"scope"`
		}
		if err := tok.Claims(&claims); err != nil {
			return nil, fmt.Errorf("%w: claims: %v", auth.ErrInvalidToken, err)
		}
		return &auth.TokenInfo{UserID: tok.Subject, Scopes: strings.Fields(claims.Scope), Expiration: tok.Expiry,
			Extra: map[string]any{"email": claims.Email}}, nil
	}
	server := newServer()
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, nil)
	protect := auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{
		ResourceMetadataURL: t.ResourceMetadataURL(), Scopes: []string{Scope}})
	prm := auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource:               t.MCPURL,
		AuthorizationServers:   []string{t.AS.Issuer()},
		ScopesSupported:        Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Tracker (demo)",
	})
	mux := http.NewServeMux()
	mux.Handle(MCPPath, protect(mcpHandler))
	mux.Handle(prmPath+MCPPath, prm)
	mux.Handle(prmPath, prm)
	return mux
}

// MyIssuesOutput is the structured result of my_issues.
type MyIssuesOutput struct {
	// Caller is the caller's tracker identity (the token's sub), Email its email.
	Caller string  `json:"caller"`
	Email  string  `json:"email"`
	Issues []Issue `json:"issues"`
}

func newServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "tracker", Title: "Tracker (demo issue tracker)", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{
		Name:        ToolMyIssues,
		Title:       "My issues",
		Description: "Lists the issues assigned to you in the tracker.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true},
	}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, MyIssuesOutput, error) {
		ti := req.Extra.TokenInfo
		if ti == nil || ti.UserID == "" {
			return nil, MyIssuesOutput{}, errors.New("no caller")
		}
		out := MyIssuesOutput{Caller: ti.UserID, Issues: append([]Issue{}, issues[ti.UserID]...)}
		out.Email, _ = ti.Extra["email"].(string)
		var b strings.Builder
		fmt.Fprintf(&b, "%d issue(s) assigned to %s (%s):\n", len(out.Issues), out.Email, out.Caller)
		for _, i := range out.Issues {
			fmt.Fprintf(&b, "- %s [%s] %s\n", i.Key, i.Status, i.Summary)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: b.String()}}}, out, nil
	})
	return s
}
