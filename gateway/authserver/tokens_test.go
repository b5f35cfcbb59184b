package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// signRaw signs arbitrary claims with key under header fields (for
// negative tests).
func signRaw(t testing.TB, key *ecdsa.PrivateKey, hdr map[string]string, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(hdr)
	p, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (a *testAS) claims(sid, fam string) map[string]any {
	now := a.clk.now()
	return map[string]any{"iss": tIssuer, "aud": tResource, "sub": "alice", "exp": now.Add(5 * time.Minute).Unix(),
		"iat": now.Unix(), "jti": randomToken(8), "client_id": tClient, "sid": sid, "fam": fam}
}

func TestAccessTokenVerifies(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	r, sid := a.signIn(t, "alice")
	if r.TokenType != "Bearer" || r.ExpiresIn != 600 || r.Scope != "mcp" {
		t.Errorf("reply %+v", r)
	}
	id, ours, e := a.VerifyAccessToken(context.Background(), r.AccessToken)
	if !ours || e != nil {
		t.Fatalf("ours=%v err=%v", ours, e)
	}
	sess, _ := a.sessions.cache.Get(sid)
	if id.Subject == "" || id.Subject != sess.id.Subject || id.OAuthClient != tClient || id.Issuer != env.idp.Issuer() || id.RawToken() != sess.row.AccessToken || id.RawToken() == r.AccessToken {
		t.Errorf("identity %v raw token is the IdP's: %v", id, id.RawToken() == sess.row.AccessToken)
	}
	if want := a.clk.now().Add(10 * time.Minute).Truncate(time.Second); !id.Expiry.Equal(want) {
		t.Errorf("expiry %v, want the access token's %v", id.Expiry, want)
	}
	// The header says at+jwt (RFC 9068) with the kid.
	h, _ := decodeHeader(strings.Split(r.AccessToken, ".")[0])
	if h.Typ != "at+jwt" || h.Alg != "ES256" || h.Kid != a.keys.cur.Load().active.id {
		t.Errorf("header %+v", h)
	}
	// An IdP token is not Mandate's: the caller falls back to the IdP verifier.
	idpTok, _, _ := env.login(t, "alice", 0)
	for range 2 {
		if _, ours, e := a.VerifyAccessToken(context.Background(), idpTok); ours || e != nil {
			t.Fatalf("IdP token: ours=%v err=%v", ours, e)
		}
	}
	if !a.keys.tok.isForeign(strings.Split(idpTok, ".")[0]) {
		t.Error("the IdP token's header was not remembered as foreign")
	}
	// A warm call returns the same identity without allocating.
	allocs := testing.AllocsPerRun(100, func() { _, _, _ = a.VerifyAccessToken(context.Background(), r.AccessToken) })
	if allocs != 0 {
		t.Errorf("warm verify allocates %v times", allocs)
	}
}

func TestAccessTokenRefusals(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	r, sid := a.signIn(t, "alice")
	fam := func() string {
		c, ok := a.parseOwnAccessToken(r.AccessToken)
		if !ok {
			t.Fatal("cannot parse own token")
		}
		return c.Fam
	}()
	active := a.keys.cur.Load().active
	hdr := map[string]string{"alg": "ES256", "kid": active.id, "typ": "at+jwt"}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	with := func(k string, v any) map[string]any { c := a.claims(sid, fam); c[k] = v; return c }
	cases := []struct {
		name, tok, desc string
	}{
		{"wrong aud", signRaw(t, active.priv, hdr, with("aud", "https://other.example/mcp")), "audience is not this resource"},
		{"expired", signRaw(t, active.priv, hdr, with("exp", a.clk.now().Add(-time.Minute).Unix())), "token expired"},
		{"not yet valid", signRaw(t, active.priv, hdr, with("nbf", a.clk.now().Add(time.Hour).Unix())), "not valid yet"},
		{"wrong typ", signRaw(t, active.priv, map[string]string{"alg": "ES256", "kid": active.id, "typ": "JWT"}, a.claims(sid, fam)), `typ "JWT"`},
		{"other key, same kid", signRaw(t, other, hdr, a.claims(sid, fam)), "signature is invalid"},
		{"other key, unknown kid", signRaw(t, other, map[string]string{"alg": "ES256", "kid": "nope", "typ": "at+jwt"}, a.claims(sid, fam)), "unknown key"},
		{"no session", signRaw(t, active.priv, hdr, with("sid", "")), "no session"},
		{"unknown session", signRaw(t, active.priv, hdr, with("sid", "unknown")), "sign-in at the identity provider has ended"},
		{"tampered", r.AccessToken[:len(r.AccessToken)-4] + "AAAA", "signature is invalid"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if ok, desc := a.verify(t, c.tok); ok || !strings.Contains(desc, c.desc) {
				t.Errorf("ok=%v %q, want refusal containing %q", ok, desc, c.desc)
			}
		})
	}
	// The genuine token verifies, then expires on the clock.
	if ok, desc := a.verify(t, r.AccessToken); !ok {
		t.Fatal(desc)
	}
	a.clk.add(11 * time.Minute)
	if ok, desc := a.verify(t, r.AccessToken); ok || desc != "token expired" {
		t.Errorf("after expiry: ok=%v %q", ok, desc)
	}
}

