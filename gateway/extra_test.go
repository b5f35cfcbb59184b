package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// TestUpstreamFiltersByUser: an upstream that lists different tools to
// different users (it sees who calls from the exchanged token) gives two
// concurrent users their own listings through Mandate.
func TestUpstreamFiltersByUser(t *testing.T) {
	var env *muxEnv
	var filtered *httptest.Server
	env = startMux(t, func(c *Config) {
		idpIssuer := c.Identity.Issuer
		provider, err := oidc.NewProvider(context.Background(), idpIssuer)
		if err != nil {
			t.Fatal(err)
		}
		verifier := provider.Verifier(&oidc.Config{ClientID: "https://hr.internal"})
		servers := map[string]*mcp.Server{}
		for _, sub := range []string{"user-alice", "user-bob"} {
			s := mcp.NewServer(&mcp.Implementation{Name: "hr", Version: "1"}, nil)
			mcp.AddTool(s, &mcp.Tool{Name: "common"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
			})
			mcp.AddTool(s, &mcp.Tool{Name: "only_for_" + strings.TrimPrefix(sub, "user-")}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: sub}}}, nil, nil
			})
			servers[sub] = s
		}
		h := mcp.NewStreamableHTTPHandler(func(r *http.Request) *mcp.Server {
			tok, err := verifier.Verify(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			if err != nil {
				return nil
			}
			return servers[tok.Subject]
		}, nil)
		filtered = httptest.NewServer(h)
		c.Upstreams = append(c.Upstreams, upstreams.Config{Name: "hr", Kind: upstreams.KindMCP, URL: filtered.URL,
			Credentials: credentials.Config{Flow: credentials.FlowTokenExchange, TokenURL: c.Upstreams[0].Credentials.TokenURL,
				ClientID: "mandate", ClientSecret: "mandate-secret", Audience: "https://hr.internal"}})
	})
	t.Cleanup(filtered.Close)
	var wg sync.WaitGroup
	results := map[string][]string{}
	var mu sync.Mutex
	for user, tok := range map[string]string{"alice": env.aliceTk, "bob": env.bobTk} {
		wg.Go(func() {
			cs := connect(t, env.gw.mcpURL, tok)
			var hr []string
			for _, n := range toolNames(t, cs) {
				if strings.HasPrefix(n, "hr_") {
					hr = append(hr, n)
				}
			}
			mu.Lock()
			results[user] = hr
			mu.Unlock()
		})
	}
	wg.Wait()
	if !slices.Equal(results["alice"], []string{"hr_common", "hr_only_for_alice"}) || !slices.Equal(results["bob"], []string{"hr_common", "hr_only_for_bob"}) {
		t.Fatalf("listings: %v", results)
	}
	// Bob cannot call alice's tool: it is not in his listing.
	bob := connect(t, env.gw.mcpURL, env.bobTk)
	if _, err := callJSON(t, bob, "hr_only_for_alice", map[string]any{}); err == nil || !strings.Contains(err.Error(), "unknown tool") {
		t.Fatalf("bob calling alice's tool: %v", err)
	}
}

func TestRateLimitMetricsAndPurge(t *testing.T) {
	env := startMux(t, func(c *Config) {
		c.Policy.RateLimits = []policy.RateLimit{{Upstream: "crm", RequestsPerSecond: 0.01, Burst: 2}}
		c.Admin.Token = "admin-token-0123456789"
	})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	for i := range 2 {
		if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
			t.Fatalf("call %d within burst: %v", i, err)
		}
	}
	_, err := callJSON(t, alice, "crm_who", map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "rate limit") || !strings.Contains(err.Error(), "retry after") {
		t.Fatalf("third call: %v, want a rate-limit error with retry-after", err)
	}
	// Other users and other upstreams are unaffected.
	bob := connect(t, env.gw.mcpURL, env.bobTk)
	if _, err := callJSON(t, bob, "crm_who", map[string]any{}); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if _, err := callJSON(t, alice, "docs_who", map[string]any{}); err != nil {
		t.Fatalf("alice on docs: %v", err)
	}

	// Metrics.
	resp, err := http.Get(env.gw.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"mcp_server_operation_duration_seconds", "mcp_client_operation_duration_seconds", "mandate_credentials_lookups_total", "mandate_policy_denials_total"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// Purge: needs the admin token; drops alice's tokens and sessions.
	del := func(auth string) *http.Response {
		req, _ := http.NewRequest(http.MethodDelete, env.gw.srv.URL+"/admin/users/user-alice", nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := del("Bearer wrong"); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("purge with a wrong admin token: %d", r.StatusCode)
	}
	r := del("Bearer admin-token-0123456789")
	var out map[string]any
	_ = json.NewDecoder(r.Body).Decode(&out)
	r.Body.Close()
	if r.StatusCode != 200 || out["tokens_dropped"].(float64) < 1 || out["sessions_closed"].(float64) < 1 {
		t.Fatalf("purge: %d %v", r.StatusCode, out)
	}
	if _, err := callJSON(t, alice, "docs_who", map[string]any{}); err == nil {
		t.Fatal("alice's session survived the purge")
	}
}
