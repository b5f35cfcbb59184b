package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

const testAdminToken = "admin-token-0123456789"

func adminDo(t *testing.T, env *muxEnv, method, path, token string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, env.gw.srv.URL+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestPurgeSubjectWithSlash: subjects may contain "/" (for example
// "tenant/alice"); DELETE /admin/users/{subject} reaches the purge for
// them, written raw or escaped.
func TestPurgeSubjectWithSlash(t *testing.T) {
	env := startMux(t, func(c *Config) { c.Admin.Token = testAdminToken })
	for _, path := range []string{"/admin/users/tenant/alice", "/admin/users/tenant%2Falice", "/admin/users/a%2F%2Fb/c%20d"} {
		want := map[string]string{"/admin/users/tenant/alice": "tenant/alice", "/admin/users/tenant%2Falice": "tenant/alice",
			"/admin/users/a%2F%2Fb/c%20d": "a//b/c d"}[path]
		code, out := adminDo(t, env, http.MethodDelete, path, testAdminToken)
		if code != http.StatusOK || out["subject"] != want {
			t.Errorf("DELETE %s = %d %v, want 200 for subject %q", path, code, out, want)
		}
	}
	if code, _ := adminDo(t, env, http.MethodDelete, "/admin/users/", testAdminToken); code != http.StatusBadRequest {
		t.Errorf("DELETE /admin/users/ = %d, want 400 (no subject)", code)
	}
}

// gatedAdapter is an upstream whose tools/list waits for a gate and ignores
// cancellation and Close: a listing that completes across a purge.
type gatedAdapter struct {
	name    string
	started chan struct{}
	gate    chan struct{}
}

func (a *gatedAdapter) Name() string { return a.name }
func (a *gatedAdapter) Close() error { return nil }
func (a *gatedAdapter) Open(context.Context, upstreams.OpenOptions) (upstreams.Session, error) {
	return &gatedSession{a: a}, nil
}

type gatedSession struct {
	upstreams.Session // other methods are not used
	a                 *gatedAdapter
}

func (s *gatedSession) ListTools(context.Context, *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	s.a.started <- struct{}{}
	<-s.a.gate
	return &mcp.ListToolsResult{Tools: []*mcp.Tool{{Name: "t", InputSchema: map[string]any{"type": "object"}}}}, nil
}
func (s *gatedSession) Close() error { return nil }

// TestPurgeWinsOverListingInFlight: a listing fetched while the user is
// purged is not cached afterwards (the purge would be undone).
func TestPurgeWinsOverListingInFlight(t *testing.T) {
	ga := &gatedAdapter{name: "crm", started: make(chan struct{}, 4), gate: make(chan struct{})}
	env := startMuxOpts(t, func(c *Config) {
		c.Admin.Token = testAdminToken
		c.Upstreams = c.Upstreams[:1]
		c.Upstreams[0].Credentials = credentials.Config{Flow: credentials.FlowNone}
	}, Options{NewAdapter: func(cfg upstreams.Config, _ credentials.Source) (upstreams.Adapter, error) { return ga, nil }})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	listed := make(chan error, 1)
	go func() { _, err := alice.ListTools(context.Background(), nil); listed <- err }()
	select {
	case <-ga.started:
	case <-time.After(10 * time.Second):
		t.Fatal("the listing did not reach the upstream")
	}
	if code, out := adminDo(t, env, http.MethodDelete, "/admin/users/user-alice", testAdminToken); code != http.StatusOK {
		t.Fatalf("purge: %d %v", code, out)
	}
	close(ga.gate)
	select {
	case <-listed:
	case <-time.After(10 * time.Second):
		t.Fatal("the listing did not finish")
	}
	time.Sleep(50 * time.Millisecond) // the fetch caches (or not) after answering its callers
	for _, u := range env.gw.g.catalog.Users() {
		if strings.Contains(u, "user-alice") {
			t.Fatalf("a listing of alice's was cached after her purge")
		}
	}
}

// TestAdminActionsAreAudited: purge and reload (and refused admin
// requests) are in the audit chain with the admin's address.
func TestAdminActionsAreAudited(t *testing.T) {
	dir := t.TempDir()
	env := startMux(t, func(c *Config) { c.Admin.Token = testAdminToken })
	// Reload from a file: write the running configuration out.
	path := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(path, []byte("not: [valid"), 0o600); err != nil {
		t.Fatal(err)
	}
	env.gw.g.configPath = path
	if code, _ := adminDo(t, env, http.MethodDelete, "/admin/users/tenant/alice?issuer=https://idp.example/", testAdminToken); code != 200 {
		t.Fatalf("purge: %d", code)
	}
	if code, _ := adminDo(t, env, http.MethodPost, "/admin/reload", testAdminToken); code != http.StatusUnprocessableEntity {
		t.Fatalf("reload of a broken file: %d", code)
	}
	if code, _ := adminDo(t, env, http.MethodDelete, "/admin/users/bob", "wrong-token"); code != http.StatusUnauthorized {
		t.Fatalf("wrong admin token: %d", code)
	}
	found := map[string]map[string]any{}
	for _, r := range env.audit.Lines() {
		if m, _ := r["method"].(string); strings.HasPrefix(m, "admin/") || r["error_class"] == "admin_unauthorized" {
			found[m+" "+r["outcome"].(string)] = r
		}
	}
	purge := found["admin/purge_user ok"]
	target, _ := purge["target"].(map[string]any)
	if purge == nil || purge["remote_addr"] != "127.0.0.1" || target["subject"] != "tenant/alice" || target["issuer"] != "https://idp.example/" {
		t.Errorf("purge record: %v", purge)
	}
	reload := found["admin/reload error"]
	if reload == nil || reload["remote_addr"] != "127.0.0.1" || !strings.Contains(reload["error"].(string), "yaml") {
		t.Errorf("reload record: %v", reload)
	}
	if found["auth unauthenticated"] == nil {
		t.Errorf("refused admin request not audited: %v", found)
	}
	if t.Failed() {
		t.Log(env.audit.String())
	}
}
