package e2e

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

const crmAudience = "https://crm.internal"

// crmUpstream is an MCP server that accepts only tokens the IdP issued for
// crmAudience (what Mandate's token exchange obtains) and records whose.
type crmUpstream struct {
	URL      string
	mu       sync.Mutex
	subjects []string
}

func startCRM(t *testing.T, idp *devidp.IdP) *crmUpstream {
	t.Helper()
	provider, err := oidc.NewProvider(context.Background(), idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: crmAudience})
	s := mcp.NewServer(&mcp.Implementation{Name: "crm", Version: "1"}, nil)
	type none struct{}
	for _, name := range []string{"sales_report", "support_queue"} {
		mcp.AddTool(s, &mcp.Tool{Name: name, Description: name}, func(context.Context, *mcp.CallToolRequest, none) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil, nil
		})
	}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	u := &crmUpstream{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := verifier.Verify(r.Context(), strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		if err != nil {
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		u.mu.Lock()
		u.subjects = append(u.subjects, tok.Subject)
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	u.URL = srv.URL + "/mcp"
	return u
}

func (u *crmUpstream) saw(subject string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Contains(u.subjects, subject)
}

// TestTSSDKSignsInToServe: `mandate serve` with the authorization server on,
// fronting the zitadel OP (devidp). The official TypeScript SDK client signs
// in by itself — alice with dynamic registration, bob with a client ID
// metadata document served over https (the SDK's own CIMD branch) — lists tools, refreshes, lists
// again. Policy gives alice (sales) and bob (support) different tools, and
// the upstream is reached with a token obtained by RFC 8693 exchange of the
// IdP token Mandate keeps for the sign-in.
func TestTSSDKSignsInToServe(t *testing.T) {
	nodetools.Require(t, nodetools.ToolTSSDK)
	t.Parallel()
	idp := startIdP(t)
	crm := startCRM(t, idp)
	dir := t.TempDir()
	secret := rand.Text()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secretFile, keyFile := filepath.Join(dir, "idp-secret"), filepath.Join(dir, "storage.key")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`server:
  listen: {{ADDR}}
  public_url: {{URL}}
  shutdown_grace: 2s
identity:
  issuer: %[1]q
authorization_server:
  enabled: true
  idp:
    client_id: mandate
    client_secret_file: %[2]q
  metadata_documents:
    allow_loopback_http: true
storage:
  driver: sqlite
  path: %[3]q
  encryption_keys:
    - id: k1
      key_file: %[4]q
upstreams:
  - name: crm
    kind: mcp
    url: %[5]q
    credentials:
      flow: token_exchange
      token_url: %[6]q
      client_id: mandate
      client_secret_file: %[2]q
      audience: %[7]q
policy:
  default: deny
  rules:
    - name: sales
      effect: allow
      when: 'upstream == "crm" && tool == "sales_report" && "sales" in user.roles'
    - name: support
      effect: allow
      when: 'upstream == "crm" && tool == "support_queue" && "support" in user.roles'
telemetry:
  traces: none
`, idp.Issuer(), secretFile, filepath.Join(dir, "mandate.db"), keyFile, crm.URL, idp.TokenURL(), crmAudience)
	// bob's client publishes its metadata document over https on
	// 127.0.0.1, so the TypeScript SDK takes its own CIMD branch (it wants
	// an https clientMetadataUrl). Mandate trusts the test server's
	// certificate through SSL_CERT_FILE; metadata_documents.allow_loopback_http
	// is what lets it connect to 127.0.0.1 at all.
	const redirect = "http://127.0.0.1:1/callback"
	var docURL string
	var fetches atomic.Int32
	doc := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id": docURL, "client_name": "Mandate e2e (metadata document)", "redirect_uris": []string{redirect},
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"token_endpoint_auth_method": "none",
		})
	}))
	defer doc.Close()
	docURL = doc.URL + "/oauth/client.json"
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: doc.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	m := startMandateEnv(t, []string{"SSL_CERT_FILE=" + caFile}, cfg)
	// Mandate's client at the IdP: its redirect URI and the audience of
	// the IdP tokens it gets (identity.audience defaults to the MCP URL).
	if err := idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: secret,
		RedirectURIs: []string{m.URL + "/oauth/callback"}, Audience: []string{m.MCPURL}}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		user, sub, registration, has, hasNot string
	}{
		{"alice", "user-alice", nodetools.RegistrationDCR, "crm_sales_report", "crm_support_queue"},
		{"bob", "user-bob", nodetools.RegistrationCIMD, "crm_support_queue", "crm_sales_report"},
	}
	for _, c := range cases {
		t.Run(c.user+"/"+c.registration, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			o := nodetools.TSOAuthOptions{URL: m.MCPURL, LoginHint: c.user, RedirectURI: redirect,
				Registration: c.registration, Issuer: m.URL}
			if c.registration == nodetools.RegistrationCIMD {
				o.ClientMetadataURL = docURL
			}
			out, err := nodetools.RunTSOAuth(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("steps:\n  %s", strings.Join(out.Steps, "\n  "))
			if !slices.Contains(out.Tools, c.has) || slices.Contains(out.Tools, c.hasNot) {
				t.Errorf("%s's tools %v: want %s, not %s", c.user, out.Tools, c.has, c.hasNot)
			}
			if !out.Refreshed || !slices.Equal(out.Tools, out.ToolsAfterRefresh) {
				t.Errorf("refresh: refreshed %v, tools after %v", out.Refreshed, out.ToolsAfterRefresh)
			}
			if c.registration == nodetools.RegistrationCIMD {
				if out.ClientID != docURL || fetches.Load() == 0 {
					t.Errorf("client_id %q (want %s), metadata document fetched %d times", out.ClientID, docURL, fetches.Load())
				}
				if !slices.Contains(out.Steps, "client registered: metadata document URL") {
					t.Errorf("the SDK did not take its CIMD branch: %v", out.Steps)
				}
			}
			if !crm.saw(c.sub) {
				t.Errorf("the upstream never got an exchanged token for %s", c.sub)
			}
		})
	}
}
