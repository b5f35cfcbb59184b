package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/gateway/authserver"
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
	ag := &asGateway{testGW: env.gw, idp: env.idp, issuer: env.gw.cfg.Server.PublicURL,
		base: env.gw.cfg.Server.PublicURL, mcpAt: env.gw.mcpURL}
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
				benchCachedCalls(b, env.gw.mcpURL, tk.token, sessions)
			})
		}
	}
}
