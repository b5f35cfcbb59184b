package servicenow

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
	"github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

const (
	clientID     = "mandate"
	clientSecret = "s3cret"
	testIssuer   = "https://idp.test/"
	oidcClientID = "servicenow" // the instance's OIDC provider client id = the exchange audience
)

// keys are the OAuth app's signing key and the company IdP's.
var keys = resttest.RSAKeys

func user(subject, email string) *identity.Identity {
	return identity.Identity{Issuer: testIssuer, Subject: subject, Email: email, EmailTrusted: true, Expiry: time.Now().Add(time.Hour)}.WithRawToken("inbound-" + subject)
}

var (
	rita   = user("user-rita", "rep@acme.example")
	morgan = user("user-morgan", "manager@acme.example")
	ivy    = user("user-ivy", "it.agent@acme.example")
	oscar  = user("user-oscar", "outsider@acme.example")
	ghost  = user("user-ghost", "ghost@acme.example")
)

// env is a ServiceNow sandbox on loopback behind a resttest.Recorder.
type env struct {
	*resttest.Recorder
	sb      *sandbox.Server
	ts      *httptest.Server
	keyFile string
	logs    *resttest.SyncBuffer

	mu     sync.Mutex
	tables map[string]int // Table API requests per path after /api/now/table/
}

// hits returns how many Table API requests went to table (list requests;
// a path with a sys_id counts under table/sys_id).
func (e *env) hits(table string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tables[table]
}

type envOptions struct {
	rateLimit int
	oidc      []sandbox.OIDCProvider
	seed      *sandbox.Seed
	dictRoles []string
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	key, _ := keys(t)
	sb, err := sandbox.New(&sandbox.Options{
		RateLimitPerHour: o.rateLimit,
		OIDCProviders:    o.oidc,
		Seed:             o.seed,
		DictionaryRoles:  o.dictRoles,
		Apps: []sandbox.OAuthApp{{
			Name: "Mandate", ClientID: clientID, ClientSecret: clientSecret,
			JWTKeys: []crypto.PublicKey{&key.PublicKey}, UserField: "email", RunAsUser: "svc.integration",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sb: sb, logs: &resttest.SyncBuffer{}, tables: map[string]int{}}
	e.Recorder = &resttest.Recorder{
		IsToken: func(r *http.Request) bool { return r.URL.Path == "/oauth_token.do" },
		Intercept: func(w http.ResponseWriter, r *http.Request) bool {
			e.mu.Lock()
			e.tables[strings.TrimPrefix(r.URL.Path, "/api/now/table/")]++
			e.mu.Unlock()
			return false
		},
	}
	e.ts = httptest.NewServer(e.Handler(sb))
	t.Cleanup(e.ts.Close)
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e.keyFile = filepath.Join(t.TempDir(), "sn.pem")
	if err := os.WriteFile(e.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) jwtBearer() credentials.Config {
	return credentials.Config{
		Flow:           credentials.FlowJWTBearer,
		TokenURL:       e.ts.URL + "/oauth_token.do",
		ClientID:       clientID,
		ClientSecret:   clientSecret,
		PrivateKeyFile: e.keyFile,
		Subject:        "{{ .Email }}",
	}
}

func (e *env) clientCredentials() credentials.Config {
	return credentials.Config{
		Flow:         credentials.FlowClientCredentials,
		TokenURL:     e.ts.URL + "/oauth_token.do",
		ClientID:     clientID,
		ClientSecret: clientSecret,
	}
}

func (e *env) config(creds credentials.Config) upstreams.Config {
	return upstreams.Config{Name: "servicenow", Kind: upstreams.KindServiceNow, URL: e.ts.URL, Credentials: creds}
}

func (e *env) adapter(t *testing.T, cfg upstreams.Config) *Adapter {
	t.Helper()
	a, err := New(cfg, Deps{Credentials: resttest.BrokerSource(t, cfg, e.logs), Logger: resttest.DebugLogger(e.logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

// The shared helpers, under the names these tests use.
var (
	ctxAs      = resttest.Ctx
	callTool   = resttest.CallTool
	mustTool   = resttest.MustTool
	text       = resttest.Text
	structured = resttest.Structured
)

func (e *env) seenBearers() []string { return e.Bearers() }

func sysIDs(t *testing.T, res *mcp.CallToolResult) []string {
	t.Helper()
	var out ListOutput
	structured(t, res, &out)
	ids := []string{}
	for _, r := range out.Records {
		ids = append(ids, r["sys_id"].(string))
	}
	return ids
}
