package authn

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// signClaims signs claims with the key kid (an unknown kid gets a key the
// IdP never published) and the given extra JOSE headers (e.g. typ).
func (j *rotatingJWKS) signClaims(t *testing.T, kid string, claims map[string]any, headers map[string]any) string {
	t.Helper()
	j.mu.Lock()
	k := j.keys[kid]
	j.mu.Unlock()
	if k == nil {
		t.Fatalf("no key %q", kid)
	}
	opts := (&jose.SignerOptions{}).WithHeader("kid", kid)
	for h, v := range headers {
		opts = opts.WithHeader(jose.HeaderKey(h), v)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

const (
	testIssuer   = "https://idp.example/"
	testAudience = "https://m.example/mcp"
)

// testClaims are the claims of a valid access token for sub.
func testClaims(sub string) map[string]any {
	return map[string]any{"iss": testIssuer, "aud": testAudience, "sub": sub, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
}

// newTestAuthenticator returns an Authenticator trusting j's keys, loaded.
func newTestAuthenticator(t *testing.T, j *rotatingJWKS, mutate func(*Config)) *Authenticator {
	t.Helper()
	cfg := Config{Issuer: testIssuer, JWKSURL: j.srv.URL, Algorithms: []string{"ES256"}}
	if mutate != nil {
		mutate(&cfg)
	}
	a := New(cfg.WithDefaults(testAudience), Options{HTTPClient: j.srv.Client()})
	if err := a.load(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a
}

func bearer(tok string) []string { return []string{"Bearer " + tok} }

// Integer claims keep their exact value: 1234567 is not 1.234567e+06, and
// two large integers that round to the same float64 stay distinct.
func TestClaimsKeepIntegersExact(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1")
	a := newTestAuthenticator(t, j, nil)
	c := testClaims("alice")
	c["employee_number"] = 1234567
	c["a"] = json.RawMessage("12345678901234567")
	c["b"] = json.RawMessage("12345678901234568")
	c["nested"] = map[string]any{"n": json.RawMessage("98765432109876543210")}
	id, e := a.Authenticate(context.Background(), bearer(j.signClaims(t, "k1", c, nil)))
	if e != nil {
		t.Fatal(e)
	}
	for _, tc := range []struct {
		path string
		want string
	}{{"employee_number", "1234567"}, {"a", "12345678901234567"}, {"b", "12345678901234568"}, {"nested.n", "98765432109876543210"}} {
		got := Lookup(id.Claims, tc.path)
		n, ok := got.(json.Number)
		if !ok || n.String() != tc.want {
			t.Errorf("claim %s = %#v (%T), want the exact integer %s", tc.path, got, got, tc.want)
		}
	}
	if id.Expiry.IsZero() {
		t.Error("exp not read from a json.Number")
	}
	// A numeric subject claim is refused with a precise reason.
	b := newTestAuthenticator(t, j, func(c *Config) { c.Claims.Subject = "employee_number" })
	if _, e := b.Authenticate(context.Background(), bearer(j.signClaims(t, "k1", c, nil))); e == nil || e.Status != http.StatusUnauthorized || !strings.Contains(e.Description, `"employee_number" claim is not a string`) {
		t.Errorf("numeric subject claim: %v", e)
	}
}

// nOAuth: a subject claim that the user may be able to change (an email
// address) identifies nobody unless the IdP says it is verified.
func TestEmailSubjectNeedsVerifiedEmail(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1")
	for _, subjectClaim := range []string{"email", "preferred_username", "upn", "unique_name", "https://acme.example/email"} {
		a := newTestAuthenticator(t, j, func(c *Config) { c.Claims.Subject = subjectClaim })
		for _, tc := range []struct {
			name     string
			verified any // nil: claim absent
			ok       bool
		}{{"absent", nil, false}, {"false", false, false}, {"string false", "false", false}, {"true", true, true}, {"string true", "true", true}} {
			c := testClaims("00u1")
			c[subjectClaim] = "victim@example.com"
			if tc.verified != nil {
				c["email_verified"] = tc.verified
			}
			id, e := a.Authenticate(context.Background(), bearer(j.signClaims(t, "k1", c, nil)))
			if tc.ok {
				if e != nil || id.Subject != "victim@example.com" {
					t.Errorf("subject %s, email_verified %s: %v, %v", subjectClaim, tc.name, id, e)
				}
				continue
			}
			if e == nil {
				t.Errorf("subject %s, email_verified %s: accepted as %q", subjectClaim, tc.name, id.Subject)
				continue
			}
			if e.Status != http.StatusUnauthorized || e.Code != "invalid_token" || !strings.Contains(e.Description, "email_verified") || !strings.Contains(e.Description, subjectClaim) {
				t.Errorf("subject %s, email_verified %s: error %d %s %q", subjectClaim, tc.name, e.Status, e.Code, e.Description)
			}
		}
	}
	// An immutable subject needs no email_verified.
	a := newTestAuthenticator(t, j, nil)
	c := testClaims("00u1")
	c["email"] = "someone@example.com"
	if _, e := a.Authenticate(context.Background(), bearer(j.signClaims(t, "k1", c, nil))); e != nil {
		t.Errorf("sub with an unverified email: %v", e)
	}
}

// A verified identity stays cached only while the key that signed it is
// published: once the IdP withdraws the key, the next request is verified
// again and fails.
func TestCachedIdentityDroppedWhenKeyLeavesJWKS(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1", "k2")
	a := newTestAuthenticator(t, j, nil)
	tok1 := j.signClaims(t, "k1", testClaims("alice"), nil)
	tok2 := j.signClaims(t, "k2", testClaims("bob"), nil)
	for _, tok := range []string{tok1, tok2} {
		if _, e := a.Authenticate(context.Background(), bearer(tok)); e != nil {
			t.Fatal(e)
		}
	}
	j.remove("k1")
	if err := a.keys.refresh(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	if id, e := a.Authenticate(context.Background(), bearer(tok1)); e == nil {
		t.Fatalf("token signed by a withdrawn key still accepted (%s)", id)
	} else if e.Status != http.StatusUnauthorized || !strings.Contains(e.Description, "unknown key") {
		t.Errorf("withdrawn key: %d %q", e.Status, e.Description)
	}
	if _, e := a.Authenticate(context.Background(), bearer(tok2)); e != nil {
		t.Errorf("token of a key still published: %v", e)
	}
}

// identity.require_typ (RFC 9068): off by default; when set, a JWT of
// another type (an ID token, typ JWT or none) is refused.
func TestRequireTyp(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1")
	sign := func(typ string) string {
		var h map[string]any
		if typ != "" {
			h = map[string]any{"typ": typ}
		}
		return j.signClaims(t, "k1", testClaims("alice"), h)
	}
	off := newTestAuthenticator(t, j, nil)
	for _, typ := range []string{"", "JWT", "at+jwt"} {
		if _, e := off.Authenticate(context.Background(), bearer(sign(typ))); e != nil {
			t.Errorf("no typ check configured, typ %q: %v", typ, e)
		}
	}
	on := newTestAuthenticator(t, j, func(c *Config) { c.RequireTyp = "at+jwt" })
	for _, tc := range []struct {
		typ string
		ok  bool
	}{{"at+jwt", true}, {"AT+JWT", true}, {"application/at+jwt", true}, {"", false}, {"JWT", false}, {"id_token+jwt", false}, {"application/jwt", false}} {
		_, e := on.Authenticate(context.Background(), bearer(sign(tc.typ)))
		if tc.ok != (e == nil) {
			t.Errorf("require_typ at+jwt, typ %q: error %v, want ok=%v", tc.typ, e, tc.ok)
		}
		if e != nil && (e.Status != http.StatusUnauthorized || e.Code != "invalid_token" || !strings.Contains(e.Description, "at+jwt")) {
			t.Errorf("typ %q: %d %s %q", tc.typ, e.Status, e.Code, e.Description)
		}
	}
	if err := (Config{Issuer: testIssuer, RequireTyp: "at jwt"}).Validate(); err == nil || !strings.Contains(err.Error(), "identity.require_typ") {
		t.Errorf("Validate(require_typ with a space) = %v", err)
	}
}

// identity.trust_unverified_email lets an operator whose IdP issues only
// verified values (Entra upn) map the subject from an email-like claim;
// the identity then says its email-like claims are trusted.
func TestTrustUnverifiedEmail(t *testing.T) {
	t.Parallel()
	j := newRotatingJWKS(t, "k1")
	c := testClaims("00u1")
	c["upn"] = "alice@acme.example"
	tok := j.signClaims(t, "k1", c, nil)
	a := newTestAuthenticator(t, j, func(c *Config) { c.Claims.Subject = "upn"; c.TrustUnverifiedEmail = true })
	id, e := a.Authenticate(context.Background(), bearer(tok))
	if e != nil || id.Subject != "alice@acme.example" || !id.EmailTrusted {
		t.Fatalf("trusted upn subject: %+v, %v", id, e)
	}
	// Default: sub subject; EmailTrusted follows email_verified.
	a = newTestAuthenticator(t, j, nil)
	for _, v := range []any{nil, false, true} {
		c := testClaims("00u1")
		c["email"] = "alice@acme.example"
		if v != nil {
			c["email_verified"] = v
		}
		id, e := a.Authenticate(context.Background(), bearer(j.signClaims(t, "k1", c, nil)))
		if e != nil || id.EmailTrusted != (v == true) || id.Email != "alice@acme.example" {
			t.Errorf("email_verified %v: EmailTrusted %v, %v", v, id.EmailTrusted, e)
		}
	}
}
