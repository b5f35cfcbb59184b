package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// startIdP starts the real zitadel OpenID Provider on loopback.
func startIdP(t testing.TB) *devidp.IdP {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	return idp
}

func idpToken(t testing.TB, idp *devidp.IdP, user string, o devidp.TokenOptions) string {
	t.Helper()
	tok, err := idp.Token(context.Background(), user, o)
	if err != nil {
		t.Fatalf("token for %s: %v", user, err)
	}
	return tok
}

func TestRealIdPWhoAmIAndSessionBinding(t *testing.T) {
	idp := startIdP(t)
	for _, mode := range []string{SessionStateful, SessionStateless} {
		t.Run(mode, func(t *testing.T) {
			tg := startGateway(t, idp.Issuer(), func(c *Config) {
				c.Server.Session.Mode = mode
				c.Identity.RequiredScopes = []string{"mcp"}
			})
			opts := devidp.TokenOptions{Audience: []string{tg.mcpURL}, Scopes: []string{"mcp"}}
			alice := idpToken(t, idp, "alice", opts)
			bob := idpToken(t, idp, "bob", opts)

			acs := connect(t, tg.mcpURL, alice)
			w := callWhoAmI(t, acs)
			if w.Subject != "user-alice" || w.Email != "alice@example.com" || strings.Join(w.Roles, ",") != "sales" || w.Issuer != idp.Issuer() {
				t.Fatalf("alice's whoami = %+v", w)
			}
			if w := callWhoAmI(t, connect(t, tg.mcpURL, bob)); w.Subject != "user-bob" || strings.Join(w.Roles, ",") != "support" {
				t.Fatalf("bob's whoami = %+v", w)
			}
			if mode == SessionStateless {
				return
			}
			// Bob's valid token on alice's session is refused.
			sid := acs.ID()
			if len(sid) < 16 {
				t.Fatalf("session id %q too short to be random", sid)
			}
			hdr := bearer(bob)
			hdr["Mcp-Session-Id"] = sid
			hdr["Mcp-Protocol-Version"] = "2025-06-18"
			resp, body := tg.post(t, `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"whoami"}}`, hdr)
			if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "alice") {
				t.Fatalf("bob on alice's session: %d %s", resp.StatusCode, body)
			}
			// Alice's session still works.
			if w := callWhoAmI(t, acs); w.Subject != "user-alice" {
				t.Fatalf("alice after hijack attempt = %+v", w)
			}
			// Session ids are distinct per session.
			if other := connect(t, tg.mcpURL, alice); other.ID() == sid {
				t.Fatal("two sessions share an id")
			}
		})
	}
}

func TestRealIdPRejections(t *testing.T) {
	idp := startIdP(t)
	otherIdP := startIdP(t)
	tg := startGateway(t, idp.Issuer(), func(c *Config) {
		c.Identity.RequiredScopes = []string{"mcp"}
		c.Identity.ClockSkew = time.Millisecond
	})
	good := devidp.TokenOptions{Audience: []string{tg.mcpURL}, Scopes: []string{"mcp"}}
	cases := []struct {
		name   string
		tok    string
		status int
		desc   string
	}{
		{"audience of another resource", idpToken(t, idp, "alice", devidp.TokenOptions{Audience: []string{"https://crm.internal"}, Scopes: []string{"mcp"}}), 401, "audience"},
		{"missing required scope", idpToken(t, idp, "alice", devidp.TokenOptions{Audience: []string{tg.mcpURL}}), 403, "scope"},
		{"token of a different IdP", idpToken(t, otherIdP, "alice", good), 401, "invalid_token"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := tg.post(t, initBody, bearer(tc.tok))
			if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("WWW-Authenticate")+body, tc.desc) {
				t.Fatalf("status %d challenge %q body %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		short := good
		short.Lifetime = 2 * time.Second
		tok := idpToken(t, idp, "alice", short)
		if resp, body := tg.post(t, initBody, bearer(tok)); resp.StatusCode != 200 {
			t.Fatalf("fresh short-lived token: %d %s", resp.StatusCode, body)
		}
		time.Sleep(3100 * time.Millisecond)
		resp, _ := tg.post(t, initBody, bearer(tok))
		if ch := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 401 || !strings.Contains(ch, `error="invalid_token"`) || !strings.Contains(ch, "expired") {
			t.Fatalf("expired token: %d %q", resp.StatusCode, ch)
		}
	})
}

func TestIdleSessionsExpire(t *testing.T) {
	idp := startIdP(t)
	tg := startGateway(t, idp.Issuer(), func(c *Config) { c.Server.Session.IdleTimeout = 300 * time.Millisecond })
	tok := idpToken(t, idp, "alice", devidp.TokenOptions{Audience: []string{tg.mcpURL}})
	cs := connect(t, tg.mcpURL, tok)
	callWhoAmI(t, cs)
	time.Sleep(time.Second)
	hdr := bearer(tok)
	hdr["Mcp-Session-Id"] = cs.ID()
	hdr["Mcp-Protocol-Version"] = "2025-06-18"
	resp, body := tg.post(t, `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`, hdr)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("idle session after timeout: %d %s, want 404", resp.StatusCode, body)
	}
}
