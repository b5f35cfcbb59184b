package gateway

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/dispatch"
)

type testGW struct {
	g      *Gateway
	srv    *httptest.Server
	cfg    *Config
	mcpURL string
}

// startGateway serves a gateway for issuer on a loopback port and waits
// until it has loaded the IdP's keys.
func startGateway(t testing.TB, issuer string, mutate func(*Config)) *testGW {
	t.Helper()
	return startGatewayOpts(t, issuer, mutate, Options{})
}

// startGatewayOpts is startGateway with run-time options.
func startGatewayOpts(t testing.TB, issuer string, mutate func(*Config), opts Options) *testGW {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{}
	cfg.Server.PublicURL = "http://" + ln.Addr().String()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Identity.Issuer = issuer
	if mutate != nil {
		mutate(cfg)
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Config.MaxHeaderBytes = cfg.Server.MaxHeaderBytes
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); g.Close() })
	deadline := time.Now().Add(10 * time.Second)
	for !g.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready: %s", g.auth.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &testGW{g: g, srv: srv, cfg: cfg, mcpURL: cfg.MCPURL()}
}

const initBody = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"test","version":"1"}}}`

// post sends one JSON-RPC message to /mcp with the given headers.
func (tg *testGW) post(t testing.TB, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	return tg.postHost(t, body, hdr, "")
}

// postHost is post with a Host header other than the URL's (when not "").
func (tg *testGW) postHost(t testing.TB, body string, hdr map[string]string, host string) (*http.Response, string) {
	t.Helper()
	return send(t, http.MethodPost, tg.mcpURL, body, hdr, host)
}

// send sends one request (a body only when body is not "") with MCP's
// content headers, hdr, and a Host header other than the URL's when host
// is not ""; it returns the response and its body.
func send(t testing.TB, method, url, body string, hdr map[string]string, host string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, url, rd)
	if host != "" {
		req.Host = host
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

func TestAuthenticationBadInput(t *testing.T) {
	idp := newKeyIdP(t)
	other := newKeyIdP(t)
	tg := startGateway(t, idp.issuer(), func(c *Config) {
		c.Identity.RequiredScopes = []string{"mcp"}
		c.Server.MaxBodyBytes = 64 << 10
	})
	aud := tg.mcpURL
	good := idp.rs256(t, idp.stdClaims("alice", aud))
	with := func(mut func(claims)) string {
		c := idp.stdClaims("alice", aud)
		mut(c)
		return idp.rs256(t, c)
	}
	pubDER, _ := x509.MarshalPKIXPublicKey(idp.rsaKey.Public())
	hsWithPublicKey := idp.sign(t, jose.HS256, "rsa1", pubDER, idp.stdClaims("alice", aud))
	parts := strings.Split(good, ".")
	tamperedPayload := func() string {
		c := idp.stdClaims("mallory", aud)
		b, _ := json.Marshal(c)
		return parts[0] + "." + base64.RawURLEncoding.EncodeToString(b) + "." + parts[2]
	}()
	noneToken := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(mustJSON(idp.stdClaims("alice", aud))) + "."

	cases := []struct {
		name      string
		hdr       map[string]string
		body      string
		status    int
		errCode   string // expected error= in the challenge; "" = none
		challenge bool
	}{
		{"no header", nil, initBody, 401, "", true},
		{"basic", map[string]string{"Authorization": "Basic YWxpY2U6cGFzcw=="}, initBody, 401, "", true},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, initBody, 401, "invalid_token", true},
		{"not a jwt", bearer("opaque-token-value"), initBody, 401, "invalid_token", true},
		{"bad base64", bearer("ey!!.ey$$.sig"), initBody, 401, "invalid_token", true},
		{"alg none", bearer(noneToken), initBody, 401, "invalid_token", true},
		{"hs256 with public key", bearer(hsWithPublicKey), initBody, 401, "invalid_token", true},
		{"unknown kid", bearer(idp.sign(t, jose.RS256, "nope", idp.rsaKey, idp.stdClaims("alice", aud))), initBody, 401, "invalid_token", true},
		{"tampered payload", bearer(tamperedPayload), initBody, 401, "invalid_token", true},
		{"expired", bearer(with(func(c claims) { c["exp"] = time.Now().Add(-time.Hour).Unix() })), initBody, 401, "invalid_token", true},
		{"missing exp", bearer(with(func(c claims) { delete(c, "exp") })), initBody, 401, "invalid_token", true},
		{"nbf in future", bearer(with(func(c claims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), initBody, 401, "invalid_token", true},
		{"issuer without trailing slash", bearer(with(func(c claims) { c["iss"] = strings.TrimSuffix(idp.issuer(), "/") })), initBody, 401, "invalid_token", true},
		{"issuer with extra slash", bearer(with(func(c claims) { c["iss"] = idp.issuer() + "/" })), initBody, 401, "invalid_token", true},
		{"audience of another resource", bearer(with(func(c claims) { c["aud"] = []string{"https://other.example/mcp"} })), initBody, 401, "invalid_token", true},
		{"missing required scope", bearer(with(func(c claims) { c["scope"] = "openid" })), initBody, 403, "insufficient_scope", true},
		{"token of a different IdP", bearer(other.rs256(t, other.stdClaims("alice", aud))), initBody, 401, "invalid_token", true},
		{"different IdP claiming our issuer", bearer(other.rs256(t, idp.stdClaims("alice", aud))), initBody, 401, "invalid_token", true},
		{"no subject", bearer(with(func(c claims) { delete(c, "sub") })), initBody, 401, "invalid_token", true},
		{"two authorization headers", nil, initBody, 400, "invalid_request", true},
		{"1 MB header", map[string]string{"Authorization": "Bearer " + strings.Repeat("a", 1<<20)}, initBody, 431, "", false},
		{"body over the limit", bearer(good), `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"x":"` + strings.Repeat("a", 128<<10) + `"}}`, 413, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			var body string
			if tc.name == "two authorization headers" {
				req, _ := http.NewRequest(http.MethodPost, tg.mcpURL, strings.NewReader(initBody))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Accept", "application/json, text/event-stream")
				req.Header.Add("Authorization", "Bearer "+good)
				req.Header.Add("Authorization", "Bearer "+good)
				r, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				resp, body = r, string(b)
			} else {
				resp, body = tg.post(t, tc.body, tc.hdr)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, tc.status, body)
			}
			ch := resp.Header.Get("WWW-Authenticate")
			if tc.challenge {
				wantMeta := `resource_metadata="` + tg.g.resourceMetadataURL() + `"`
				if !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, wantMeta) {
					t.Errorf("challenge %q lacks %s", ch, wantMeta)
				}
				if !strings.Contains(ch, `scope="mcp"`) {
					t.Errorf("challenge %q lacks scope", ch)
				}
				if tc.errCode == "" && strings.Contains(ch, "error=") {
					t.Errorf("challenge %q has an error although no token was presented", ch)
				}
				if tc.errCode != "" && (!strings.Contains(ch, `error="`+tc.errCode+`"`) || !strings.Contains(ch, "error_description=")) {
					t.Errorf("challenge %q lacks error=%q with a description", ch, tc.errCode)
				}
			}
			if strings.Contains(ch, "\n") || strings.Contains(ch, "\r") {
				t.Errorf("challenge contains a line break: %q", ch)
			}
			// The gateway still serves the next good request.
			if resp, body := tg.post(t, initBody, bearer(good)); resp.StatusCode != http.StatusOK {
				t.Fatalf("next good request: status %d, body %s", resp.StatusCode, body)
			}
		})
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// headerTransport adds a bearer token to every request of a go-sdk client.
type headerTransport struct {
	token string
	base  http.RoundTripper
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+h.token)
	return h.base.RoundTrip(r)
}

func connect(t testing.TB, endpoint, token string) *mcp.ClientSession {
	t.Helper()
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, nil)
	cs, err := c.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, base: http.DefaultTransport}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func callWhoAmI(t testing.TB, cs *mcp.ClientSession) dispatch.WhoAmI {
	t.Helper()
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError {
		t.Fatalf("whoami failed: %+v", res.Content)
	}
	var w dispatch.WhoAmI
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &w); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWhoAmIWithCraftedTokens(t *testing.T) {
	idp := newKeyIdP(t)
	for _, mode := range []string{SessionStateful, SessionStateless} {
		t.Run(mode, func(t *testing.T) {
			tg := startGateway(t, idp.issuer(), func(c *Config) { c.Server.Session.Mode = mode })
			for _, alg := range []string{"RS256", "ES256"} {
				c := idp.stdClaims("alice", tg.mcpURL)
				tok := idp.rs256(t, c)
				if alg == "ES256" {
					tok = idp.sign(t, jose.ES256, "ec1", idp.ecKey, c)
				}
				w := callWhoAmI(t, connect(t, tg.mcpURL, tok))
				if w.Subject != "alice" || w.Email != "alice@example.com" || w.Issuer != idp.issuer() ||
					len(w.Roles) != 1 || w.Roles[0] != "sales" || len(w.Groups) != 1 || w.Groups[0] != "emea" {
					t.Errorf("%s: whoami = %+v", alg, w)
				}
			}
		})
	}
}

func TestProtectedResourceMetadata(t *testing.T) {
	idp := newKeyIdP(t)
	tg := startGateway(t, idp.issuer(), func(c *Config) { c.Identity.RequiredScopes = []string{"mcp", "openid"} })
	for _, path := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"} {
		resp, err := http.Get(tg.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var m ProtectedResourceMetadata
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s: status %d err %v", path, resp.StatusCode, err)
		}
		if m.Resource != tg.mcpURL || len(m.AuthorizationServers) != 1 || m.AuthorizationServers[0] != idp.issuer() ||
			strings.Join(m.ScopesSupported, " ") != "mcp openid" || strings.Join(m.BearerMethodsSupported, ",") != "header" {
			t.Errorf("%s: metadata %+v", path, m)
		}
	}
}

func TestOriginAllowlist(t *testing.T) {
	idp := newKeyIdP(t)
	tg := startGateway(t, idp.issuer(), func(c *Config) { c.Server.AllowedOrigins = []string{"https://app.example.com"} })
	tok := bearer(idp.rs256(t, idp.stdClaims("alice", tg.mcpURL)))
	tok["Origin"] = "https://evil.example.com"
	if resp, _ := tg.post(t, initBody, tok); resp.StatusCode != http.StatusForbidden {
		t.Errorf("foreign origin: status %d, want 403", resp.StatusCode)
	}
	tok["Origin"] = "https://app.example.com"
	if resp, body := tg.post(t, initBody, tok); resp.StatusCode != http.StatusOK {
		t.Errorf("allowed origin: status %d %s", resp.StatusCode, body)
	}
}

func TestReadyzAndKeyRotation(t *testing.T) {
	idp := newKeyIdP(t)
	idp.down.Store(true)
	tg := func() *testGW {
		// Start without waiting for readiness: discovery is down.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		cfg := &Config{}
		cfg.Server.PublicURL = "http://" + ln.Addr().String()
		cfg.Server.Listen = ln.Addr().String()
		cfg.Identity.Issuer = idp.issuer()
		cfg.applyDefaults()
		ctx, cancel := context.WithCancel(context.Background())
		g, err := New(ctx, cfg, Options{})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(g.Handler())
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		t.Cleanup(func() { srv.Close(); cancel() })
		return &testGW{g: g, srv: srv, cfg: cfg, mcpURL: cfg.MCPURL()}
	}()
	resp, err := http.Get(tg.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with IdP down = %d, want 503", resp.StatusCode)
	}
	tok := bearer(idp.rs256(t, idp.stdClaims("alice", tg.mcpURL)))
	if resp, _ := tg.post(t, initBody, tok); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("request while keys unavailable = %d, want 503", resp.StatusCode)
	}
	idp.down.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for !tg.g.Ready() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !tg.g.Ready() {
		t.Fatal("not ready after the IdP came back")
	}
	if resp, body := tg.post(t, initBody, tok); resp.StatusCode != http.StatusOK {
		t.Fatalf("after recovery: %d %s", resp.StatusCode, body)
	}
	// JWKS down after start: cached keys keep working (new token, same key).
	idp.down.Store(true)
	tok2 := bearer(idp.rs256(t, idp.stdClaims("bob", tg.mcpURL)))
	if resp, body := tg.post(t, initBody, tok2); resp.StatusCode != http.StatusOK {
		t.Fatalf("JWKS down, cached key: %d %s", resp.StatusCode, body)
	}
	idp.down.Store(false)
	// Unknown kids are fetched at most once per MinKeyRefreshInterval.
	before := idp.jwksHits.Load()
	for i := range 20 {
		c := idp.stdClaims("carol", tg.mcpURL)
		c["jti"] = i
		if resp, _ := tg.post(t, initBody, bearer(idp.sign(t, "RS256", "rotated", idp.rsaKey, c))); resp.StatusCode != 401 {
			t.Fatalf("unknown kid accepted: %d", resp.StatusCode)
		}
	}
	if hits := idp.jwksHits.Load() - before; hits > 1 {
		t.Errorf("20 unknown-kid tokens caused %d JWKS fetches, want ≤ 1", hits)
	}
}
