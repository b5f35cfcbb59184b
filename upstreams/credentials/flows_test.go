package credentials

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/internal/identity"
)

func TestTokenExchangeRequestShape(t *testing.T) {
	t.Parallel()
	var got url.Values
	var gotUser, gotPass string
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if form.Get("grant_type") == grantClientCredentials {
			writeJSON(w, 200, map[string]any{"access_token": "actor-tok", "token_type": "Bearer", "expires_in": 3600})
			return
		}
		got = form
		gotUser, gotPass, _ = r.BasicAuth()
		writeJSON(w, 200, map[string]any{
			"access_token":      "xchg." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"alice-platform"}`)) + ".sig",
			"issued_token_type": TokenTypeAccessToken,
			"token_type":        "Bearer",
			"expires_in":        300,
			"scope":             "crm.read crm.write",
			"refresh_token":     "never-kept",
		})
	})
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "crm", Config{
		Flow: FlowTokenExchange, TokenURL: ts.TokenURL(), ClientID: "mandate gw", ClientSecret: "s3cr:t&x",
		Audience: "https://crm.internal", Resource: []string{"https://crm.internal/a", "https://crm.internal/b"},
		Scopes: []string{"crm.write", "crm.read"}, ActorToken: true,
	})
	res, err := src.Token(user(context.Background(), "alice", time.Now().Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {"inbound-token-of-alice"},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {TokenTypeAccessToken},
		"audience":             {"https://crm.internal"},
		"resource":             {"https://crm.internal/a", "https://crm.internal/b"},
		"scope":                {"crm.write crm.read"},
		"actor_token":          {"actor-tok"},
		"actor_token_type":     {TokenTypeAccessToken},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("form (-want +got):\n%s", d)
	}
	// RFC 6749 §2.3.1: id and secret are form-urlencoded inside Basic.
	if gotUser != "mandate+gw" || gotPass != "s3cr%3At%26x" {
		t.Errorf("basic auth = %q:%q, want form-urlencoded id and secret", gotUser, gotPass)
	}
	tok := res.Token
	if tok.PlatformSubject != "alice-platform" || tok.ServiceAccount || tok.Flow != FlowTokenExchange ||
		tok.IssuedTokenType != TokenTypeAccessToken || tok.Scope != "crm.read crm.write" {
		t.Errorf("token = %+v", tok)
	}
	if _, ok := tok.Extra["refresh_token"]; ok {
		t.Error("refresh_token kept in Extra")
	}
}

func TestTokenExchangeWithoutRawToken(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		t.Error("token endpoint called without a subject token")
	})
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", Config{Flow: FlowTokenExchange, TokenURL: ts.TokenURL(), ClientID: "c", ClientSecret: "s"})
	ctx := identity.NewContext(context.Background(), &identity.Identity{Issuer: "i", Subject: "alice"})
	_, err := src.Token(ctx)
	if !errors.Is(err, errNoRawToken) {
		t.Fatalf("err = %v, want errNoRawToken", err)
	}
	_, err = src.Token(context.Background())
	if !errors.Is(err, ErrNoIdentity) {
		t.Fatalf("err = %v, want ErrNoIdentity", err)
	}
}

// Entra OBO error bodies, shaped as Microsoft documents them.
const (
	entraInteractionRequired = `{"error":"interaction_required","error_description":"AADSTS50079: Due to a configuration change made by your administrator, or because you moved to a new location, you must enroll in multifactor authentication to access 'api://crm'.\r\nTrace ID: b72a68c3-0926-4b8e-bc35-3150069c2800\r\nCorrelation ID: 73d656cf-54b1-4eb2-b429-26d8165a52d7\r\nTimestamp: 2017-05-01 22:43:20Z","error_codes":[50079],"timestamp":"2017-05-01 22:43:20Z","trace_id":"b72a68c3-0926-4b8e-bc35-3150069c2800","correlation_id":"73d656cf-54b1-4eb2-b429-26d8165a52d7","claims":"{\"access_token\":{\"polids\":{\"essential\":true,\"values\":[\"9ab03e19-ed42-4168-b6b7-7001fb3e933a\"]}}}"}`
	entraConsent             = `{"error":"invalid_grant","error_description":"AADSTS65001: The user or administrator has not consented to use the application with ID 'mandate' named 'Mandate'. Send an interactive authorization request for this user and resource.\r\nTrace ID: 1\r\nCorrelation ID: 2\r\nTimestamp: 2026-11-01 12:00:00Z","error_codes":[65001],"timestamp":"2026-11-01 12:00:00Z","trace_id":"1","correlation_id":"2","suberror":"consent_required"}`
)

func TestEntraOBO(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	mode := "ok"
	var got url.Values
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		mu.Lock()
		defer mu.Unlock()
		if _, _, ok := r.BasicAuth(); ok {
			t.Error("entra_obo default client auth must be client_secret_post, got Basic")
		}
		got = form
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch mode {
		case "ok":
			at := "h." + base64.RawURLEncoding.EncodeToString([]byte(`{"aud":"api://crm","oid":"0000-1111","preferred_username":"alice@contoso.com","sub":"pairwise"}`)) + ".s"
			writeJSON(w, 200, map[string]any{"token_type": "Bearer", "scope": "api://crm/.default", "expires_in": "3599", "ext_expires_in": 3599, "access_token": at, "refresh_token": "rt"})
		case "interaction":
			w.WriteHeader(400)
			_, _ = w.Write([]byte(entraInteractionRequired))
		case "consent":
			w.WriteHeader(400)
			_, _ = w.Write([]byte(entraConsent))
		}
	})
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "crm", Config{Flow: FlowEntraOBO, TokenURL: ts.TokenURL(), ClientID: "mandate-app", ClientSecret: "sec", Scopes: []string{"api://crm/.default"}})

	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	res, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := url.Values{
		"grant_type":          {"urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"requested_token_use": {"on_behalf_of"},
		"assertion":           {"inbound-token-of-alice"},
		"scope":               {"api://crm/.default"},
		"client_id":           {"mandate-app"},
		"client_secret":       {"sec"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("form (-want +got):\n%s", d)
	}
	if res.Token.PlatformSubject != "alice@contoso.com" || res.Token.Expiry.Before(time.Now().Add(59*time.Minute)) {
		t.Errorf("token = %+v", res.Token)
	}
	if res.Token.Extra["ext_expires_in"] != int64(3599) {
		t.Errorf("Extra = %v", res.Token.Extra)
	}

	for _, tc := range []struct {
		mode, user  string
		consent     bool
		wantClaims  bool
		wantMessage string
	}{
		{"interaction", "bob", false, true, "sign in again"},
		{"consent", "carol", true, false, "consent"},
	} {
		mu.Lock()
		mode = tc.mode
		mu.Unlock()
		ctx := user(context.Background(), tc.user, time.Now().Add(time.Hour))
		before := ts.calls.Load()
		for i := 0; i < 2; i++ {
			_, err := src.Token(ctx)
			var oe *Error
			if !errors.As(err, &oe) {
				t.Fatalf("%s: err = %v, want *Error", tc.mode, err)
			}
			if !oe.Interaction || oe.Consent != tc.consent || (oe.Claims != "") != tc.wantClaims || oe.Upstream != "crm" || oe.User != tc.user {
				t.Errorf("%s: error = %+v", tc.mode, oe)
			}
			if tc.wantClaims && !strings.Contains(oe.Claims, "polids") {
				t.Errorf("claims = %q", oe.Claims)
			}
			msg := oe.Error()
			if !strings.Contains(msg, tc.wantMessage) || strings.Contains(msg, "Trace ID") || strings.ContainsAny(msg, "\r\n") {
				t.Errorf("%s: message %q", tc.mode, msg)
			}
		}
		// Never cached: both calls reached the server.
		if n := ts.calls.Load() - before; n != 2 {
			t.Errorf("%s: %d token requests for 2 calls, want 2 (interaction errors must not be cached)", tc.mode, n)
		}
	}
}

func TestEntraTenantURL(t *testing.T) {
	t.Parallel()
	c := Config{Flow: FlowEntraOBO, Tenant: "contoso.onmicrosoft.com"}
	if got, want := c.tokenURL(), "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"; got != want {
		t.Fatalf("tokenURL = %q, want %q", got, want)
	}
}

// jwtBearerServer verifies RFC 7523 assertions like Salesforce/Hydra would:
// signature with the registered public key, iss, aud, exp window, and jti
// replay.
type jwtBearerServer struct {
	*tokenServer
	mu    sync.Mutex
	seen  map[string]bool
	subs  []string
	users map[string]bool
}

func newJWTBearerServer(t *testing.T, pub any, alg jose.SignatureAlgorithm, iss, aud string) *jwtBearerServer {
	s := &jwtBearerServer{seen: map[string]bool{}, users: map[string]bool{"alice@acme.com": true, "bob@acme.com": true}}
	s.tokenServer = newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if form.Get("grant_type") != grantJWTBearer {
			oauthError(w, 400, "unsupported_grant_type", "grant type not supported")
			return
		}
		tok, err := jwt.ParseSigned(form.Get("assertion"), []jose.SignatureAlgorithm{alg})
		if err != nil {
			oauthError(w, 400, "invalid_grant", "malformed assertion")
			return
		}
		var c jwt.Claims
		if err := tok.Claims(pub, &c); err != nil {
			oauthError(w, 400, "invalid_grant", "invalid assertion signature")
			return
		}
		if err := c.ValidateWithLeeway(jwt.Expected{Issuer: iss, AnyAudience: jwt.Audience{aud}, Time: time.Now()}, 0); err != nil {
			oauthError(w, 400, "invalid_grant", "audience is invalid: "+err.Error())
			return
		}
		if c.Expiry == nil || c.Expiry.Time().Sub(time.Now()) > 3*time.Minute || c.ID == "" || c.IssuedAt == nil {
			oauthError(w, 400, "invalid_grant", "assertion lifetime or jti invalid")
			return
		}
		s.mu.Lock()
		replay := s.seen[c.ID]
		s.seen[c.ID] = true
		s.subs = append(s.subs, c.Subject)
		s.mu.Unlock()
		if replay {
			oauthError(w, 400, "invalid_grant", "jti has already been used")
			return
		}
		if !s.users[c.Subject] {
			oauthError(w, 400, "invalid_grant", "user hasn't approved this consumer")
			return
		}
		// Salesforce answer: no expires_in, instance_url to use for the API.
		writeJSON(w, 200, map[string]any{
			"access_token": "00Dxx!" + c.Subject, "scope": "api", "instance_url": "https://acme.my.salesforce.com",
			"id": "https://login.salesforce.com/id/00Dxx/005xx", "token_type": "Bearer",
		})
	})
	return s
}

func TestJWTBearer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		alg  string
	}{{"RS256", "RS256"}, {"ES256", "ES256"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var keyFile string
			var pub any
			if tc.alg == "RS256" {
				keyFile, pub = writeRSAKey(t, true), &testRSAKey(t).PublicKey
			} else {
				f, k := writeECKey(t)
				keyFile, pub = f, &k.PublicKey
			}
			const aud = "https://login.salesforce.com"
			srv := newJWTBearerServer(t, pub, jose.SignatureAlgorithm(tc.alg), "consumer-key", aud)
			b := NewBroker(BrokerOptions{})
			src := mustSource(t, b, "salesforce", Config{
				Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "consumer-key", PrivateKeyFile: keyFile,
				Algorithm: tc.alg, AssertionAudience: aud, Subject: "{{ .Email | replace \"example.com\" \"acme.com\" }}",
			})
			ctx := user(context.Background(), "alice", time.Time{})
			res, err := src.Token(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tok := res.Token
			if tok.PlatformSubject != "alice@acme.com" || tok.ExtraString("instance_url") != "https://acme.my.salesforce.com" || tok.AccessToken.Reveal() != "00Dxx!alice@acme.com" {
				t.Errorf("token = %+v extra=%v", tok, tok.Extra)
			}
			// No expires_in: still cached (DefaultTokenLifetime). Each
			// exchange signs a fresh assertion (new jti); a replayed one
			// would be refused by the server.
			if r, _ := src.Token(ctx); !r.CacheHit {
				t.Error("second call missed the cache")
			}
			for i := 0; i < 3; i++ {
				src.Invalidate(ctx, nil)
				if _, err := src.Token(ctx); err != nil {
					t.Fatalf("exchange %d: %v (a reused assertion would be refused as replay)", i+2, err)
				}
			}
			srv.mu.Lock()
			n := len(srv.seen)
			srv.mu.Unlock()
			if n != 4 || srv.calls.Load() != 4 {
				t.Errorf("%d distinct jti over %d requests, want 4 and 4", n, srv.calls.Load())
			}
			// An unknown platform user: invalid_grant, actionable.
			_, err = src.Token(user(context.Background(), "mallory", time.Time{}))
			var oe *Error
			if !errors.As(err, &oe) || oe.Code != "invalid_grant" || !strings.Contains(oe.Error(), "platform account") {
				t.Errorf("unknown user err = %v", err)
			}
		})
	}
}

func TestJWTBearerWrongAudience(t *testing.T) {
	t.Parallel()
	keyFile := writeRSAKey(t, false)
	srv := newJWTBearerServer(t, &testRSAKey(t).PublicKey, jose.RS256, "ck", "https://login.salesforce.com")
	src := mustSource(t, NewBroker(BrokerOptions{}), "sf", Config{Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "ck", PrivateKeyFile: keyFile, Subject: "{{ .Email | replace \"example.com\" \"acme.com\" }}"})
	_, err := src.Token(user(context.Background(), "alice", time.Time{}))
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "invalid_grant" || !strings.Contains(oe.Description, "audience") {
		t.Fatalf("err = %v", err)
	}
}

func TestPrivateKeyJWTClientAuth(t *testing.T) {
	t.Parallel()
	keyFile := writeRSAKey(t, false)
	pub := &testRSAKey(t).PublicKey
	var jtis sync.Map
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if form.Get("client_assertion_type") != clientAssertionType || form.Get("client_id") != "gw" {
			oauthError(w, 401, "invalid_client", "no client assertion")
			return
		}
		tok, err := jwt.ParseSigned(form.Get("client_assertion"), []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			oauthError(w, 401, "invalid_client", "bad")
			return
		}
		if kid := tok.Headers[0].KeyID; kid != "k1" {
			t.Errorf("kid = %q", kid)
		}
		var c jwt.Claims
		if err := tok.Claims(pub, &c); err != nil {
			oauthError(w, 401, "invalid_client", "sig")
			return
		}
		wantAud := "http://" + r.Host + "/token"
		if c.Issuer != "gw" || c.Subject != "gw" || !c.Audience.Contains(wantAud) {
			oauthError(w, 401, "invalid_client", "claims")
			return
		}
		if _, dup := jtis.LoadOrStore(c.ID, true); dup {
			oauthError(w, 401, "invalid_client", "replay")
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": "svc", "token_type": "Bearer", "expires_in": 60})
	})
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "reports", Config{Flow: FlowClientCredentials, TokenURL: ts.TokenURL(), ClientID: "gw", ClientAuth: AuthPrivateKeyJWT, PrivateKeyFile: keyFile, KeyID: "k1"})
	for i := 0; i < 2; i++ {
		res, err := src.Token(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !res.Token.ServiceAccount || res.Token.PlatformSubject != "gw" {
			t.Errorf("token = %+v", res.Token)
		}
		src.Invalidate(context.Background(), nil)
	}
}

func TestClientSecretPostAndBadSecret(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if form.Get("client_secret") != "right" {
			w.Header().Set("WWW-Authenticate", `Basic realm="token"`)
			oauthError(w, 401, "invalid_client", "Client authentication failed")
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": "svc", "token_type": "Bearer", "expires_in": 60})
	})
	b := NewBroker(BrokerOptions{})
	bad := mustSource(t, b, "reports", Config{Flow: FlowClientCredentials, TokenURL: ts.TokenURL(), ClientID: "gw", ClientSecret: "wrong", ClientAuth: AuthClientSecretPost})
	_, err := bad.Token(context.Background())
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "invalid_client" || oe.Status != 401 || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "gateway configuration problem") {
		t.Errorf("message not actionable: %q", err)
	}
	good := mustSource(t, b, "reports2", Config{Flow: FlowClientCredentials, TokenURL: ts.TokenURL(), ClientID: "gw", ClientSecret: "right", ClientAuth: AuthClientSecretPost})
	if _, err := good.Token(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestAssertionSignerRejectsWeakKeys(t *testing.T) {
	t.Parallel()
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newAssertionSigner(small, "RS256", "", nil, time.Minute); err == nil {
		t.Error("1024-bit RSA key accepted")
	}
	if _, err := newAssertionSigner(testRSAKey(t), "ES256", "", nil, time.Minute); err == nil {
		t.Error("RSA key accepted for ES256")
	}
}

// TestJWTBearerScopesInAssertion: Google's domain-wide delegation reads the
// scopes from the assertion's scope claim, not from a scope parameter.
func TestJWTBearerScopesInAssertion(t *testing.T) {
	t.Parallel()
	const aud = "https://oauth2.googleapis.com/token"
	var mu sync.Mutex
	var gotClaims map[string]any
	var gotForm url.Values
	srv := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		tok, err := jwt.ParseSigned(form.Get("assertion"), []jose.SignatureAlgorithm{jose.RS256})
		var c map[string]any
		if err == nil {
			err = tok.Claims(&testRSAKey(t).PublicKey, &c)
		}
		if err != nil {
			oauthError(w, 400, "invalid_grant", "Invalid JWT Signature.")
			return
		}
		mu.Lock()
		gotClaims, gotForm = c, form
		mu.Unlock()
		if c["scope"] == nil {
			oauthError(w, 400, "invalid_scope", "Invalid OAuth scope or ID token audience provided.")
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": "ya29.for-" + c["sub"].(string), "expires_in": 3599, "token_type": "Bearer"})
	})
	cfg := Config{Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "mandate-dwd@acme.iam.gserviceaccount.com",
		PrivateKeyFile: writeRSAKey(t, true), KeyID: "k1", AssertionAudience: aud, Subject: "{{ .Email }}",
		Scopes: []string{"https://www.googleapis.com/auth/drive.readonly", "https://www.googleapis.com/auth/calendar.readonly"}}
	for _, inAssertion := range []bool{false, true} {
		cfg.ScopesInAssertion = inAssertion
		src := mustSource(t, NewBroker(BrokerOptions{}), "gdrive", cfg)
		res, err := src.Token(user(context.Background(), "alice", time.Time{}))
		mu.Lock()
		claims, form := gotClaims, gotForm
		mu.Unlock()
		if !inAssertion {
			// Without the option the scopes go into the form, as for Salesforce.
			if err == nil || form.Get("scope") == "" {
				t.Errorf("scopes_in_assertion false: err %v, form scope %q", err, form.Get("scope"))
			}
			continue
		}
		if err != nil {
			t.Fatalf("scopes_in_assertion: %v", err)
		}
		if want := strings.Join(cfg.Scopes, " "); claims["scope"] != want || form.Has("scope") {
			t.Errorf("assertion scope %v (want %q), form scope %q (want none)", claims["scope"], want, form.Get("scope"))
		}
		if claims["sub"] != "alice@example.com" || claims["iss"] != cfg.ClientID || res.Token.AccessToken.Reveal() != "ya29.for-alice@example.com" {
			t.Errorf("claims %v, token %+v", claims, res.Token)
		}
	}
}
