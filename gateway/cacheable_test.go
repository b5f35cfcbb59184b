package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
)

// recordingTransport keeps the raw JSON-RPC results of list and read
// answers by method, as the client received them (JSON or event stream).
type recordingTransport struct {
	base http.RoundTripper
	mu   sync.Mutex
	raw  map[string]json.RawMessage // method → result
}

func (rt *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	var method string
	if r.Body != nil {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(b))
		var env struct{ Method string }
		_ = json.Unmarshal(b, &env)
		method = env.Method
	}
	resp, err := rt.base.RoundTrip(r)
	if err != nil || method == "" || r.Method != http.MethodPost {
		return resp, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimPrefix(strings.TrimSpace(line), "data:")
		var msg struct{ Result json.RawMessage }
		if json.Unmarshal([]byte(line), &msg) == nil && msg.Result != nil {
			rt.mu.Lock()
			rt.raw[method] = msg.Result
			rt.mu.Unlock()
		}
	}
	return resp, nil
}

func (rt *recordingTransport) result(t *testing.T, method string) map[string]json.RawMessage {
	t.Helper()
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(rt.raw[method], &m); err != nil {
		t.Fatalf("%s: no result recorded (%v): %s", method, err, rt.raw[method])
	}
	return m
}

// TestListsAreArraysAndCacheHints: every list field is a JSON array, never
// null, also when the user sees nothing of that kind (the TypeScript SDK
// and the Inspector reject null); the cache hints are "private" with the
// catalog TTL in 2026-07-28 and absent from older revisions (go-sdk's
// result types would send "ttlMs":0,"cacheScope":"").
func TestListsAreArraysAndCacheHints(t *testing.T) {
	for _, tc := range []struct {
		name, proto string
		stateless   bool
	}{
		{"2025-11-25 stateful", "2025-11-25", false},
		{"2025-06-18 stateless", "2025-06-18", true},
		{"2026-07-28 stateless", "2026-07-28", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startMux(t, func(c *Config) {
				// alice sees no prompts and no resources (docs has both).
				c.Policy.Rules = append([]policy.Rule{{Name: "alice-tools-only", Effect: "deny",
					When: `user.subject == "user-alice" && method in ["prompts/get", "resources/read"]`}}, c.Policy.Rules...)
				if tc.stateless {
					c.Server.Session.Mode = SessionStateless
				}
			})
			ctx := context.Background()
			connect := func(tok string) (*mcp.ClientSession, *recordingTransport) {
				rec := &recordingTransport{base: &headerTransport{token: tok, base: http.DefaultTransport}, raw: map[string]json.RawMessage{}}
				c := mcp.NewClient(&mcp.Implementation{Name: "recorder", Version: "1"}, nil)
				cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: env.gw.mcpURL, HTTPClient: &http.Client{Transport: rec}},
					&mcp.ClientSessionOptions{ProtocolVersion: tc.proto})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cs.Close() })
				return cs, rec
			}
			cs, rec := connect(env.aliceTk)
			if _, err := cs.ListTools(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.ListPrompts(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.ListResources(ctx, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.ListResourceTemplates(ctx, nil); err != nil {
				t.Fatal(err)
			}
			for method, field := range map[string]string{"tools/list": "tools", "prompts/list": "prompts",
				"resources/list": "resources", "resources/templates/list": "resourceTemplates"} {
				res := rec.result(t, method)
				if v := strings.TrimSpace(string(res[field])); !strings.HasPrefix(v, "[") {
					t.Errorf("%s: %q is %s, want an array", method, field, v)
				}
				ttl, hasTTL := res["ttlMs"]
				scope, hasScope := res["cacheScope"]
				if tc.proto >= "2026-07-28" {
					if string(scope) != `"private"` || string(ttl) != "300000" {
						t.Errorf("%s: ttlMs=%s cacheScope=%s, want 300000 (the catalog TTL) and \"private\"", method, ttl, scope)
					}
				} else if hasTTL || hasScope {
					t.Errorf("%s in %s carries ttlMs=%s cacheScope=%s; the fields do not exist before 2026-07-28", method, tc.proto, ttl, scope)
				}
			}
			if names := rec.result(t, "tools/list")["tools"]; !strings.Contains(string(names), `"crm_who"`) {
				t.Errorf("tools/list lost the tools: %s", names)
			}
			for _, f := range []string{"prompts", "resources", "resourceTemplates"} {
				m := "prompts/list"
				if f != "prompts" {
					m = map[string]string{"resources": "resources/list", "resourceTemplates": "resources/templates/list"}[f]
				}
				if v := string(rec.result(t, m)[f]); v != "[]" {
					t.Errorf("alice's %s: %s, want []", f, v)
				}
			}
			// bob reads a resource: the same hints on read results.
			bob, brec := connect(env.bobTk)
			if _, err := bob.ReadResource(ctx, &mcp.ReadResourceParams{URI: "docs://handbook"}); err != nil {
				t.Fatal(err)
			}
			res := brec.result(t, "resources/read")
			if !strings.HasPrefix(string(res["contents"]), "[{") {
				t.Errorf("resources/read contents: %s", res["contents"])
			}
			_, hasTTL := res["ttlMs"]
			if scope := string(res["cacheScope"]); tc.proto >= "2026-07-28" && (scope != `"private"` || string(res["ttlMs"]) != "0") {
				t.Errorf("resources/read: ttlMs=%s cacheScope=%s, want 0 and \"private\"", res["ttlMs"], scope)
			} else if tc.proto < "2026-07-28" && (hasTTL || scope != "") {
				t.Errorf("resources/read in %s carries ttlMs=%s cacheScope=%s", tc.proto, res["ttlMs"], scope)
			}
		})
	}
}

