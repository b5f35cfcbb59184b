package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/policy"
)

// BenchmarkCachedCallToken is BenchmarkCachedCall's bare tools/call on a
// warm session, through one gateway with the authorization server on
// (SQLite storage), authenticated once with alice's IdP token and once
// with a Mandate-issued access token for alice (dynamic registration,
// sign-in, code). The difference is what a Mandate token costs a call.
func BenchmarkCachedCallToken(b *testing.B) {
	dir := b.TempDir()
	key, err := store.GenerateKey("k1")
	if err != nil {
		b.Fatal(err)
	}
	env := startMuxOpts(b, func(c *Config) {
		c.Telemetry.Metrics = "none"
		c.Policy = policy.Config{Default: "allow"}
		c.AuthorizationServer.Enabled = true
		c.AuthorizationServer.IdP.ClientID = "mandate"
		c.AuthorizationServer.IdP.ClientSecret = "mandate-secret"
		c.Storage.EncryptionKeys = []store.EncryptionKey{key}
		c.Storage.Path = filepath.Join(dir, "mandate.db")
	}, Options{AuditOutput: io.Discard})
	// Mandate signs users in at the IdP as the token-exchange client.
	if err := env.idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: "mandate-secret",
		RedirectURIs: []string{env.gw.cfg.Server.PublicURL + authserver.PathCallback},
		Audience:     []string{env.gw.mcpURL}}); err != nil {
		b.Fatal(err)
	}
	ag := &asGateway{testGW: env.gw, idp: env.idp, issuer: env.gw.cfg.Server.PublicURL}
	redirect := "http://127.0.0.1:7777/callback"
	resp, err := http.Post(ag.issuer+authserver.PathRegister, "application/json",
		strings.NewReader(`{"client_name":"bench","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		b.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	if reg.ClientID == "" {
		b.Fatalf("registration: %d", resp.StatusCode)
	}
	mandateTk, _ := ag.signIn(b, reg.ClientID, redirect, "alice")["access_token"].(string)
	if mandateTk == "" {
		b.Fatal("no Mandate access token")
	}
	for _, sessions := range []int{1, 8} {
		for _, tk := range []struct{ name, token string }{{"idp", env.aliceTk}, {"mandate", mandateTk}} {
			b.Run(fmt.Sprintf("token=%s/sessions=%d", tk.name, sessions), func(b *testing.B) {
				clients := make([]*mcp.ClientSession, sessions)
				for i := range clients {
					clients[i] = connect(b, env.gw.mcpURL, tk.token)
					if _, err := callJSON(b, clients[i], "crm_echo", map[string]any{"text": "warm"}); err != nil {
						b.Fatal(err)
					}
				}
				fast := dispatch.ForwardedCalls()
				args := map[string]any{"text": "hello"}
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				per := b.N / sessions
				for i, cs := range clients {
					n := per
					if i == 0 {
						n += b.N - per*sessions
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range n {
							if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "crm_echo", Arguments: args}); err != nil || res.IsError {
								b.Error("call failed:", err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if got := dispatch.ForwardedCalls() - fast; got < uint64(b.N)/2 {
					b.Fatalf("only %d of %d calls took the fast path", got, b.N)
				}
			})
		}
	}
}