func TestRevokedFamilyAndEndedSession(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	r, _ := a.signIn(t, "alice")
	if ok, desc := a.verify(t, r.AccessToken); !ok {
		t.Fatal(desc)
	}
	// RFC 7009 revocation of the access token revokes its family.
	rr := a.post(t, a.handleRevoke, map[string][]string{"token": {r.AccessToken}, "client_id": {tClient}})
	if rr.Status != 200 {
		t.Fatalf("revoke: %d %s", rr.Status, rr.Description)
	}
	if ok, desc := a.verify(t, r.AccessToken); ok || desc != "token has been revoked" {
		t.Errorf("revoked: ok=%v %q", ok, desc)
	}
	if rf := a.token(t, map[string][]string{"grant_type": {"refresh_token"}, "refresh_token": {r.RefreshToken}, "client_id": {tClient}}); rf.Status != 400 || rf.Error != "invalid_grant" {
		t.Errorf("refresh of a revoked family: %d %s", rf.Status, rf.Error)
	}
	// A session whose IdP token expired without a refresh token has ended.
	sid := a.session(t, "bob", "", 2*time.Minute)
	code, _ := a.code(t, sid, tClient)
	r2 := a.token(t, codeForm(code))
	if r2.Status != 200 {
		t.Fatal(r2.Description)
	}
	if ok, desc := a.verify(t, r2.AccessToken); !ok {
		t.Fatal(desc)
	}
	a.clk.add(3 * time.Minute)
	if ok, desc := a.verify(t, r2.AccessToken); ok || !strings.Contains(desc, "sign-in at the identity provider has ended") {
		t.Errorf("ended session: ok=%v %q", ok, desc)
	}
}

func TestKeyRotation(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{rotation: time.Hour, ttl: time.Hour})
	first := a.keys.cur.Load().active.id
	a.clk.add(50 * time.Minute)
	r, _ := a.signIn(t, "alice") // expires at 110m
	if err := a.keys.rotate(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if a.keys.cur.Load().active.id != first {
		t.Fatal("rotated before the rotation period")
	}
	a.clk.add(15 * time.Minute) // 65m: due
	if err := a.keys.rotate(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	second := a.keys.cur.Load().active.id
	if second == first {
		t.Fatal("not rotated")
	}
	jwks := func() []string {
		rec := httptest.NewRecorder()
		a.handleJWKS(rec, httptest.NewRequest(http.MethodGet, PathJWKS, nil))
		var doc struct {
			Keys []struct{ Kid, Kty, Crv, Alg, Use, X, Y string } `json:"keys"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "max-age") {
			t.Errorf("Cache-Control %q", cc)
		}
		var ids []string
		for _, k := range doc.Keys {
			if k.Kty != "EC" || k.Crv != "P-256" || k.Alg != "ES256" || k.Use != "sig" || len(k.X) != 43 || len(k.Y) != 43 {
				t.Errorf("JWK %+v", k)
			}
			ids = append(ids, k.Kid)
		}
		return ids
	}
	if got := jwks(); len(got) != 2 || got[0] != second || got[1] != first {
		t.Errorf("JWKS kids %v, want [%s %s]", got, second, first)
	}
	// The old key's token (1h lifetime, 5m left) still verifies; new
	// tokens are signed by the new key.
	a.keys.tok.cache.Purge()
	if ok, desc := a.verify(t, r.AccessToken); !ok {
		t.Errorf("old token after rotation: %s", desc)
	}
	r2, _ := a.signIn(t, "bob")
	if h, _ := decodeHeader(strings.Split(r2.AccessToken, ".")[0]); h.Kid != second {
		t.Errorf("new token signed by %s", h.Kid)
	}
	// Once every token it signed has expired the old key is withdrawn.
	a.clk.add(MaxAccessTokenTTL + 2*keySkew)
	if err := a.keys.reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := jwks(); len(got) != 1 || got[0] != second {
		t.Errorf("JWKS kids %v after the publication window, want [%s]", got, second)
	}
}

func TestReplicaSharesKeysAndRevocations(t *testing.T) {
	env := startIdP(t)
	dir := t.TempDir()
	clk := &clock{t: time.Now()}
	a := newAS(t, env, asOptions{st: openStore(t, dir), clk: clk})
	b := newAS(t, env, asOptions{st: openStore(t, dir), clk: clk})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Run(ctx)
	r, _ := a.signIn(t, "alice")
	if ok, desc := b.verify(t, r.AccessToken); !ok {
		t.Fatalf("replica: %s", desc)
	}
	// A rotates: B meets a token signed by a key it has not loaded.
	if err := a.keys.rotate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	r2, _ := a.signIn(t, "bob")
	if ok, desc := b.verify(t, r2.AccessToken); !ok {
		t.Fatalf("replica, new key: %s", desc)
	}
	// A revokes; B learns it within the sync interval.
	rr := a.post(t, a.handleRevoke, map[string][]string{"token": {r.RefreshToken}, "client_id": {tClient}, "token_type_hint": {"refresh_token"}})
	if rr.Status != 200 {
		t.Fatalf("revoke: %d %s", rr.Status, rr.Description)
	}
	start := time.Now()
	for {
		if ok, _ := b.verify(t, r.AccessToken); !ok {
			break
		}
		if time.Since(start) > 2*revocationSyncInterval+time.Second {
			t.Fatalf("replica still accepts a revoked token after %v", time.Since(start))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("replica saw the revocation after %v", time.Since(start).Round(time.Millisecond))
	if ok, desc := b.verify(t, r2.AccessToken); !ok {
		t.Errorf("another family was revoked too: %s", desc)
	}
}
