package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestSessionCaps: one user opening more than max_per_user sessions closes
// their least recently used one (the others keep working); beyond
// max_total a new session is refused with 503 and Retry-After, before it
// exists; sessions that never made a call count.
func TestSessionCaps(t *testing.T) {
	env := startMux(t, func(c *Config) {
		c.Server.Session.MaxPerUser = 3
		c.Server.Session.MaxTotal = 5
	})
	var alice []*mcp.ClientSession
	for range 3 {
		alice = append(alice, connect(t, env.gw.mcpURL, env.aliceTk))
		time.Sleep(5 * time.Millisecond) // distinct last-used times
	}
	// Use the first session: the second is now the least recently used.
	if _, err := alice[0].CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"}); err != nil {
		t.Fatal(err)
	}
	alice = append(alice, connect(t, env.gw.mcpURL, env.aliceTk))

	deadline := time.Now().Add(5 * time.Second)
	for env.gw.g.sessions.UserCount(aliceKey(t, env)) != 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := env.gw.g.sessions.UserCount(aliceKey(t, env)); n != 3 {
		t.Fatalf("alice has %d sessions, want 3", n)
	}
	if _, err := alice[1].CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"}); err == nil {
		t.Fatal("the least recently used session still answers")
	}
	for _, i := range []int{0, 2, 3} {
		if _, err := alice[i].CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"}); err != nil {
			t.Fatalf("session %d: %v", i, err)
		}
	}

	// Total: alice 3 + bob 2 = 5 = max_total.
	connect(t, env.gw.mcpURL, env.bobTk)
	connect(t, env.gw.mcpURL, env.bobTk)
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"x","version":"1"}}}`
	hdr := bearer(env.bobTk)
	hdr["Accept"] = "application/json, text/event-stream"
	resp, body := env.gw.post(t, init, hdr)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "session limit") {
		t.Fatalf("new session at max_total: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if n := env.gw.g.sessions.Count(); n != 5 {
		t.Errorf("%d sessions after the refusal, want 5", n)
	}
	// Existing sessions are not affected.
	if _, err := alice[0].CallTool(context.Background(), &mcp.CallToolParams{Name: "whoami"}); err != nil {
		t.Fatal(err)
	}
}

func aliceKey(t *testing.T, env *muxEnv) string {
	t.Helper()
	var key string
	for _, k := range env.gw.g.sessions.Users() {
		if strings.Contains(k, "user-alice") {
			key = k
		}
	}
	return key
}
