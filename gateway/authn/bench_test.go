package authn

import (
	"context"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// benchAuthenticator starts the dev IdP (zitadel OP) and an Authenticator
// that trusts it, with its keys loaded, and returns one token for alice.
func benchAuthenticator(b *testing.B, cacheSize int) (*Authenticator, string) {
	b.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { idp.Close() })
	aud := "http://127.0.0.1:8080/mcp"
	tok, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{Audience: []string{aud}})
	if err != nil {
		b.Fatal(err)
	}
	a := New(Config{Issuer: idp.Issuer(), Audience: aud}.WithDefaults(aud), Options{CacheSize: cacheSize})
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	a.Start(ctx)
	for deadline := time.Now().Add(10 * time.Second); !a.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			b.Fatalf("keys not loaded: %s", a.Status())
		}
	}
	return a, tok
}

// BenchmarkAuthenticateCached is the hot path: a token seen before is
// found by its SHA-256 in the verified-token cache (expiry re-checked).
func BenchmarkAuthenticateCached(b *testing.B) {
	a, tok := benchAuthenticator(b, 0)
	hdr := []string{"Bearer " + tok}
	if _, e := a.Authenticate(context.Background(), hdr); e != nil {
		b.Fatal(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, e := a.Authenticate(context.Background(), hdr); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkAuthenticateUncached is a token's first request: RS256
// signature check, claim checks and mapping (the cache is emptied, untimed,
// before every call).
func BenchmarkAuthenticateUncached(b *testing.B) {
	a, tok := benchAuthenticator(b, 0)
	hdr := []string{"Bearer " + tok}
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		a.cache.Purge()
		b.StartTimer()
		if _, e := a.Authenticate(context.Background(), hdr); e != nil {
			b.Fatal(e)
		}
	}
}
