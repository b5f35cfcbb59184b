package credentials

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
)

// tokenServer is an httptest token endpoint that counts requests and hands
// each one to handle.
type tokenServer struct {
	*httptest.Server
	calls  atomic.Int64
	handle func(w http.ResponseWriter, r *http.Request, form url.Values)
}

func newTokenServer(t testing.TB, handle func(w http.ResponseWriter, r *http.Request, form url.Values)) *tokenServer {
	t.Helper()
	ts := &tokenServer{handle: handle}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.calls.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
			http.Error(w, "bad request shape", 400)
			return
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		ts.handle(w, r, r.PostForm)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *tokenServer) TokenURL() string { return ts.URL + "/token" }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]any{"error": code, "error_description": desc})
}

// user returns a context carrying an identity with an inbound token.
func user(ctx context.Context, subject string, expiry time.Time) context.Context {
	id := identity.Identity{
		Issuer:  "https://idp.example.com/",
		Subject: subject,
		Email:   subject + "@example.com",
		Claims:  map[string]any{"sub": subject, "employee_id": "E-" + subject},
		Expiry:  expiry,
		// The IdP marked the email verified (email_verified: true).
		EmailTrusted: true,
	}
	return identity.NewContext(ctx, id.WithRawToken("inbound-token-of-"+subject))
}

func withIdentity(ctx context.Context, id identity.Identity, raw string) context.Context {
	return identity.NewContext(ctx, id.WithRawToken(raw))
}

// fakeClock is an injectable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)} }
func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSAKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		rsaKey, err = rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
	})
	return rsaKey
}

// writeRSAKey writes the test RSA key as PKCS#8 (pkcs1=false) or PKCS#1 PEM.
func writeRSAKey(t testing.TB, pkcs1 bool) string {
	t.Helper()
	k := testRSAKey(t)
	var block *pem.Block
	if pkcs1 {
		block = &pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)}
	} else {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		block = &pem.Block{Type: "PRIVATE KEY", Bytes: der}
	}
	return writeFile(t, "key.pem", pem.EncodeToMemory(block))
}

func writeECKey(t testing.TB) (string, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, "ec.pem", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})), k
}

func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustSource(t testing.TB, b *Broker, upstream string, cfg Config) Source {
	t.Helper()
	s, err := b.Source(upstream, cfg)
	if err != nil {
		t.Fatalf("Source(%s): %v", upstream, err)
	}
	return s
}