// TestWhoAmIConfigurable: the built-in tool can be renamed and disabled;
// a collision with an unprefixed upstream's tool is reported by validate
// (a warning) and at run time hides the upstream's tool with a log line,
// and the name routes to the tool that is listed.
func TestWhoAmIConfigurable(t *testing.T) {
	t.Run("renamed", func(t *testing.T) {
		env := startMux(t, func(c *Config) { c.Catalog.WhoAmI.Name = "mandate_me" })
		cs := connect(t, env.gw.mcpURL, env.aliceTk)
		names := toolNames(t, cs)
		if !slices.Contains(names, "mandate_me") || slices.Contains(names, "whoami") {
			t.Fatalf("tools %v: want mandate_me and no whoami", names)
		}
		res, err := callJSON(t, cs, "mandate_me", nil)
		if err != nil || !strings.Contains(toolText(res), "user-alice") {
			t.Fatalf("mandate_me: %v %v", err, res)
		}
		if _, err := callJSON(t, cs, "whoami", nil); err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Fatalf("whoami after rename: %v, want unknown tool", err)
		}
	})
	t.Run("disabled", func(t *testing.T) {
		env := startMux(t, func(c *Config) { c.Catalog.WhoAmI.Disabled = true })
		cs := connect(t, env.gw.mcpURL, env.aliceTk)
		if names := toolNames(t, cs); slices.Contains(names, "whoami") {
			t.Fatalf("tools %v list whoami although disabled", names)
		}
		if _, err := callJSON(t, cs, "whoami", nil); err == nil || !strings.Contains(err.Error(), "unknown tool") {
			t.Fatalf("whoami disabled: %v, want unknown tool", err)
		}
	})
	t.Run("collision with an unprefixed upstream", func(t *testing.T) {
		var logs syncBuffer
		var cfgSeen *Config
		env := startMuxOpts(t, func(c *Config) {
			c.Upstreams[0].Prefix = upstreams.PrefixNever // crm's tool "who" is listed as "who"
			c.Catalog.WhoAmI.Name = "who"
			cfgSeen = c
		}, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if w := cfgSeen.Warnings(); len(w) != 1 || !strings.Contains(w[0], "catalog.whoami.name") || !strings.Contains(w[0], "crm") {
			t.Errorf("Warnings() = %q, want one about catalog.whoami.name and crm", w)
		}
		cs := connect(t, env.gw.mcpURL, env.aliceTk)
		names := toolNames(t, cs)
		if n := strings.Count(strings.Join(names, ","), "who,"); slices.Index(names, "who") < 0 || n > 1 {
			t.Fatalf("tools %v: want who listed once", names)
		}
		if !strings.Contains(logs.String(), "listing collision") || !strings.Contains(logs.String(), "already_from=mandate") {
			t.Errorf("no log line for the hidden upstream tool:\n%s", logs.String())
		}
		res, err := callJSON(t, cs, "who", nil)
		if err != nil || res.StructuredContent == nil || !strings.Contains(toolText(res), "issued by") {
			t.Fatalf("who routes to the built-in tool that is listed: %v %v", err, toolText(res))
		}
	})
	t.Run("validate", func(t *testing.T) {
		c := &Config{}
		c.Server.PublicURL = "https://mcp.example.com"
		c.Identity.Issuer = "https://idp.example.com/"
		c.Upstreams = []upstreams.Config{{Name: "crm", Kind: upstreams.KindMCP, URL: "https://crm.example.com/mcp"}}
		c.Upstreams[0].Credentials.Flow = "none"
		c.Catalog.WhoAmI.Name = "crm_whoami"
		c.applyDefaults()
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "catalog.whoami.name") {
			t.Fatalf("Validate() = %v, want an error on catalog.whoami.name (crm's namespace)", err)
		}
	})
}
