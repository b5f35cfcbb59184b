package gateway

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHostCheckOnLoopback: DNS rebinding. A web page on evil.example.com
// whose name is made to resolve to 127.0.0.1 reaches a Mandate listening on
// loopback with Host evil.example.com and a matching (same-origin) Origin.
// Mandate's own Host check (go-sdk's localhost protection is off) refuses
// it with 403 before authentication, on every method of /mcp; loopback
// names and public_url's host (a local proxy forwarding the public Host)
// pass. On a non-loopback listener the Host is not checked.
func TestHostCheckOnLoopback(t *testing.T) {
	idp := newKeyIdP(t)
	tg := startGateway(t, idp.issuer(), func(c *Config) { c.Server.PublicURL = "https://mcp.example.com" })
	tok := idp.rs256(t, idp.stdClaims("alice", tg.mcpURL)) // aud = https://mcp.example.com/mcp
	_, port, _ := net.SplitHostPort(tg.srv.Listener.Addr().String())
	endpoint := tg.srv.URL + MCPPath

	do := func(t *testing.T, method, host string, hdr map[string]string) (int, string) {
		t.Helper()
		body := ""
		if method == http.MethodPost {
			body = initBody
		}
		resp, b := send(t, method, endpoint, body, hdr, host)
		return resp.StatusCode, b
	}

	for _, host := range []string{
		"evil.example.com:" + port,
		"evil.example.com",
		"localhost.evil.example:" + port,
		"127.0.0.1.nip.io:" + port,
		"mcp.example.com.evil.example",
	} {
		t.Run("refused/"+host, func(t *testing.T) {
			h := host
			if !strings.Contains(h, ":") {
				h += ":80"
			}
			// What the rebound page sends: its own (same) origin, and a
			// valid token of the user does not help either.
			withToken := map[string]string{"Origin": "http://" + h, "Authorization": "Bearer " + tok}
			if code, body := do(t, http.MethodPost, host, withToken); code != http.StatusForbidden || !strings.Contains(body, "invalid Host header") {
				t.Errorf("POST with Host %s: %d %s, want 403 invalid Host header", host, code, body)
			}
			// Refused before authentication: no token gives 403, not 401.
			for _, m := range []string{http.MethodPost, http.MethodGet, http.MethodDelete} {
				if code, body := do(t, m, host, nil); code != http.StatusForbidden || !strings.Contains(body, "invalid Host header") {
					t.Errorf("%s without a token, Host %s: %d %s, want 403 invalid Host header", m, host, code, body)
				}
			}
		})
	}
	for _, host := range []string{
		"127.0.0.1:" + port,
		"localhost:" + port,
		"LOCALHOST",
		"[::1]:" + port,
		"127.0.0.2:" + port,
		"mcp.example.com",     // public_url's host, from a local proxy
		"MCP.Example.com:443", // case and port do not matter
	} {
		t.Run("allowed/"+host, func(t *testing.T) {
			if code, body := do(t, http.MethodPost, host, map[string]string{"Authorization": "Bearer " + tok}); code != http.StatusOK {
				t.Errorf("POST with Host %s: %d %s, want 200", host, code, body)
			}
		})
	}

	// On a non-loopback address (a pod IP behind an ingress) any Host
	// passes this check; the Origin check and authentication still apply.
	t.Run("non-loopback listener", func(t *testing.T) {
		for _, c := range []struct {
			local string
			want  bool
		}{{"10.1.2.3:8080", true}, {"127.0.0.1:8080", false}, {"[::1]:8080", false}} {
			r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
			r.Host = "evil.example.com"
			la, _ := net.ResolveTCPAddr("tcp", c.local)
			r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, la))
			if got := tg.g.origins().HostAllowed(r); got != c.want {
				t.Errorf("Host evil.example.com on %s: allowed = %v, want %v", c.local, got, c.want)
			}
		}
	})
}
