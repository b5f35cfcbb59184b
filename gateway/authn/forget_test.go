package authn

import (
	"context"
	"testing"
	"time"
)

// Forget (the purge's part in authentication) drops every cached
// verification of one user's tokens, and only that user's: the next
// request with such a token is verified afresh (it is still accepted while
// the IdP's signature and exp say so: a purge is not a block list).
func TestForgetDropsOnlyThatUsersVerifiedTokens(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1")
	a := newTestAuthenticator(t, j, nil)
	alice2 := testClaims("alice")
	alice2["iat"] = time.Now().Add(-time.Minute).Unix() // a second, different token
	toks := map[string]string{
		"alice-1": j.signClaims(t, "k1", testClaims("alice"), nil),
		"alice-2": j.signClaims(t, "k1", alice2, nil),
		"bob":     j.signClaims(t, "k1", testClaims("bob"), nil),
	}
	for name, tok := range toks {
		if _, e := a.Authenticate(context.Background(), bearer(tok)); e != nil {
			t.Fatalf("%s: %v", name, e)
		}
	}
	if n := a.cache.Len(); n != 3 {
		t.Fatalf("cache holds %d verified tokens, want 3", n)
	}
	if n := a.Forget("https://other-idp.example/", "alice"); n != 0 {
		t.Errorf("Forget for another issuer dropped %d entries", n)
	}
	if n := a.Forget(testIssuer, "alice"); n != 2 {
		t.Errorf("Forget(alice) dropped %d entries, want 2", n)
	}
	for _, k := range a.cache.Keys() {
		if e, _ := a.cache.Peek(k); e == nil || e.id.Subject != "bob" {
			t.Errorf("after Forget(alice) the cache still holds %+v", e)
		}
	}
	if a.cache.Len() != 1 {
		t.Errorf("cache holds %d entries after Forget(alice), want bob's 1", a.cache.Len())
	}
	// Verified afresh, and accepted (still a valid token).
	if id, e := a.Authenticate(context.Background(), bearer(toks["alice-1"])); e != nil || id.Subject != "alice" {
		t.Errorf("alice after Forget: %v %v", id, e)
	}
}
