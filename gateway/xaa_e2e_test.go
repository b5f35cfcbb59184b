package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// assertionRecorder remembers the ID-JAGs Mandate presents with the JWT
// bearer grant (to replay one) and passes every request on.
type assertionRecorder struct {
	base http.RoundTripper
	mu   sync.Mutex
	jags []string
}

func (a *assertionRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && r.Body != nil && strings.HasSuffix(r.URL.Path, authserver.PathToken) {
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if f, _ := url.ParseQuery(string(body)); f.Get("grant_type") == "urn:ietf:params:oauth:grant-type:jwt-bearer" {
			a.mu.Lock()
			a.jags = append(a.jags, f.Get("assertion"))
			a.mu.Unlock()
		}
	}
	return a.base.RoundTrip(r)
}

// Cross App Access between two Mandates: gateway 1's upstream "platform"
// is gateway 2's /mcp with flow cross_app_access; gateway 2's
// authorization server accepts ID-JAGs from the same IdP (devidp, which
// issues them) for Mandate's pre-registered client. rita's call through
// gateway 1 reaches gateway 2 as rita, with no browser anywhere.
func TestCrossAppAccessBetweenGateways(t *testing.T) {
	t.Parallel()
	idp, err := devidp.Start(context.Background(), devidp.Options{Users: []devidp.User{
		{ID: "user-rita", Username: "rita", Email: "rita@acme.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	const client, idpSecret, platformSecret = "mandate-xaa", "xaa-idp-secret", "xaa-platform-secret"
	if err := idp.RegisterClient(client, idpSecret); err != nil {
		t.Fatal(err)
	}
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	platform := startASGatewayWith(t, asOptions{idp: idp, key: key, mutate: func(c *Config) {
		c.AuthorizationServer.EnterpriseManaged.Enabled = true
		c.AuthorizationServer.Clients = []clients.ClientConfig{{ClientID: client, ClientName: "Mandate (gateway 1)",
			RedirectURIs: []string{"http://127.0.0.1:7777/unused"}, ClientSecret: secret.String(platformSecret)}}
	}})

	rec := &assertionRecorder{base: http.DefaultTransport}
	auditPath := filepath.Join(t.TempDir(), "audit.log")
	gw := startGatewayOpts(t, idp.Issuer(), func(c *Config) {
		c.Audit.Sink, c.Audit.Path = audit.SinkFile, auditPath
		c.Upstreams = []upstreams.Config{{Name: "platform", Kind: upstreams.KindMCP, URL: platform.mcpAt,
			Credentials: credentials.Config{Flow: credentials.FlowCrossAppAccess,
				TokenURL: idp.TokenURL(), ClientID: client, ClientSecret: idpSecret,
				Audience:         platform.issuer,
				PlatformTokenURL: platform.base + authserver.PathToken, PlatformClientID: client, PlatformClientSecret: platformSecret}}}
		c.Policy = policy.Config{Default: "deny", Rules: []policy.Rule{{Name: "everyone", Effect: "allow", When: "true"}}}
	}, Options{UpstreamTransport: rec})

	rita := connect(t, gw.mcpURL, idpToken(t, idp, "rita", devidp.TokenOptions{Audience: []string{gw.mcpURL}}))
	res, err := rita.CallTool(context.Background(), &mcp.CallToolParams{Name: "platform_whoami"})
	if err != nil || res.IsError {
		t.Fatalf("platform_whoami through gateway 1: %v %s", err, toolTextOr(res))
	}
	var who struct {
		Issuer  string `json:"issuer"`
		Subject string `json:"subject"`
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &who); err != nil || who.Subject != "user-rita" || who.Issuer != idp.Issuer() {
		t.Fatalf("gateway 2 says the caller is %s (%v), want user-rita of %s", b, err, idp.Issuer())
	}
	t.Logf("gateway 2's whoami through gateway 1: %s", b)
	ex := idp.Exchanges()
	if len(ex) == 0 || ex[len(ex)-1].IssuedTokenType != devidp.TokenTypeIDJAG || ex[len(ex)-1].ClientID != client ||
		ex[len(ex)-1].Audience[0] != platform.issuer {
		t.Errorf("the IdP's exchanges: %+v, want an ID-JAG for %s asked by %s", ex, platform.issuer, client)
	}

	// Gateway 1's audit record of the call names the flow and the
	// platform identity.
	var found bool
	deadline := time.Now().Add(5 * time.Second)
	for !found && time.Now().Before(deadline) {
		for _, r := range readAuditLines(t, auditPath) {
			if r.Method == "tools/call" && r.Upstream == "platform" && r.User.Subject == "user-rita" && r.Credential != nil &&
				r.Credential.Flow == credentials.FlowCrossAppAccess && r.Credential.PlatformSubject == "user-rita" && r.Outcome == audit.OutcomeOK {
				found = true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !found {
		t.Errorf("gateway 1's audit has no tools/call record naming flow %s and platform subject user-rita: %+v", credentials.FlowCrossAppAccess, readAuditLines(t, auditPath))
	}

	// A replayed ID-JAG is refused by gateway 2 (jti single use).
	rec.mu.Lock()
	jags := append([]string(nil), rec.jags...)
	rec.mu.Unlock()
	if len(jags) == 0 {
		t.Fatal("Mandate presented no ID-JAG at gateway 2")
	}
	replay := platform.token(t, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {jags[0]},
		"client_id": {client}, "client_secret": {platformSecret}}, http.StatusBadRequest)
	if replay["error"] != "invalid_grant" || !strings.Contains(replay["error_description"].(string), "already used") {
		t.Errorf("replayed ID-JAG: %v, want invalid_grant (already used)", replay)
	}

	// A user the IdP does not know (a token it signed for a deleted
	// account) gets a tool error that says the IdP refused the ID-JAG.
	now := time.Now()
	ghost, err := idp.SignJWT(map[string]any{"iss": idp.Issuer(), "sub": "user-ghost", "aud": []string{gw.mcpURL},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "ghost-1"})
	if err != nil {
		t.Fatal(err)
	}
	gres, err := connect(t, gw.mcpURL, ghost).CallTool(context.Background(), &mcp.CallToolParams{Name: "platform_whoami"})
	if err != nil || !gres.IsError {
		t.Fatalf("ghost's call: %v %s, want a tool error", err, toolTextOr(gres))
	}
	t.Logf("ghost's tool error: %s", toolText(gres))
	if text := toolText(gres); !strings.Contains(text, "identity provider refused to vouch for you") ||
		!strings.Contains(text, "does not belong to a user of this IdP") ||
		strings.Contains(text, ghost) {
		t.Errorf("ghost's tool error: %q, want it to say the identity provider refused the ID-JAG", text)
	}
}

func toolTextOr(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	return toolText(res)
}
