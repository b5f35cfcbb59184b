package gateway

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/upstreams"
)

// writeConfig writes cfg as YAML (the loader re-reads and validates it).
func writeConfig(t testing.TB, path string, cfg *Config) {
	t.Helper()
	b, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// secret.String marshals as [redacted]; secrets come from the
	// environment (a literal one is refused): refer to it.
	s := strings.ReplaceAll(string(b), "client_secret: '[redacted]'", "client_secret: ${MANDATE_TEST_CLIENT_SECRET}")
	t.Setenv("MANDATE_TEST_CLIENT_SECRET", "mandate-secret")
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestHotReload(t *testing.T) {
	env := startMux(t, nil)
	g := env.gw.g
	path := filepath.Join(t.TempDir(), "config.yaml")
	g.configPath = path
	base := *env.gw.cfg

	var mu sync.Mutex
	changed := 0
	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, &mcp.ClientOptions{
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) { mu.Lock(); changed++; mu.Unlock() },
	})
	cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.aliceTk), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	has := func(name string) bool { return slices.Contains(toolNames(t, cs), name) }
	if !has("docs_who") {
		t.Fatal("docs missing before reload")
	}

	// Remove docs.
	cfg := base
	cfg.Upstreams = []upstreams.Config{base.Upstreams[0]}
	writeConfig(t, path, &cfg)
	if _, err := g.ReloadFile(path); err != nil {
		t.Fatal(err)
	}
	if has("docs_who") || !has("crm_who") {
		t.Fatalf("after removing docs: %v", toolNames(t, cs))
	}
	// The existing session keeps working.
	if res, err := callJSON(t, cs, "crm_who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("call after reload: %v", err)
	}
	// Add docs back under another name, and change crm's separator.
	cfg = base
	d := base.Upstreams[1]
	d.Name = "wiki"
	cfg.Upstreams = []upstreams.Config{base.Upstreams[0], d}
	cfg.Catalog.Separator = "."
	writeConfig(t, path, &cfg)
	if _, err := g.ReloadFile(path); err != nil {
		t.Fatal(err)
	}
	names := toolNames(t, cs)
	if !slices.Contains(names, "wiki.who") || !slices.Contains(names, "crm.who") || slices.Contains(names, "crm_who") {
		t.Fatalf("after adding wiki and changing the separator: %v", names)
	}
	if res, err := callJSON(t, cs, "wiki.who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("call to the added upstream: %v", err)
	}
	// A broken file is rejected; the old configuration keeps serving.
	if err := os.WriteFile(path, []byte("server:\n  public_url: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := g.ReloadFile(path); err == nil {
		t.Fatal("broken config accepted")
	}
	cfg.Upstreams[1].Credentials.Flow = "passthrough"
	writeConfig(t, path, &cfg)
	if _, err := g.ReloadFile(path); err == nil || !strings.Contains(err.Error(), "passthrough") {
		t.Fatalf("invalid config: %v", err)
	}
	if res, err := callJSON(t, cs, "wiki.who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("old config stopped serving after a rejected reload: %v", err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		mu.Lock()
		n := changed
		mu.Unlock()
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("client got %d tools/list_changed notifications for 2 reloads", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
