package authserver

import (
	"context"
	"testing"
)

// BenchmarkVerifyAccessToken is the hot path with a Mandate access token:
// a token seen before (verified-token cache, revocation set, session
// cache). Compare with authn's BenchmarkAuthenticateCached (an IdP token).
func BenchmarkVerifyAccessToken(b *testing.B) {
	a := newAS(b, startIdP(b), asOptions{})
	r, _ := a.signIn(b, "alice")
	ctx := context.Background()
	if _, ok, e := a.VerifyAccessToken(ctx, r.AccessToken); !ok || e != nil {
		b.Fatal(e)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, e := a.VerifyAccessToken(ctx, r.AccessToken); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkVerifyAccessTokenUncached is a token's first request: ES256
// signature and claim checks (the verified-token cache is emptied,
// untimed, before every call).
func BenchmarkVerifyAccessTokenUncached(b *testing.B) {
	a := newAS(b, startIdP(b), asOptions{})
	r, _ := a.signIn(b, "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		a.keys.tok.cache.Purge()
		b.StartTimer()
		if _, _, e := a.VerifyAccessToken(ctx, r.AccessToken); e != nil {
			b.Fatal(e)
		}
	}
}

// BenchmarkVerifyForeignToken is what Mandate's verifier adds to a request
// that carries an IdP token (it then goes to the IdP verifier).
func BenchmarkVerifyForeignToken(b *testing.B) {
	env := startIdP(b)
	a := newAS(b, env, asOptions{})
	tok, _, _ := env.login(b, "alice", 0)
	ctx := context.Background()
	_, _, _ = a.VerifyAccessToken(ctx, tok)
	b.ReportAllocs()
	for b.Loop() {
		if _, ours, _ := a.VerifyAccessToken(ctx, tok); ours {
			b.Fatal("IdP token taken for Mandate's")
		}
	}
}
