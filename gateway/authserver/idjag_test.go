package authserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/mandate-gw/mandate/gateway/audit"
)

const tJAGIssuer = "https://idp.enterprise.example"

// jagIdP signs ID-JAGs with an ES256 key whose JWKS an httptest server
// publishes.
type jagIdP struct {
	key *ecdsa.PrivateKey
	url string
}

func newJAGIdP(t *testing.T) *jagIdP {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "jag-1", Algorithm: "ES256", Use: "sig"}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(srv.Close)
	return &jagIdP{key: key, url: srv.URL}
}

func (j *jagIdP) sign(t *testing.T, key *ecdsa.PrivateKey, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jose.JSONWebKey{Key: key, KeyID: "jag-1"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := json.Marshal(claims)
	jws, err := signer.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := jws.CompactSerialize()
	return s
}

func TestIDJAG(t *testing.T) {
	env := startIdP(t)
	j := newJAGIdP(t)
	a := newAS(t, env, asOptions{cfg: func(c *Config) {
		c.EnterpriseManaged = EnterpriseConfig{Enabled: true, Issuer: tJAGIssuer, JWKSURL: j.url}
	}})
	now := a.clk.now()
	claims := func(edit ...func(map[string]any)) map[string]any {
		c := map[string]any{"iss": tJAGIssuer, "sub": "user-42", "aud": tIssuer, "client_id": tClient, "jti": randomToken(8),
			"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "resource": tResource, "scope": "mcp",
			"email": "u42@example.com", "email_verified": true}
		for _, e := range edit {
			e(c)
		}
		return c
	}
	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	form := func(jag string) url.Values {
		return url.Values{"grant_type": {GrantJWTBearer}, "assertion": {jag}, "client_id": {tClient}}
	}
	// Accepted.
	good := j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("aud", []string{tIssuer})))
	r := a.token(t, form(good))
	if r.Status != 200 || r.AccessToken == "" || r.RefreshToken != "" || r.Scope != "mcp" || r.ExpiresIn > 300 {
		t.Fatalf("ID-JAG: %+v", r)
	}
	id, ours, e := a.VerifyAccessToken(t.Context(), r.AccessToken)
	if !ours || e != nil || id.Subject != "user-42" || id.Email != "u42@example.com" || id.Expiry.After(now.Add(5*time.Minute)) {
		t.Fatalf("identity %v ours=%v err=%v", id, ours, e)
	}
	if !slices.Contains(a.methods(), audit.MethodOAuthToken) {
		t.Error("not audited")
	}
	// Replayed.
	wantTokenError(t, a.token(t, form(good)), 400, "invalid_grant", "already used")
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	cases := []struct{ name, jag, desc string }{
		{"wrong typ", j.sign(t, j.key, "JWT", claims()), `typ "JWT"`},
		{"wrong aud", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("aud", "https://other.example"))), "audience"},
		{"two audiences", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("aud", []string{tIssuer, "x"}))), "exactly"},
		{"other client", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("client_id", tClient2))), "another client"},
		{"wrong resource", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("resource", "https://evil.example/mcp"))), "resource"},
		{"no resource", j.sign(t, j.key, "oauth-id-jag+jwt", claims(func(c map[string]any) { delete(c, "resource") })), "resource"},
		{"expired", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("exp", now.Add(-time.Minute).Unix()), set("iat", now.Add(-3*time.Minute).Unix()))), "expired"},
		{"too long", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("exp", now.Add(time.Hour).Unix()))), "longer than"},
		{"no jti", j.sign(t, j.key, "oauth-id-jag+jwt", claims(func(c map[string]any) { delete(c, "jti") })), "jti"},
		{"other issuer", j.sign(t, j.key, "oauth-id-jag+jwt", claims(set("iss", "https://evil.example"))), "issuer"},
		{"unknown key", j.sign(t, other, "oauth-id-jag+jwt", claims()), "signature"},
		{"not a JWT", "abc", "not a signed JWT"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wantTokenError(t, a.token(t, form(c.jag)), 400, "invalid_grant", c.desc)
		})
	}
}
