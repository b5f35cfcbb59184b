package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// authFailureRemotes returns the "remote" of every "authentication
// failed" log line in buf.
func authFailureRemotes(buf *syncBuffer) []string {
	var out []string
	for _, l := range buf.Lines() {
		if l["msg"] == "authentication failed" {
			r, _ := l["remote"].(string)
			out = append(out, r)
		}
	}
	return out
}

// TestTrustedProxies: the client IP in logs is the connection's peer
// unless that peer is in server.trusted_proxies; then it is the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy. gin alone
// trusts every peer, so any client could choose the address logged.
func TestTrustedProxies(t *testing.T) {
	idp := startIdP(t)
	for _, tc := range []struct {
		name    string
		trusted []string
		xff     string
		want    string
	}{
		{"default: X-Forwarded-For ignored", nil, "203.0.113.9", "127.0.0.1"},
		{"peer not trusted", []string{"10.0.0.0/8", "::1"}, "203.0.113.9", "127.0.0.1"},
		{"trusted peer", []string{"127.0.0.1"}, "203.0.113.9", "203.0.113.9"},
		{"trusted CIDR, entry spoofed left of the client", []string{"127.0.0.0/8"}, "198.51.100.7, 203.0.113.9", "203.0.113.9"},
		{"trusted chain of proxies", []string{"127.0.0.1", "10.0.0.0/8"}, "203.0.113.9, 10.1.2.3", "203.0.113.9"},
		{"X-Real-IP is not read", []string{"127.0.0.1"}, "", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs := &syncBuffer{}
			gw := startGatewayOpts(t, idp.Issuer(), func(c *Config) { c.Server.TrustedProxies = tc.trusted },
				Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), AuditOutput: io.Discard})
			hdr := map[string]string{"X-Real-IP": "192.0.2.1"}
			if tc.xff != "" {
				hdr["X-Forwarded-For"] = tc.xff
			}
			if resp, _ := gw.post(t, initBody, hdr); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			if got := authFailureRemotes(logs); len(got) != 1 || got[0] != tc.want {
				t.Fatalf("remote in the authentication-failure log: %v, want [%s]", got, tc.want)
			}
		})
	}
}

// TestTrustedProxiesPeerForwarding: a replica forwarding a request to the
// session's owner passes X-Forwarded-For on, its own peer appended; an
// owner that trusts the replicas' addresses sees the client's IP.
func TestTrustedProxiesPeerForwarding(t *testing.T) {
	logs := &syncBuffer{}
	rp := startReplicaPairOpts(t, func(c *Config) { c.Server.TrustedProxies = []string{"127.0.0.1"} },
		Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	hdr := bearer("not-a-token")
	hdr["Mcp-Session-Id"] = rp.env.gw.g.peers.NewID() // owned by replica A
	hdr["Mcp-Protocol-Version"] = "2025-11-25"
	hdr["X-Forwarded-For"] = "203.0.113.9"
	if resp, body := rp.post(t, 1, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, hdr); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("through replica B: %d %s, want 401 from A", resp.StatusCode, body)
	}
	if rp.forwarded[0].Load() != 1 {
		t.Fatalf("%d requests forwarded to A, want 1", rp.forwarded[0].Load())
	}
	if got := authFailureRemotes(logs); len(got) != 1 || got[0] != "203.0.113.9" {
		t.Fatalf("remote in A's authentication-failure log: %v, want [203.0.113.9]", got)
	}
}

// TestAdminListen: with server.admin_listen, /admin/ and /metrics are
// served there only (a network policy can then fence them by port); the
// main listener answers 404 for them and keeps /mcp and the probes.
func TestAdminListen(t *testing.T) {
	idp := startIdP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := ln.Addr().String()
	ln.Close()
	gw := startGatewayOpts(t, idp.Issuer(), func(c *Config) {
		c.Server.AdminListen = adminAddr
		c.Admin.Token = "0123456789abcdef-admin"
	}, Options{AuditOutput: io.Discard})
	ctx, cancel := context.WithCancel(context.Background())
	mainLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- gw.g.ServeListener(ctx, mainLn) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	get := func(method, base, path string) int {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		req.Header.Set("Authorization", "Bearer 0123456789abcdef-admin")
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v", method, base+path, err)
			}
		}
	}
	mainURL, adminURL := "http://"+mainLn.Addr().String(), "http://"+adminAddr
	for _, c := range []struct {
		method, base, path string
		want               int
	}{
		{"GET", adminURL, "/metrics", http.StatusOK},
		{"POST", adminURL, "/admin/reload", http.StatusConflict}, // reached: no config file to reload
		{"GET", adminURL, "/healthz", http.StatusOK},
		{"GET", adminURL, "/mcp", http.StatusNotFound},
		{"GET", mainURL, "/metrics", http.StatusNotFound},
		{"POST", mainURL, "/admin/reload", http.StatusNotFound},
		{"DELETE", mainURL, "/admin/users/alice", http.StatusNotFound},
		{"GET", mainURL, "/healthz", http.StatusOK},
		{"GET", mainURL, "/.well-known/oauth-protected-resource/mcp", http.StatusOK},
	} {
		if got := get(c.method, c.base, c.path); got != c.want {
			t.Errorf("%s %s%s = %d, want %d", c.method, c.base, c.path, got, c.want)
		}
	}
	// Handler, what tests and embedders serve, is the main listener's.
	rec := httptest.NewRecorder()
	gw.g.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != http.StatusNotFound || gw.g.AdminHandler() == nil {
		t.Errorf("Handler() /metrics = %d (want 404), AdminHandler nil: %v", rec.Code, gw.g.AdminHandler() == nil)
	}
}

func TestTrustedProxiesAndAdminListenConfig(t *testing.T) {
	base := "server:\n  public_url: https://mcp.example.com\n  listen: 127.0.0.1:8080\n"
	tail := "identity:\n  issuer: https://login.example.com/\n"
	for _, tc := range []struct{ yaml, want string }{
		{"  trusted_proxies: [10.0.0.0/8, \"10.0.0.0/33\"]\n", `server.trusted_proxies[1]: must be an IP address or CIDR (10.0.0.0/8, 2001:db8::/32), got "10.0.0.0/33"`},
		{"  trusted_proxies: [ingress.local]\n", `server.trusted_proxies[0]: must be an IP address or CIDR`},
		{"  admin_listen: 9090\n", "server.admin_listen: not host:port"},
		{"  admin_listen: 127.0.0.1:8080\n", "server.admin_listen: must differ from server.listen"},
	} {
		_, err := ParseConfig("c.yaml", []byte(base+tc.yaml+tail), env(nil))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	c, err := ParseConfig("c.yaml", []byte(base+"  admin_listen: :9090\n  trusted_proxies: [10.0.0.0/8, 192.168.1.7, \"fd00::/8\"]\n"+tail), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.AdminListen != ":9090" || len(c.Server.TrustedProxies) != 3 {
		t.Fatalf("parsed admin_listen %q trusted_proxies %v", c.Server.AdminListen, c.Server.TrustedProxies)
	}
}
