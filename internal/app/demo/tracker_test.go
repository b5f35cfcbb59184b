package demo

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"
	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/internal/app/tracker"
)

// TestPortsFrom: --port-base uses PortCount consecutive distinct ports
// (at most 16, the budget other tools rely on), one per component.
func TestPortsFrom(t *testing.T) {
	p := PortsFrom(8080)
	got := []int{p.Gateway, p.IdP, p.Salesforce, p.ServiceNow, p.KB, p.Tracker, p.TrackerAS}
	if len(got) != len(Components) || PortCount != len(Components) || PortCount > 16 {
		t.Fatalf("%d ports for %d components, PortCount %d", len(got), len(Components), PortCount)
	}
	for i, port := range got {
		if port != 8080+i {
			t.Errorf("%s: port %d, want %d", Components[i], port, 8080+i)
		}
	}
}

// TestDemoStartsTracker: the demo runs the tracker (401 with its resource
// metadata) and its authorization server, where Mandate is a confidential
// client whose redirect URI is the connect callback: a headless user
// (login_hint, consent decision=allow) reaches that callback with a code
// that Mandate's secret redeems for a token the tracker accepts.
func TestDemoStartsTracker(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	d, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	resp, err := http.Post(d.TrackerURL, "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("tracker without a token: HTTP %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	secret, err := os.ReadFile(filepath.Join(d.Dir, TrackerSecretFile))
	if err != nil {
		t.Fatal(err)
	}
	publicURL := strings.TrimSuffix(d.MCPURL, "/mcp")
	cfg := oauth2.Config{ClientID: GatewayClientID, ClientSecret: strings.TrimSpace(string(secret)),
		RedirectURL: publicURL + connect.PathCallback, Scopes: tracker.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: d.TrackerIssuer + "/authorize", TokenURL: d.TrackerIssuer + "/oauth/token"}}
	verifier := oauth2.GenerateVerifier()
	h := tracker.NewHeadless("rita")
	h.StopAt = func(u *url.URL) bool { return strings.HasPrefix(u.String(), cfg.RedirectURL) }
	p, err := h.Open(ctx, cfg.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)))
	if err != nil || p.Forms != 1 || p.URL.Query().Get("code") == "" {
		t.Fatalf("consent at the tracker AS: %v, %d forms, ended at %v", err, p.Forms, p.URL)
	}
	tok, err := cfg.Exchange(ctx, p.URL.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("redeeming with Mandate's tracker secret: %v", err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.TrackerURL,
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("tracker refused the token Mandate got: HTTP %d", resp.StatusCode)
	}
}

// TestTrackerConfig: with the authorization_code flow available, the
// generated configuration has the tracker upstream (kind mcp, the tracker
// AS's endpoints, Mandate's client, the tracker's scopes) and a rule that
// lets every user use it.
func TestTrackerConfig(t *testing.T) {
	b, err := renderConfigWith(configParams{TrackerURL: "http://127.0.0.1:1/mcp", TrackerAuthURL: "http://127.0.0.1:2/authorize",
		TrackerTokenURL: "http://127.0.0.1:2/oauth/token", TrackerSecretFile: "/s"}, "/c.yaml", true)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Upstreams []struct {
			Name, Kind, URL string
			Credentials     map[string]any
		}
		Policy struct {
			Rules []struct{ Name, Effect, When string }
		}
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	var found bool
	for _, u := range doc.Upstreams {
		if u.Name != "tracker" {
			continue
		}
		found = true
		c := u.Credentials
		if u.Kind != "mcp" || u.URL != "http://127.0.0.1:1/mcp" || c["flow"] != TrackerFlow ||
			c["authorization_url"] != "http://127.0.0.1:2/authorize" || c["token_url"] != "http://127.0.0.1:2/oauth/token" ||
			c["client_id"] != GatewayClientID || c["client_secret_file"] != "/s" {
			t.Errorf("tracker upstream: %+v", u)
		}
		if s, _ := c["scopes"].([]any); len(s) != len(tracker.Scopes) || s[2] != tracker.Scope {
			t.Errorf("scopes %v, want %v", c["scopes"], tracker.Scopes)
		}
	}
	if !found {
		t.Fatalf("no tracker upstream:\n%s", b)
	}
	var rule bool
	for _, r := range doc.Policy.Rules {
		rule = rule || (r.Effect == "allow" && r.When == `upstream == "tracker"`)
	}
	if !rule {
		t.Error("no rule allows the tracker to everyone")
	}
}
