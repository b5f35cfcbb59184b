package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// rotatingJWKS is an IdP's JWKS endpoint whose keys the test changes.
type rotatingJWKS struct {
	mu   sync.Mutex
	keys map[string]*ecdsa.PrivateKey // kid → key
	down atomic.Bool
	hits atomic.Int64
	srv  *httptest.Server
}

func newRotatingJWKS(t *testing.T, kids ...string) *rotatingJWKS {
	j := &rotatingJWKS{keys: map[string]*ecdsa.PrivateKey{}}
	for _, kid := range kids {
		j.add(t, kid)
	}
	j.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		if j.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		j.mu.Lock()
		var set jose.JSONWebKeySet
		for kid, k := range j.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.Public(), KeyID: kid, Algorithm: "ES256", Use: "sig"})
		}
		j.mu.Unlock()
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(j.srv.Close)
	return j
}

func (j *rotatingJWKS) add(t *testing.T, kid string) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	j.mu.Lock()
	j.keys[kid] = k
	j.mu.Unlock()
}

func (j *rotatingJWKS) remove(kid string) {
	j.mu.Lock()
	delete(j.keys, kid)
	j.mu.Unlock()
}

func (j *rotatingJWKS) sign(t *testing.T, kid string) string {
	j.mu.Lock()
	k := j.keys[kid]
	j.mu.Unlock()
	if k == nil {
		// A key the IdP no longer publishes (or never did).
		var err error
		if k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, (&jose.SignerOptions{}).WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(`{"sub":"alice"}`))
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKeyRotation walks an IdP through a key rotation on a fake clock:
// the new kid is fetched once and then served from the cache; unknown kids
// cost at most one fetch per MinKeyRefreshInterval; known keys keep working
// while the JWKS endpoint is down; a key the IdP withdrew stops working
// after the next fetch.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1")
	now := time.Unix(1_800_000_000, 0)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	advance := func(d time.Duration) { clockMu.Lock(); now = now.Add(d); clockMu.Unlock() }
	ks := newKeySet(j.srv.Client(), slog.New(slog.DiscardHandler), clock, []string{"ES256"})
	ks.setURL(j.srv.URL)
	ctx := context.Background()
	if err := ks.refresh(ctx, 0); err != nil {
		t.Fatal(err)
	}
	verify := func(kid string) error {
		_, err := ks.VerifySignature(ctx, j.sign(t, kid))
		return err
	}
	hits := func() int64 { return j.hits.Load() }

	if err := verify("k1"); err != nil {
		t.Fatalf("k1: %v", err)
	}
	// The IdP starts signing with k2. Right after a fetch the new kid waits
	// for the refresh interval (a token with a random kid cannot force one).
	j.add(t, "k2")
	advance(time.Second)
	before := hits()
	if err := verify("k2"); err == nil || !strings.Contains(err.Error(), `no signing key with kid "k2"`) {
		t.Fatalf("k2 within the refresh interval: %v", err)
	}
	if hits() != before {
		t.Fatalf("an unknown kid within %s of the last fetch caused a fetch", MinKeyRefreshInterval)
	}
	advance(MinKeyRefreshInterval)
	if err := verify("k2"); err != nil {
		t.Fatalf("k2 after the interval: %v", err)
	}
	if d := hits() - before; d != 1 {
		t.Fatalf("the rotation cost %d fetches, want 1", d)
	}
	// Fetched once, then cached: many k2 (and k1) tokens, no fetch.
	before = hits()
	for range 50 {
		if err := verify("k2"); err != nil {
			t.Fatal(err)
		}
		if err := verify("k1"); err != nil {
			t.Fatal(err)
		}
	}
	if hits() != before {
		t.Errorf("known kids caused %d fetches", hits()-before)
	}
	// 100 tokens with random kids over 25 s: at most one fetch per interval.
	before = hits()
	for i := range 100 {
		advance(250 * time.Millisecond)
		if err := verify("random-" + string(rune('a'+i%26))); err == nil {
			t.Fatal("a token with an unknown kid verified")
		}
	}
	if d := hits() - before; d > 3 {
		t.Errorf("100 unknown-kid tokens over 25s caused %d fetches, want ≤ 3 (one per %s)", d, MinKeyRefreshInterval)
	}
	// JWKS down: known keys keep working, unknown kids fail cleanly.
	j.down.Store(true)
	advance(MinKeyRefreshInterval)
	if err := verify("k1"); err != nil {
		t.Errorf("k1 with the JWKS endpoint down: %v", err)
	}
	if err := verify("k3"); err == nil {
		t.Error("unknown kid verified with the JWKS endpoint down")
	}
	if err := verify("k2"); err != nil {
		t.Errorf("k2 after a failed fetch: %v", err)
	}
	j.down.Store(false)
	// The IdP withdraws k1: after the next fetch k1 tokens fail.
	j.remove("k1")
	advance(MinKeyRefreshInterval)
	if err := verify("k-unknown"); err == nil {
		t.Fatal("unknown kid verified")
	}
	if err := verify("k1"); err == nil {
		t.Error("a withdrawn key still verifies after the JWKS was fetched again")
	}
	if err := verify("k2"); err != nil {
		t.Errorf("k2 after k1 was withdrawn: %v", err)
	}
}
