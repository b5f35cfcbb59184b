package tracker_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/testenv/webtest"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/app/tracker"
)

const (
	clientID = "mandate"
	secret   = "mandate-secret"
	callback = "http://127.0.0.1:1/connect/callback"
)

func start(t *testing.T) *tracker.Tracker {
	t.Helper()
	tr, err := tracker.Start(t.Context(), tracker.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tr.Close() })
	if err := tr.RegisterClient(clientID, secret, []string{callback}); err != nil {
		t.Fatal(err)
	}
	return tr
}

func getJSON(t *testing.T, u string, v any) { webtest.GetJSON(t, u, v) }

// TestDiscovery: the MCP authorization spec's discovery from a 401.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	tr := start(t)
	resp, err := http.Post(tr.MCPURL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wa := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != 401 || !strings.HasPrefix(wa, "Bearer ") ||
		!strings.Contains(wa, `resource_metadata="`+tr.ResourceMetadataURL()+`"`) || !strings.Contains(wa, tracker.Scope) {
		t.Fatalf("no token: HTTP %d WWW-Authenticate %q", resp.StatusCode, wa)
	}
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	for _, u := range []string{tr.ResourceMetadataURL(), tr.URL + "/.well-known/oauth-protected-resource"} {
		getJSON(t, u, &prm)
		if prm.Resource != tr.MCPURL || !slices.Equal(prm.AuthorizationServers, []string{tr.AS.Issuer()}) {
			t.Errorf("%s: %+v, want resource %s and the tracker AS %s", u, prm, tr.MCPURL, tr.AS.Issuer())
		}
	}
	var asm struct {
		Issuer                string   `json:"issuer"`
		AuthorizationEndpoint string   `json:"authorization_endpoint"`
		TokenEndpoint         string   `json:"token_endpoint"`
		PKCE                  []string `json:"code_challenge_methods_supported"`
	}
	getJSON(t, tr.AS.Issuer()+"/.well-known/oauth-authorization-server", &asm)
	if asm.Issuer != tr.AS.Issuer() || !strings.HasSuffix(asm.AuthorizationEndpoint, "/authorize") ||
		asm.TokenEndpoint != tr.AS.TokenURL() || !slices.Contains(asm.PKCE, "S256") {
		t.Errorf("RFC 8414 metadata: %+v", asm)
	}
}

// connect signs name in at the tracker AS headlessly (login_hint, consent
// with decision=allow) and redeems the code as Mandate would.
func connect(t *testing.T, tr *tracker.Tracker, name string) *oauth2.Token {
	t.Helper()
	cfg := oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: callback, Scopes: tracker.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: tr.AS.AuthorizationURL(), TokenURL: tr.AS.TokenURL()}}
	verifier := oauth2.GenerateVerifier()
	h := tracker.NewHeadless(name)
	h.StopAt = func(u *url.URL) bool { return strings.HasPrefix(u.String(), callback) }
	p, err := h.Open(t.Context(), cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("resource", tr.MCPURL)))
	if err != nil {
		t.Fatalf("headless sign-in as %s: %v (steps %v)", name, err, p.Steps)
	}
	if p.Forms != 1 {
		t.Errorf("%s: %d consent forms posted, want 1 (the tracker asks consent)", name, p.Forms)
	}
	code := p.URL.Query().Get("code")
	if code == "" || p.URL.Query().Get("state") != "st" {
		t.Fatalf("%s: ended at %s, want the callback with a code", name, p.URL.Redacted())
	}
	tok, err := cfg.Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("%s: code exchange: %v", name, err)
	}
	if tok.RefreshToken == "" {
		t.Errorf("%s: no refresh token with offline_access", name)
	}
	return tok
}

type bearer struct{ tok string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.tok)
	return http.DefaultTransport.RoundTrip(r)
}

func myIssues(ctx context.Context, tr *tracker.Tracker, tok string) (*mcp.CallToolResult, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tr.MCPURL, HTTPClient: &http.Client{Transport: bearer{tok}}}, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()
	return cs.CallTool(ctx, &mcp.CallToolParams{Name: tracker.ToolMyIssues})
}

func text(r *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range r.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// TestMyIssuesAfterConsent: each user consents once and sees only their
// own issues, named by their tracker identity.
func TestMyIssuesAfterConsent(t *testing.T) {
	t.Parallel()
	tr := start(t)
	for _, c := range []struct{ name, own, other string }{
		{"rita", "SALES-101", "IT-311"},
		{"ivy", "IT-311", "SALES-101"},
	} {
		tok := connect(t, tr, c.name)
		res, err := myIssues(t.Context(), tr, tok.AccessToken)
		if err != nil {
			t.Fatalf("%s: my_issues: %v", c.name, err)
		}
		sub, email := tracker.Identity(c.name)
		txt := text(res)
		if res.IsError || !strings.Contains(txt, sub) || !strings.Contains(txt, email) || !strings.Contains(txt, c.own) || strings.Contains(txt, c.other) {
			t.Errorf("%s: my_issues = %q, want %s's own issues naming %s", c.name, txt, c.name, sub)
		}
	}
}

// TestRefusedTokens: a token of the tracker AS for another audience, one
// without the scope, and one of another issuer are refused.
func TestRefusedTokens(t *testing.T) {
	t.Parallel()
	tr := start(t)
	other, err := devidp.Start(t.Context(), devidp.Options{Users: []devidp.User{{ID: "tracker-rita", Username: "rita"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	for name, mk := range map[string]func() (string, error){
		"wrong audience": func() (string, error) {
			return tr.AS.Token(t.Context(), "rita", devidp.TokenOptions{Audience: []string{"https://elsewhere"}, Scopes: []string{tracker.Scope}})
		},
		"no scope": func() (string, error) {
			return tr.AS.Token(t.Context(), "rita", devidp.TokenOptions{Audience: []string{tr.MCPURL}})
		},
		"other issuer": func() (string, error) {
			return other.Token(t.Context(), "rita", devidp.TokenOptions{Audience: []string{tr.MCPURL}, Scopes: []string{tracker.Scope}})
		},
	} {
		tok, err := mk()
		if err != nil {
			t.Fatal(err)
		}
		if res, err := myIssues(t.Context(), tr, tok); err == nil {
			t.Errorf("%s: accepted: %q", name, text(res))
		}
	}
	// The control: a right token works.
	tok, err := tr.AS.Token(t.Context(), "rita", devidp.TokenOptions{Audience: []string{tr.MCPURL}, Scopes: []string{tracker.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := myIssues(t.Context(), tr, tok); err != nil {
		t.Errorf("valid token refused: %v", err)
	}
}
