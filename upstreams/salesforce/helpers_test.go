package salesforce

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
)

const (
	consumerKey    = "mandate-test"
	consumerSecret = "cc-s3cret"
	testIssuer     = "https://idp.test/"
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func signingKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		rsaKey = k
	})
	return rsaKey
}

// user builds the identity the gateway would: subject from the IdP, email
// mapped to the Salesforce username by the subject template.
func user(subject, email string) *identity.Identity {
	return identity.Identity{Issuer: testIssuer, Subject: subject, Email: email, Expiry: time.Now().Add(time.Hour)}.WithRawToken("inbound-" + subject)
}

var (
	rita   = user("user-rita", "rep@acme.example")
	sam    = user("user-sam", "rep2@acme.example")
	morgan = user("user-morgan", "manager@acme.example")
	val    = user("user-val", "vp@acme.example")
	oscar  = user("user-oscar", "outsider@acme.example")
	ghost  = user("user-ghost", "ghost@acme.example")
)

// env is a Salesforce sandbox on loopback plus a real credentials broker.
type env struct {
	sb         *sandbox.Server
	ts         *httptest.Server
	keyFile    string
	tokenHits  atomic.Int64 // POSTs to the token endpoint
	restHits   atomic.Int64 // REST API requests
	rest401    atomic.Int64
	mu         sync.Mutex
	bearers    []string // every bearer token sent to the REST API
	intercept  func(w http.ResponseWriter, r *http.Request) bool
	logs       *syncBuffer
	brokerLogs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type envOptions struct {
	batchSize    int
	requestLimit int
	intercept    func(w http.ResponseWriter, r *http.Request) bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	key := signingKey(t)
	sb, err := sandbox.New(&sandbox.Options{
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
	e := &env{sb: sb, intercept: o.intercept, logs: &syncBuffer{}, brokerLogs: &syncBuffer{}}
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/services/oauth2/token" {
			e.tokenHits.Add(1)
		} else if strings.HasPrefix(r.URL.Path, "/services/data/") {
			e.restHits.Add(1)
			e.mu.Lock()
			e.bearers = append(e.bearers, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
			e.mu.Unlock()
			if e.intercept != nil && e.intercept(w, r) {
				return
			}
			rec := httptest.NewRecorder()
			sb.ServeHTTP(rec, r)
			if rec.Code == http.StatusUnauthorized {
				e.rest401.Add(1)
			}
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return
		}
		sb.ServeHTTP(w, r)
	}))
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
	broker := credentials.NewBroker(credentials.BrokerOptions{
		Logger:              slog.New(slog.NewTextHandler(e.brokerLogs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		InvalidGrantBackoff: -1,
	})
	src, err := broker.Source(cfg.Name, cfg.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(cfg, Deps{Credentials: src, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func (e *env) seenBearers() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.bearers...)
}

func ctxAs(t *testing.T, id *identity.Identity) (context.Context, *callinfo.Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ctx, info := callinfo.NewContext(ctx)
	return identity.NewContext(ctx, id), info
}

func callTool(t *testing.T, a *Adapter, id *identity.Identity, name string, args any) (*mcp.CallToolResult, *callinfo.Info, error) {
	t.Helper()
	s, err := a.Open(context.Background(), upstreams.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, info := ctxAs(t, id)
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	return res, info, err
}

func mustTool(t *testing.T, a *Adapter, id *identity.Identity, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, _, err := callTool(t, a, id, name, args)
	if err != nil {
		t.Fatalf("%s as %s: %v", name, id.Subject, err)
	}
	if res.IsError {
		t.Fatalf("%s as %s: tool error: %s", name, id.Subject, text(res))
	}
	return res
}

func text(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// structured round-trips the structured content into v.
func structured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
}

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
