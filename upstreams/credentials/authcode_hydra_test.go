package credentials

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/testenv/testhydra"
)

// Per-user grants (flow authorization_code) against the real Ory Hydra as
// the platform's authorization server: codes with PKCE, rotating refresh
// tokens (a replayed one is answered invalid_grant and the grant's tokens
// revoked), RFC 7009 revocation; the grants in the real store.

const acIssuer = "https://idp.example/"
const acRedirect = "http://127.0.0.1:9/connect/callback"

func startHydraWith(t testing.TB, env ...string) *testhydra.Hydra {
	t.Helper()
	if path, ok := testhydra.Available(testhydra.Options{}); !ok {
		if os.Getenv("MANDATE_E2E") != "" {
			t.Fatalf("MANDATE_E2E is set but the hydra binary %s is missing: run internal/testenv/testhydra/build/build.sh", path)
		}
		t.Skipf("hydra binary %s missing (run internal/testenv/testhydra/build/build.sh; MANDATE_E2E=1 makes this a failure)", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h, err := testhydra.Start(ctx, testhydra.Options{Env: append(append([]string{}, testhydra.LoginConsentEnv...), env...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// refreshCounter counts the refresh requests that reach the token
// endpoint.
type refreshCounter struct {
	base http.RoundTripper
	n    *atomic.Int64
}

func (c refreshCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && strings.HasSuffix(r.URL.Path, "/oauth2/token") {
		body, _ := io.ReadAll(r.Body)
		r.Body.Close()
		if form, _ := url.ParseQuery(string(body)); form.Get("grant_type") == "refresh_token" {
			c.n.Add(1)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
	}
	return c.base.RoundTrip(r)
}

func countingClient(n *atomic.Int64) *http.Client {
	return &http.Client{Transport: refreshCounter{http.DefaultTransport.(*http.Transport).Clone(), n}}
}

func acUser(u string) context.Context {
	return withIdentity(context.Background(), identity.Identity{Issuer: acIssuer, Subject: "user-" + u}, "inbound-of-"+u)
}

func pkce(t testing.TB) (verifier, challenge string) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

// connectAt runs the user's side of a consent: the platform's page (Hydra,
// as platform user "platform-<u>"), the callback, Redeem.
func connectAt(t *testing.T, h *testhydra.Hydra, c Connector, u string) Grant {
	t.Helper()
	ctx := context.Background()
	verifier, challenge := pkce(t)
	state := "state-" + u + "-" + verifier[:8]
	authURL, err := c.AuthCodeURL(ctx, state, challenge, acRedirect, u)
	if err != nil {
		t.Fatal(err)
	}
	q, _ := url.Parse(authURL)
	if q.Query().Get("code_challenge_method") != "S256" || q.Query().Get("login_hint") != u {
		t.Errorf("authorization URL lacks S256 or login_hint: %s", authURL)
	}
	loc, err := h.Consent(ctx, authURL, "platform-"+u)
	if err != nil {
		t.Fatal(err)
	}
	if e := loc.Query().Get("error"); e != "" {
		t.Fatalf("Hydra refused the authorization: %s: %s", e, loc.Query().Get("error_description"))
	}
	if loc.Query().Get("state") != state || !strings.HasPrefix(loc.String(), acRedirect) {
		t.Fatalf("callback %s: wrong state or redirect", loc.Redacted())
	}
	g, err := c.Redeem(ctx, c.Key(acIssuer, "user-"+u), loc.Query().Get("code"), verifier, acRedirect)
	if err != nil {
		t.Fatalf("Redeem: %v", err)
	}
	return g
}

func wantConsent(t *testing.T, err error, reason string) {
	t.Helper()
	var cre *ConsentRequiredError
	if !errors.As(err, &cre) || cre.Reason != reason {
		t.Fatalf("err = %v, want ConsentRequiredError %s", err, reason)
	}
	var oe *Error
	if !errors.As(err, &oe) || oe.Flow != FlowAuthorizationCode || oe.Upstream == "" {
		t.Errorf("consent error is not an *Error naming upstream and flow: %#v", err)
	}
}

func TestAuthorizationCodeHydra(t *testing.T) {
	t.Parallel()
	for _, db := range []struct {
		name string
		open func(t testing.TB) func() storeGrants
	}{{"sqlite", sqliteGrants}, {"postgres", postgresGrants}} {
		t.Run(db.name, func(t *testing.T) {
			t.Parallel()
			open := db.open(t)
			h := startHydraWith(t)
			testAuthorizationCodeHydra(t, h, open)
		})
	}
}

func testAuthorizationCodeHydra(t *testing.T, h *testhydra.Hydra, open func() storeGrants) {
	ctx := context.Background()
	const clientID, clientSecret = "tracker-mandate", "tracker-mandate-secret"
	if err := h.CreateAuthCodeClient(ctx, clientID, clientSecret, []string{acRedirect}, []string{"offline_access", "issues"}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Flow: FlowAuthorizationCode, AuthorizationURL: h.PublicURL() + "oauth2/auth", TokenURL: h.TokenURL(),
		RevocationURL: h.PublicURL() + "oauth2/revoke",
		ClientID:      clientID, ClientSecret: clientSecret, Scopes: []string{"offline_access", "issues"},
	}
	clock := &fakeClock{t: time.Now()}
	var refreshes atomic.Int64
	// Two replicas: two brokers, each with its own Store on one database.
	storeA, storeB := open(), open()
	brokerA := NewBroker(BrokerOptions{Grants: storeA, Now: clock.Now, HTTPClient: countingClient(&refreshes)})
	brokerB := NewBroker(BrokerOptions{Grants: storeB, Now: clock.Now, HTTPClient: countingClient(&refreshes)})
	srcA, srcB := mustSource(t, brokerA, "tracker", cfg), mustSource(t, brokerB, "tracker", cfg)
	conn, ok := brokerA.Connector("tracker")
	if !ok {
		t.Fatal("Broker.Connector: none for an authorization_code upstream")
	}
	if c2, ok := ConnectorOf(srcA); !ok || c2 != conn {
		t.Fatal("ConnectorOf(source) is not the broker's connector")
	}
	alice := acUser("alice")
	key := conn.Key(acIssuer, "user-alice")

	// No grant: the user is asked to connect.
	_, err := srcA.Token(alice)
	wantConsent(t, err, "no_grant")

	// Consent, then the access token from the grant (on the other replica).
	g := connectAt(t, h, conn, "alice")
	if g.PlatformSubject != "platform-alice" || g.RefreshToken == "" || g.ClientID != clientID {
		t.Fatalf("redeemed grant: subject %q, refresh token %v, client %q", g.PlatformSubject, g.RefreshToken != "", g.ClientID)
	}
	r, err := srcB.Token(alice)
	if err != nil {
		t.Fatal(err)
	}
	if r.Token.AccessToken.Reveal() != g.AccessToken || r.Token.PlatformSubject != "platform-alice" || r.Token.Flow != FlowAuthorizationCode {
		t.Fatalf("token from the grant: %+v", r.Token)
	}
	if in, err := h.Introspect(ctx, r.Token.AccessToken.Reveal()); err != nil || !in.Active || in.Subject != "platform-alice" {
		t.Fatalf("Hydra says of the token: %+v %v", in, err)
	}
	if r2, _ := srcB.Token(alice); !r2.CacheHit {
		t.Error("second call not served from the cache")
	}
	if refreshes.Load() != 0 {
		t.Fatalf("%d refreshes before expiry", refreshes.Load())
	}

	// Expiry: one refresh, the rotated refresh token stored.
	clock.Advance(2 * time.Hour)
	r, err = srcA.Token(alice)
	if err != nil {
		t.Fatal(err)
	}
	if refreshes.Load() != 1 {
		t.Fatalf("%d refreshes after expiry, want 1", refreshes.Load())
	}
	g2, err := storeA.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if g2.RefreshToken == g.RefreshToken || g2.AccessToken != r.Token.AccessToken.Reveal() || g2.AccessToken == g.AccessToken {
		t.Fatal("the refresh did not store the rotated refresh token and the new access token")
	}
	if !g2.Expiry.After(clock.Now()) {
		t.Errorf("refreshed grant expiry %v is not after now %v", g2.Expiry, clock.Now())
	}

	// A race: both replicas, many requests, on an expired token: exactly
	// one refresh at Hydra, and no replay (Hydra would answer invalid_grant
	// and revoke the grant's tokens).
	clock.Advance(2 * time.Hour)
	before := refreshes.Load()
	var wg sync.WaitGroup
	toks := make([]string, 12)
	errs := make([]error, 12)
	for i := range toks {
		src := srcA
		if i%2 == 1 {
			src = srcB
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := src.Token(acUser("alice"))
			errs[i] = err
			if err == nil {
				toks[i] = r.Token.AccessToken.Reveal()
			}
		}()
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil {
			t.Fatalf("racing request %d: %v", i, errs[i])
		}
		if toks[i] != toks[0] {
			t.Fatalf("racing requests got different tokens")
		}
	}
	if n := refreshes.Load() - before; n != 1 {
		t.Fatalf("%d refreshes for one race, want 1", n)
	}
	if in, err := h.Introspect(ctx, toks[0]); err != nil || !in.Active {
		t.Fatalf("after the race Hydra says the token is %+v %v (a replayed refresh token revokes the grant)", in, err)
	}

	// Hydra revokes the grant: the refresh gets invalid_grant, the grant is
	// marked broken, the user is asked again.
	if err := h.RevokeConsent(ctx, "platform-alice"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	_, err = srcB.Token(alice)
	wantConsent(t, err, "broken")
	if gb, err := storeB.Get(ctx, key); err != nil || !gb.Broken || !strings.Contains(gb.BrokenReason, "invalid_grant") || gb.RefreshToken != "" {
		t.Fatalf("after invalid_grant the stored grant is %+v, %v; want broken without tokens", gb.Broken, err)
	}
	_, err = srcA.Token(alice)
	wantConsent(t, err, "broken")
	if !strings.Contains(err.Error(), "connect again") {
		t.Errorf("broken grant message: %q", err)
	}

	// A new consent replaces the broken grant.
	connectAt(t, h, conn, "alice")
	if _, err := srcA.Token(alice); err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}

	// Disconnect revokes at Hydra and deletes the grant.
	gBob := connectAt(t, h, conn, "bob")
	bob := acUser("bob")
	rb, err := srcA.Token(bob)
	if err != nil || rb.Token.PlatformSubject != "platform-bob" {
		t.Fatalf("bob: %+v %v", rb.Token, err)
	}
	if err := conn.Disconnect(ctx, conn.Key(acIssuer, "user-bob")); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{gBob.AccessToken, gBob.RefreshToken} {
		if in, err := h.Introspect(ctx, tok); err != nil || in.Active {
			t.Fatalf("after Disconnect Hydra says a token of bob is %+v %v", in, err)
		}
	}
	_, err = srcA.Token(bob) // the cache was purged on this replica
	wantConsent(t, err, "no_grant")
	brokerB.PurgeUpstream(acIssuer, "user-bob", "tracker") // what the gateway does on the other replica
	_, err = srcB.Token(bob)
	wantConsent(t, err, "no_grant")
	if err := conn.Disconnect(ctx, conn.Key(acIssuer, "user-bob")); err != nil {
		t.Errorf("disconnecting again: %v", err)
	}
	// alice is untouched by bob's disconnect.
	if ra, err := srcB.Token(alice); err != nil || ra.Token.PlatformSubject != "platform-alice" {
		t.Fatalf("alice after bob's disconnect: %v", err)
	}
}

// BenchmarkAuthorizationCodeRefresh is the server-side cost of one refresh:
// the grant read, the row lock, Hydra's token endpoint (rotating the
// refresh token) and the store's write (SQLite); and of a first consent
// (Mandate's side: the authorization URL and Redeem, with Hydra's login and
// consent driven through its admin API in the same loop).
func BenchmarkAuthorizationCodeRefresh(b *testing.B) {
	h := startHydraWith(b)
	ctx := context.Background()
	if err := h.CreateAuthCodeClient(ctx, "bench", "bench-secret", []string{acRedirect}, []string{"offline_access"}); err != nil {
		b.Fatal(err)
	}
	cfg := Config{Flow: FlowAuthorizationCode, AuthorizationURL: h.PublicURL() + "oauth2/auth", TokenURL: h.TokenURL(),
		ClientID: "bench", ClientSecret: "bench-secret", Scopes: []string{"offline_access"}}
	clock := &fakeClock{t: time.Now()}
	grants := sqliteGrants(b)()
	br := NewBroker(BrokerOptions{Grants: grants, Now: clock.Now})
	src, err := br.Source("tracker", cfg)
	if err != nil {
		b.Fatal(err)
	}
	conn, _ := ConnectorOf(src)
	consent := func() {
		verifier, challenge := pkce(b)
		u, err := conn.AuthCodeURL(ctx, "state-bench", challenge, acRedirect, "")
		if err != nil {
			b.Fatal(err)
		}
		loc, err := h.Consent(ctx, u, "platform-bench")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := conn.Redeem(ctx, conn.Key(acIssuer, "user-bench"), loc.Query().Get("code"), verifier, acRedirect); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("first_consent", func(b *testing.B) {
		for b.Loop() {
			consent()
		}
	})
	b.Run("refresh", func(b *testing.B) {
		alice := acUser("bench")
		for b.Loop() {
			clock.Advance(2 * time.Hour)
			if _, err := src.Token(alice); err != nil {
				b.Fatal(err)
			}
		}
	})
}
