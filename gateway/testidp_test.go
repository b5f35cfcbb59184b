package gateway

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// keyIdP is a minimal OIDC issuer for crafting tokens the real IdP would
// never issue (expired, tampered, wrong audience …): real discovery and JWKS
// over loopback, keys held by the test.
type keyIdP struct {
	srv      *httptest.Server
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	jwksHits atomic.Int64
	down     atomic.Bool
	extra    atomic.Pointer[jose.JSONWebKey] // published in addition, for rotation tests
}

func newKeyIdP(t testing.TB) *keyIdP {
	t.Helper()
	p := &keyIdP{}
	var err error
	if p.rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		t.Fatal(err)
	}
	if p.ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.issuer(),
			"jwks_uri":                              p.srv.URL + "/jwks",
			"authorization_endpoint":                p.srv.URL + "/authorize",
			"token_endpoint":                        p.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256", "ES256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.jwksHits.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		keys := []jose.JSONWebKey{
			{Key: p.rsaKey.Public(), KeyID: "rsa1", Algorithm: "RS256", Use: "sig"},
			{Key: p.ecKey.Public(), KeyID: "ec1", Algorithm: "ES256", Use: "sig"},
		}
		if e := p.extra.Load(); e != nil {
			keys = append(keys, *e)
		}
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: keys})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// issuer has a trailing slash, like zitadel's.
func (p *keyIdP) issuer() string { return p.srv.URL + "/" }

type claims map[string]any

// stdClaims are valid claims for the resource aud.
func (p *keyIdP) stdClaims(sub, aud string) claims {
	now := time.Now()
	return claims{
		"iss": p.issuer(), "sub": sub, "aud": []string{aud},
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(),
		"email": sub + "@example.com", "roles": []string{"sales"}, "groups": []string{"emea"},
		"scope": "openid mcp",
	}
}

func (p *keyIdP) sign(t testing.TB, alg jose.SignatureAlgorithm, kid string, key any, c claims) string {
	t.Helper()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("at+jwt").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(map[string]any(c)).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (p *keyIdP) rs256(t testing.TB, c claims) string {
	return p.sign(t, jose.RS256, "rsa1", p.rsaKey, c)
}

var _ crypto.Signer = (*rsa.PrivateKey)(nil)
