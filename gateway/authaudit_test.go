package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/gateway/front"
)

func authRecords(env *muxEnv) (individual, summarized int, summaries []map[string]any) {
	for _, r := range env.audit.Lines() {
		if r["method"] != "auth" {
			continue
		}
		if r["error_class"] == "auth_failures_suppressed" {
			summaries = append(summaries, r)
			var n int
			fmt.Sscanf(r["error"].(string), "%d", &n)
			summarized += n
			continue
		}
		individual++
	}
	return
}

// TestSessionIDValidatedBeforeAnythingElse: an Mcp-Session-Id that is not
// 1-256 visible ASCII characters gets 400 before authentication, and
// nothing of it reaches the audit log. (Before, each refused request stored
// the header, up to the 64 KiB header limit, in an auth-failure record.)
func TestSessionIDValidatedBeforeAnythingElse(t *testing.T) {
	env := startMux(t, nil)
	for name, sid := range map[string]string{
		"too long":      strings.Repeat("A", 8<<10),
		"space":         "abc def",
		"non-ASCII":     "session-\xc3\xa9",
		"just too long": strings.Repeat("b", front.MaxSessionIDLen+1),
	} {
		before := len(env.audit.String())
		for _, tok := range []string{"", "Bearer not-a-token", "Bearer " + env.aliceTk} {
			hdr := map[string]string{"Mcp-Session-Id": sid}
			if tok != "" {
				hdr["Authorization"] = tok
			}
			resp, body := env.gw.post(t, initBody, hdr)
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Mcp-Session-Id") || !strings.Contains(body, `"jsonrpc":"2.0"`) {
				t.Errorf("%s, %q: %d %s, want 400 with a JSON-RPC error naming the header", name, tok[:min(len(tok), 12)], resp.StatusCode, body)
			}
			if resp.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("%s: the session id check must come before authentication", name)
			}
		}
		if after := len(env.audit.String()); after != before {
			t.Errorf("%s: the audit log grew by %d bytes", name, after-before)
		}
	}
	// A valid id of the maximum length is not refused by this check (it is
	// unknown, so go-sdk answers 404 after authentication).
	resp, _ := env.gw.post(t, `{"jsonrpc":"2.0","id":2,"method":"tools/list"}`,
		map[string]string{"Mcp-Session-Id": strings.Repeat("~", front.MaxSessionIDLen), "Authorization": "Bearer " + env.aliceTk})
	if resp.StatusCode == http.StatusBadRequest {
		t.Errorf("a %d-byte visible-ASCII id was refused as malformed", front.MaxSessionIDLen)
	}
}

// TestAuthFailureAuditIsRateLimited: failures from one address are recorded
// one by one up to the burst per window; the rest are counted in one summary
// record per address when the window ends (by its timer).
func TestAuthFailureAuditIsRateLimited(t *testing.T) {
	env := startMux(t, nil)
	l := env.gw.g.authAudit
	setWindow := l.SetWindow
	fail := func(n int) {
		for i := 0; i < n; i++ {
			hdr := map[string]string{"Authorization": "Bearer bad-token"}
			if resp, _ := env.gw.post(t, initBody, hdr); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("bad token: %d", resp.StatusCode)
			}
		}
	}
	// One long window, ended by hand: exact counts.
	setWindow(time.Hour)
	const n = 50
	fail(n)
	l.FlushNow()
	individual, summarized, summaries := authRecords(env)
	if individual != front.AuthFailureBurst || summarized != n-front.AuthFailureBurst || len(summaries) != 1 || summaries[0]["remote_addr"] != "127.0.0.1" {
		t.Fatalf("%d failures: %d individual records (want %d), %d summarized in %v", n, individual, front.AuthFailureBurst, summarized, summaries)
	}
	// A short window ends by itself and writes its summary.
	setWindow(2 * time.Second)
	fail(front.AuthFailureBurst + 3)
	deadline := time.Now().Add(15 * time.Second)
	for {
		individual, summarized, _ := authRecords(env)
		if individual+summarized == n+front.AuthFailureBurst+3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no summary after the window: %d recorded, %d summarized\n%s", individual, summarized, env.audit.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRoutableSessionIDsPassTheCheck: with the longest peer_url the
// configuration accepts, routable session ids still pass checkSessionID;
// a longer one is a configuration error.
func TestRoutableSessionIDsPassTheCheck(t *testing.T) {
	url := "http://" + strings.Repeat("h", front.MaxPeerURLLen-len("http://:8080")) + ":8080"
	p, err := front.NewPeers(url, strings.Repeat("s", 32), http.DefaultTransport)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		if id := p.NewID(); !front.ValidSessionID(id) {
			t.Fatalf("routable id of %d bytes for a %d-byte peer_url fails the check: %q", len(id), len(url), id)
		}
	}
	cfg := &Config{}
	cfg.Server.PublicURL = "https://mcp.example.com"
	cfg.Identity.Issuer = "https://idp.example.com/"
	cfg.Server.Session.PeerURL = url + "0"
	cfg.Server.Session.PeerSecret = testPeerSecret
	cfg.applyDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "peer_url: at most") {
		t.Fatalf("Validate with a %d-byte peer_url = %v", len(url)+1, err)
	}
}
