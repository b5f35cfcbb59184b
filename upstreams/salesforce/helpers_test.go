package salesforce

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
	"github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
)

const (
	consumerKey    = "mandate-test"
	consumerSecret = "cc-s3cret"
	testIssuer     = "https://idp.test/"
)

// signingKey is the connected app's key (the sandbox trusts its public half).
func signingKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, _ := resttest.RSAKeys(t)
	return k
}

// user builds the identity the gateway would: subject from the IdP, email
// mapped to the Salesforce username by the subject template.
func user(subject, email string) *identity.Identity {
	return identity.Identity{Issuer: testIssuer, Subject: subject, Email: email, EmailTrusted: true, Expiry: time.Now().Add(time.Hour)}.WithRawToken("inbound-" + subject)
}

var (
	rita   = user("user-rita", "rep@acme.example")
	sam    = user("user-sam", "rep2@acme.example")
	morgan = user("user-morgan", "manager@acme.example")
	val    = user("user-val", "vp@acme.example")
	oscar  = user("user-oscar", "outsider@acme.example")
	ghost  = user("user-ghost", "ghost@acme.example")
)

// env is a Salesforce sandbox on loopback, behind a resttest.Recorder,
// plus a real credentials broker.
type env struct {
	*resttest.Recorder
	sb         *sandbox.Server
	ts         *httptest.Server
	keyFile    string
	logs       *resttest.SyncBuffer
	brokerLogs *resttest.SyncBuffer
}

type envOptions struct {
	// sharing overrides the org-wide defaults (nil: a new org's, with
	// opportunities Public Read Only).
	sharing      map[string]sandbox.SharingModel
	batchSize    int
	requestLimit int
	intercept    func(w http.ResponseWriter, r *http.Request) bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	key := signingKey(t)
	seed := sandbox.DefaultSeed()
	seed.Sharing = o.sharing
	sb, err := sandbox.New(&sandbox.Options{
		Seed:              seed,
		BatchSize:         o.batchSize,
		DailyRequestLimit: o.requestLimit,
		Apps: []sandbox.ConnectedApp{{
			Name: "Mandate", ConsumerKey: consumerKey, ConsumerSecret: consumerSecret, PublicKey: &key.PublicKey,
			PreAuthorized: []string{"rep@acme.example", "rep2@acme.example", "manager@acme.example", "vp@acme.example", "outsider@acme.example"},
			RunAsUsername: "integration@acme.example",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sb: sb, logs: &resttest.SyncBuffer{}, brokerLogs: &resttest.SyncBuffer{}, Recorder: &resttest.Recorder{
		IsToken:   func(r *http.Request) bool { return r.URL.Path == "/services/oauth2/token" },
		IsREST:    func(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/services/data/") },
		Intercept: o.intercept,
	}}
	e.ts = httptest.NewServer(e.Handler(sb))
	t.Cleanup(e.ts.Close)

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	e.keyFile = filepath.Join(t.TempDir(), "sf.pem")
	if err := os.WriteFile(e.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) jwtBearer() credentials.Config {
	return credentials.Config{
		Flow:              credentials.FlowJWTBearer,
		TokenURL:          e.ts.URL + "/services/oauth2/token",
		ClientID:          consumerKey,
		PrivateKeyFile:    e.keyFile,
		AssertionAudience: "https://login.salesforce.com",
		Subject:           "{{ .Email }}",
	}
}

func (e *env) clientCredentials() credentials.Config {
	return credentials.Config{
		Flow:         credentials.FlowClientCredentials,
		TokenURL:     e.ts.URL + "/services/oauth2/token",
		ClientID:     consumerKey,
		ClientSecret: consumerSecret,
		ClientAuth:   credentials.AuthClientSecretPost,
	}
}

func (e *env) config(creds credentials.Config) upstreams.Config {
	return upstreams.Config{Name: "salesforce", Kind: upstreams.KindSalesforce, URL: e.ts.URL, Credentials: creds}
}

// adapter builds an adapter with the real broker over creds.
func (e *env) adapter(t *testing.T, cfg upstreams.Config) *Adapter {
	t.Helper()
	a, err := New(cfg, Deps{Credentials: resttest.BrokerSource(t, cfg, e.brokerLogs), Logger: resttest.DebugLogger(e.logs)})
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

func pipelineIDs(t *testing.T, res *mcp.CallToolResult) []string {
	t.Helper()
	var out PipelineOutput
	structured(t, res, &out)
	ids := []string{}
	for _, o := range out.Opportunities {
		ids = append(ids, o.ID)
	}
	return ids
}
