package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/testenv/testhydra"
)

// startHydra runs the real Ory Hydra v2.3.0. Without the binary the test is
// skipped, unless MANDATE_E2E is set, in which case absence is a failure.
func startHydra(t *testing.T) *testhydra.Hydra {
	t.Helper()
	if path, ok := testhydra.Available(testhydra.Options{}); !ok {
		if os.Getenv("MANDATE_E2E") != "" {
			t.Fatalf("MANDATE_E2E is set but the hydra binary %s is missing: run internal/testenv/testhydra/build/build.sh", path)
		}
		t.Skipf("hydra binary %s missing (run internal/testenv/testhydra/build/build.sh; MANDATE_E2E=1 makes this a failure)", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := testhydra.Start(ctx, testhydra.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestHydraJWTBearer(t *testing.T) {
	t.Parallel()
	h := startHydra(t)
	ctx := context.Background()
	const clientID, clientSecret, kid = "mandate", "mandate-hydra-secret", "mandate-key-1"
	if err := h.CreateClient(ctx, clientID, clientSecret, []string{testhydra.GrantTypeJWTBearer}, []string{"api"}, "client_secret_basic"); err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &testRSAKey(t).PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}
	if err := h.TrustIssuer(ctx, clientID, "", []string{"api"}, pub, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	mapFile := writeFile(t, "users.yaml", []byte("user-alice: alice@acme.example\nuser-bob: bob@acme.example\n"))
	cfg := Config{
		Flow: FlowJWTBearer, TokenURL: h.TokenURL(), ClientID: clientID, ClientSecret: clientSecret,
		PrivateKeyFile: writeRSAKey(t, false), KeyID: kid, Scopes: []string{"api"}, SubjectMapFile: mapFile,
	}
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "salesforce", cfg)
	verifyAtHydra := func(raw string) jwt.Claims {
		t.Helper()
		var ks jose.JSONWebKeySet
		resp, err := http.Get(h.JWKSURL())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil {
			t.Fatal(err)
		}
		tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatalf("Hydra access token is not a JWT: %v", err)
		}
		keys := ks.Key(tok.Headers[0].KeyID)
		if len(keys) == 0 {
			t.Fatalf("kid %q not in Hydra's JWKS", tok.Headers[0].KeyID)
		}
		var c jwt.Claims
		if err := tok.Claims(keys[0].Key, &c); err != nil {
			t.Fatalf("signature: %v", err)
		}
		return c
	}

	for _, u := range []struct{ sub, want string }{{"user-alice", "alice@acme.example"}, {"user-bob", "bob@acme.example"}} {
		id := identity.Identity{Issuer: "https://idp.example/", Subject: u.sub}
		uctx := withIdentity(ctx, id, "never-sent")
		// Three exchanges in a row (cache dropped between): Hydra refuses a
		// replayed jti, so each must carry a freshly signed assertion.
		for i := 0; i < 3; i++ {
			src.Invalidate(uctx, nil)
			res, err := src.Token(uctx)
			if err != nil {
				t.Fatalf("%s exchange %d: %v", u.sub, i+1, err)
			}
			c := verifyAtHydra(res.Token.AccessToken.Reveal())
			if c.Subject != u.want || res.Token.PlatformSubject != u.want {
				t.Errorf("%s: Hydra token sub = %q (PlatformSubject %q), want %q", u.sub, c.Subject, res.Token.PlatformSubject, u.want)
			}
		}
	}

	// Replay is refused by Hydra: the same assertion posted twice.
	jb := src.(*source).fl.(*jwtBearerFlow)
	assertion, err := jb.signer.sign(clientID, "alice@acme.example", h.TokenURL(), "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	form := func() url.Values {
		return url.Values{"grant_type": {grantJWTBearer}, "assertion": {assertion}, "scope": {"api"}}
	}
	if _, err := jb.ep.post(ctx, form()); err != nil {
		t.Fatalf("first use of the assertion: %v", err)
	}
	_, err = jb.ep.post(ctx, form())
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "jti_known" {
		t.Fatalf("replayed assertion: err = %v, want jti_known", err)
	}

	// Wrong audience: a clear invalid_grant naming aud.
	bad := cfg
	bad.AssertionAudience = "https://login.salesforce.com"
	badSrc := mustSource(t, b, "salesforce-bad-aud", bad)
	_, err = badSrc.Token(withIdentity(ctx, identity.Identity{Issuer: "https://idp.example/", Subject: "user-alice"}, "x"))
	if !errors.As(err, &oe) || oe.Code != "invalid_grant" || !strings.Contains(oe.Description, "aud") {
		t.Fatalf("wrong audience: err = %v, want invalid_grant about aud", err)
	}
	if !strings.Contains(err.Error(), `upstream "salesforce-bad-aud"`) {
		t.Errorf("message lacks the upstream: %q", err)
	}
}
