package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/bench"
	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// startMandate starts the demo IdP (alice, bob) and a Mandate with its
// authorization server on (SQLite storage, a key file), registered at the
// IdP as run.sh -O does it; it returns Mandate's issuer (public URL).
func startMandate(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	idp, err := devidp.Start(ctx, devidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	public := "http://" + ln.Addr().String()
	if err := idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: "mandate-secret",
		RedirectURIs: []string{public + "/oauth/callback"}, Audience: []string{public + "/mcp"}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, err := store.GenerateKey("bench")
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "storage.key")
	if err := os.WriteFile(keyFile, []byte(key.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BENCHSIGNIN_TEST_SECRET", "mandate-secret")
	cfgPath := filepath.Join(dir, "mandate.yaml")
	if err := os.WriteFile(cfgPath, []byte(fmt.Sprintf(`server:
  listen: %s
  public_url: %s
identity:
  issuer: %s
upstreams: []
policy:
  default: allow
audit:
  sink: file
  path: %s
telemetry:
  metrics: none
authorization_server:
  enabled: true
  access_token_ttl: 1h
  idp:
    client_id: mandate
    client_secret: ${BENCHSIGNIN_TEST_SECRET}
storage:
  path: %s
  encryption_keys:
    - id: bench
      key_file: %s
`, ln.Addr(), public, idp.Issuer(), filepath.Join(dir, "audit.jsonl"), filepath.Join(dir, "mandate.db"), keyFile)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := gateway.LoadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); g.Close() })
	for deadline := time.Now().Add(10 * time.Second); !g.Ready(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("mandate not ready")
		}
	}
	return public
}

type bearer struct{ token string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return http.DefaultTransport.RoundTrip(r)
}

// whoami calls Mandate's built-in whoami tool with token and returns the
// subject Mandate saw.
func whoami(t *testing.T, mcpURL, token string) string {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: mcpURL,
		HTTPClient: &http.Client{Transport: bearer{token}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	var w struct {
		Subject string `json:"subject"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &w)
	return w.Subject
}

// Every user is signed in browser-less (registration, login_hint, consent,
// code), the refresh grants rotate (concurrently, never twice on one
// token: that would revoke the family), the written tokens are Mandate's,
// in the users' order, and work on /mcp as those users; the token endpoint
// is measured.
func TestSignInAndMeasure(t *testing.T) {
	issuer := startMandate(t)
	users := []string{"alice", "bob"}
	res, toks, err := run(context.Background(), config{issuer: issuer, scope: "mcp", redirectURI: "http://127.0.0.1:9/cb",
		users: users, refreshes: 7, parallel: 2, timeout: 10 * time.Second, label: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Users != 2 || res.SignIn.Count != 2 || res.Code.Count != 2 || res.Refresh.Count != 7 ||
		res.Code.P50 <= 0 || res.Refresh.P99 < res.Refresh.P50 || res.ClientID == "" || res.Issuer != issuer {
		t.Fatalf("result = %+v", res)
	}
	path := filepath.Join(t.TempDir(), "mandate-tokens.txt")
	if err := writeTokens(path, toks); err != nil {
		t.Fatal(err)
	}
	lines, err := readLines(path)
	if err != nil || len(lines) != 2 {
		t.Fatalf("tokens file: %v %d lines", err, len(lines))
	}
	for i, want := range []string{"user-alice", "user-bob"} {
		if sub, _ := bench.UnverifiedSubject(lines[i]); sub != want {
			t.Errorf("token %d sub = %q, want %q", i, sub, want)
		}
		if got := whoami(t, issuer+"/mcp", lines[i]); got != want {
			t.Errorf("token %d: Mandate saw %q, want %q", i, got, want)
		}
	}
	b, _ := json.Marshal(res)
	for _, k := range []string{`"token_code":{`, `"token_refresh":{`, `"p50_ms":`, `"p90_ms":`, `"p99_ms":`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
}

// A user the IdP does not know stops the run with an error naming the user
// and no token in it.
func TestUnknownUser(t *testing.T) {
	issuer := startMandate(t)
	_, _, err := run(context.Background(), config{issuer: issuer, scope: "mcp", redirectURI: "http://127.0.0.1:9/cb",
		users: []string{"alice", "nobody"}, refreshes: 1, parallel: 1, timeout: 10 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("err = %v", err)
	}
	if strings.Contains(err.Error(), "code=") || strings.Contains(err.Error(), "eyJ") {
		t.Fatalf("error leaks a code or token: %v", err)
	}
}

// A wrong issuer is refused at discovery.
func TestIssuerMismatch(t *testing.T) {
	issuer := startMandate(t)
	_, _, err := run(context.Background(), config{issuer: issuer + "/", users: []string{"alice"}, parallel: 1, timeout: 5 * time.Second})
	if err == nil || !strings.Contains(err.Error(), "issuer") {
		t.Fatalf("err = %v", err)
	}
}
