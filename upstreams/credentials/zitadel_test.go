package credentials

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/identity"
)

const (
	mcpAudience       = "http://127.0.0.1:8080/mcp"
	crmAudience       = "https://crm.internal"
	forbiddenAudience = "https://payroll.internal"
)

// startIdP runs the real zitadel/oidc OP (internal/app/devidp) on loopback with
// an exchange policy that refuses forbiddenAudience, and registers the
// gateway's client "mandate".
func startIdP(t testing.TB) *devidp.IdP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	idp, err := devidp.Start(ctx, devidp.Options{
		ExchangePolicy: func(_ context.Context, clientID, subject string, audience, scopes []string) error {
			if slices.Contains(audience, forbiddenAudience) {
				return devidp.ErrInvalidTarget("mandate may not obtain tokens for " + forbiddenAudience)
			}
			return nil
		},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close(); cancel() })
	if err := idp.RegisterClient("mandate", "mandate-secret"); err != nil {
		t.Fatal(err)
	}
	return idp
}

// loginAs returns a context carrying username's identity, built the way the
// gateway builds it: from the inbound token verified against the OP.
func loginAs(t testing.TB, idp *devidp.IdP, username string) context.Context {
	t.Helper()
	ctx := context.Background()
	raw, err := idp.Token(ctx, username, devidp.TokenOptions{Audience: []string{mcpAudience}, Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	v := oidc.NewVerifier(idp.Issuer(), oidc.NewRemoteKeySet(ctx, idp.JWKSURL()), &oidc.Config{ClientID: mcpAudience})
	tok, err := v.Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	_ = tok.Claims(&claims)
	email, _ := claims["email"].(string)
	id := identity.Identity{Issuer: tok.Issuer, Subject: tok.Subject, Email: email, Claims: claims, Expiry: tok.Expiry}
	return identity.NewContext(ctx, id.WithRawToken(raw))
}

type exchangedClaims struct {
	Scope string `json:"scope"`
	Act   *struct {
		Sub string `json:"sub"`
	} `json:"act"`
	ClientID string `json:"client_id"`
}

func TestZitadelTokenExchange(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "crm", Config{
		Flow: FlowTokenExchange, TokenURL: idp.TokenURL(), ClientID: "mandate", ClientSecret: "mandate-secret",
		Audience: crmAudience, ActorToken: true,
	})
	// The upstream verifies what it receives: issued by the OP, for ITS audience.
	upstreamVerifier := oidc.NewVerifier(idp.Issuer(), oidc.NewRemoteKeySet(context.Background(), idp.JWKSURL()), &oidc.Config{ClientID: crmAudience})

	for _, who := range []struct{ username, sub string }{{"alice", "user-alice"}, {"bob", "user-bob"}} {
		ctx := loginAs(t, idp, who.username)
		res, err := src.Token(ctx)
		if err != nil {
			t.Fatalf("%s: %v", who.username, err)
		}
		raw := res.Token.AccessToken.Reveal()
		if raw == identity.FromContext(ctx).RawToken() {
			t.Fatalf("%s: got the inbound token back", who.username)
		}
		tok, err := upstreamVerifier.Verify(context.Background(), raw)
		if err != nil {
			t.Fatalf("%s: exchanged token does not verify for aud %s: %v", who.username, crmAudience, err)
		}
		if tok.Subject != who.sub || res.Token.PlatformSubject != who.sub {
			t.Errorf("%s: exchanged sub = %q (PlatformSubject %q), want %q", who.username, tok.Subject, res.Token.PlatformSubject, who.sub)
		}
		if !slices.Equal(tok.Audience, []string{crmAudience}) {
			t.Errorf("%s: aud = %v", who.username, tok.Audience)
		}
		var c exchangedClaims
		_ = tok.Claims(&c)
		if c.Act == nil || c.Act.Sub != "mandate" {
			t.Errorf("%s: act = %+v, want Mandate recorded as actor", who.username, c.Act)
		}
		// The inbound token (aud = Mandate) must not verify at the upstream.
		if _, err := upstreamVerifier.Verify(context.Background(), identity.FromContext(ctx).RawToken()); err == nil {
			t.Fatal("inbound token verifies at the upstream: the test proves nothing")
		}
		// Cached: the second call makes no exchange.
		n := len(idp.Exchanges())
		if r, _ := src.Token(ctx); !r.CacheHit || len(idp.Exchanges()) != n {
			t.Errorf("%s: second call was not served from the cache", who.username)
		}
	}
}

func TestZitadelInvalidTarget(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	src := mustSource(t, NewBroker(BrokerOptions{}), "payroll", Config{
		Flow: FlowTokenExchange, TokenURL: idp.TokenURL(), ClientID: "mandate", ClientSecret: "mandate-secret", Audience: forbiddenAudience,
	})
	_, err := src.Token(loginAs(t, idp, "alice"))
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "invalid_target" || oe.Status != 400 {
		t.Fatalf("err = %v, want *Error invalid_target", err)
	}
	if !strings.Contains(err.Error(), "mandate may not obtain tokens") || !strings.Contains(err.Error(), "ask the platform team") {
		t.Errorf("message not clear: %q", err)
	}
}

func TestZitadelBadClientSecret(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	for _, auth := range []string{AuthClientSecretBasic, AuthClientSecretPost} {
		src := mustSource(t, NewBroker(BrokerOptions{}), "crm", Config{
			Flow: FlowTokenExchange, TokenURL: idp.TokenURL(), ClientID: "mandate", ClientSecret: "wrong-secret", ClientAuth: auth, Audience: crmAudience,
		})
		_, err := src.Token(loginAs(t, idp, "alice"))
		var oe *Error
		if !errors.As(err, &oe) || oe.Code != "invalid_client" {
			t.Fatalf("%s: err = %v, want *Error invalid_client", auth, err)
		}
		if strings.Contains(err.Error(), "wrong-secret") {
			t.Error("secret in error text")
		}
	}
}

func TestZitadelClientCredentials(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	src := mustSource(t, NewBroker(BrokerOptions{}), "reports", Config{
		Flow: FlowClientCredentials, TokenURL: idp.TokenURL(), ClientID: "mandate", ClientSecret: "mandate-secret",
	})
	res, err := src.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !res.Token.ServiceAccount || res.Token.PlatformSubject != "mandate" {
		t.Errorf("token = %+v", res.Token)
	}
}

// BenchmarkColdExchangeZitadel measures one uncached RFC 8693 exchange
// against the real OP on loopback (form POST, client auth, JWT signing at
// the OP, response parse, cache store).
func BenchmarkColdExchangeZitadel(b *testing.B) {
	idp := startIdP(b)
	src := mustSource(b, NewBroker(BrokerOptions{}), "crm", Config{
		Flow: FlowTokenExchange, TokenURL: idp.TokenURL(), ClientID: "mandate", ClientSecret: "mandate-secret", Audience: crmAudience,
	})
	ctx := loginAs(b, idp, "alice")
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		src.Invalidate(ctx, nil)
		if r, err := src.Token(ctx); err != nil || r.CacheHit {
			b.Fatal(err)
		}
	}
}
