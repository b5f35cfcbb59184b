package servicenow

import (
	"bytes"
	"context"
	"crypto"
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
	"github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

const (
	clientID     = "mandate"
	clientSecret = "s3cret"
	testIssuer   = "https://idp.test/"
	oidcClientID = "servicenow" // the instance's OIDC provider client id = the exchange audience
)

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
	idpKey  *rsa.PrivateKey
)

func keys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keyOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if idpKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey, idpKey
}

func user(subject, email string) *identity.Identity {
	return identity.Identity{Issuer: testIssuer, Subject: subject, Email: email, Expiry: time.Now().Add(time.Hour)}.WithRawToken("inbound-" + subject)
}

var (
	rita   = user("user-rita", "rep@acme.example")
	morgan = user("user-morgan", "manager@acme.example")
	ivy    = user("user-ivy", "it.agent@acme.example")
	oscar  = user("user-oscar", "outsider@acme.example")
	ghost  = user("user-ghost", "ghost@acme.example")
)

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

type env struct {
	sb        *sandbox.Server
	ts        *httptest.Server
	keyFile   string
	tokenHits atomic.Int64
	restHits  atomic.Int64
	rest401   atomic.Int64
	mu        sync.Mutex
	bearers   []string
	logs      *syncBuffer
}

type envOptions struct {
	rateLimit int
	oidc      []sandbox.OIDCProvider
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	key, _ := keys(t)
	sb, err := sandbox.New(&sandbox.Options{
		RateLimitPerHour: o.rateLimit,
		OIDCProviders:    o.oidc,
		Apps: []sandbox.OAuthApp{{
			Name: "Mandate", ClientID: clientID, ClientSecret: clientSecret,
			JWTKeys: []crypto.PublicKey{&key.PublicKey}, UserField: "email", RunAsUser: "svc.integration",
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{sb: sb, logs: &syncBuffer{}}
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth_token.do" {
			e.tokenHits.Add(1)
			sb.ServeHTTP(w, r)
			return
		}
		e.restHits.Add(1)
		e.mu.Lock()
		e.bearers = append(e.bearers, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		e.mu.Unlock()
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
	}))
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
	broker := credentials.NewBroker(credentials.BrokerOptions{
		Logger:              slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
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
