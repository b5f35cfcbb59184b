package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/internal/testenv/testhydra"
)

// The flow contract suite: every registered flow runs against a real token
// server (the zitadel OP, Ory Hydra when its binary is present, or the
// httptest endpoints the flow's own tests use) and must keep the same
// promises: the token is for the calling user (or, for a service account,
// the same for all and marked so), each user's token is cached for that
// user only, concurrent users never get each other's tokens, a refusal is
// an *Error with the OAuth code and the upstream and flow filled in, and no
// error text holds a secret or a token.

// contractEnv is one flow's token server and how to read its tokens.
type contractEnv struct {
	cfg Config
	// login returns a request context for user ("alice", "bob").
	login func(t *testing.T, user string) context.Context
	// owner says whom the token server issued tok for, from the token
	// itself (verified where the server signs it).
	owner func(t *testing.T, tok *Token) string
	// want is the owner (and Token.PlatformSubject) expected for user.
	want func(user string) string
	// refuse returns a request the server refuses, and the OAuth error
	// code the *Error must carry.
	refuse func(t *testing.T, b *Broker) (Source, context.Context, string)
	// secrets must never appear in error text (client secrets; inbound
	// tokens are checked by the suite).
	secrets []string
	// opts are the brokers' options (the grant store of authorization_code).
	opts BrokerOptions
}

// contractCases has, for every registered flow, the token servers it runs
// against. TestFlowContract fails for a registered flow without one.
var contractCases = map[string][]struct {
	server string
	setup  func(t *testing.T) contractEnv
}{
	FlowTokenExchange:     {{"zitadel OP", zitadelExchangeEnv}},
	FlowEntraOBO:          {{"httptest Entra", entraEnv}},
	FlowJWTBearer:         {{"httptest Salesforce", salesforceEnv}, {"Ory Hydra", hydraJWTBearerEnv}},
	FlowClientCredentials: {{"httptest", clientCredentialsEnv}},
	FlowAuthorizationCode: {{"Ory Hydra", hydraAuthCodeEnv}},
	FlowCrossAppAccess:    {{"zitadel OP (devidp ID-JAG) + httptest platform", xaaEnv}},
	FlowNone:              {{"no server", noneEnv}},
}

func TestFlowContract(t *testing.T) {
	t.Parallel()
	for name := range contractCases {
		if lookupFlow(name) == nil {
			t.Errorf("contract case for %q, which is not a registered flow", name)
		}
	}
	for _, ft := range flowTypes {
		cases := contractCases[ft.Name]
		if len(cases) == 0 {
			t.Errorf("registered flow %q has no contract case: add one to contractCases", ft.Name)
		}
		for _, c := range cases {
			t.Run(ft.Name+"/"+c.server, func(t *testing.T) {
				t.Parallel()
				runContract(t, ft, c.setup(t))
			})
		}
	}
}

var contractUsers = []string{"alice", "bob"}

func runContract(t *testing.T, ft *FlowType, env contractEnv) {
	upstream := "contract-" + strings.ReplaceAll(ft.Name, "_", "-")
	b := NewBroker(env.opts)
	src := mustSource(t, b, upstream, env.cfg)
	if ft.Bare {
		r, err := src.Token(env.login(t, "alice"))
		if err != nil || r.Token != nil {
			t.Fatalf("bare flow: Token = %+v, %v; want no token", r, err)
		}
		return
	}
	inbound := map[string]string{}
	got := map[string]*Token{}
	for i, u := range contractUsers {
		ctx := env.login(t, u)
		inbound[u] = identity.FromContext(ctx).RawToken()
		r, err := src.Token(ctx)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		tok := r.Token
		if tok == nil || tok.AccessToken.IsZero() {
			t.Fatalf("%s: no token", u)
		}
		if wantHit := ft.ServiceAccount && i > 0; r.CacheHit != wantHit {
			t.Errorf("%s: first call CacheHit = %v, want %v", u, r.CacheHit, wantHit)
		}
		if tok.Flow != ft.Name || tok.ServiceAccount != ft.ServiceAccount {
			t.Errorf("%s: Flow %q ServiceAccount %v, want %q %v", u, tok.Flow, tok.ServiceAccount, ft.Name, ft.ServiceAccount)
		}
		if o := env.owner(t, tok); o != env.want(u) || tok.PlatformSubject != env.want(u) {
			t.Errorf("%s: token issued for %q (PlatformSubject %q), want %q", u, o, tok.PlatformSubject, env.want(u))
		}
		if raw := inbound[u]; raw != "" && tok.AccessToken.Reveal() == raw {
			t.Errorf("%s: the inbound token came back as the platform token", u)
		}
		r2, err := src.Token(ctx)
		if err != nil || !r2.CacheHit || r2.Token != tok {
			t.Errorf("%s: second call not served from the cache: %+v %v", u, r2, err)
		}
		got[u] = tok
	}
	if same := got["alice"].AccessToken == got["bob"].AccessToken; same != ft.ServiceAccount {
		t.Errorf("alice and bob share a token: %v, want %v", same, ft.ServiceAccount)
	}

	// Concurrent users on a cold cache: everyone gets their own token.
	cold := mustSource(t, NewBroker(env.opts), upstream, env.cfg)
	ctxs := map[string]context.Context{}
	for _, u := range contractUsers {
		ctxs[u] = env.login(t, u)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := range 16 {
		u := contractUsers[i%len(contractUsers)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := cold.Token(ctxs[u])
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err != nil:
				t.Errorf("concurrent %s: %v", u, err)
			case r.Token.PlatformSubject != env.want(u) || env.owner(t, r.Token) != env.want(u):
				t.Errorf("concurrent %s got a token for %q", u, r.Token.PlatformSubject)
			}
		}()
	}
	wg.Wait()

	// Without an identity: a per-user flow refuses, a service account works.
	_, err := src.Token(context.Background())
	if ft.ServiceAccount {
		if err != nil {
			t.Errorf("service account without identity: %v", err)
		}
	} else {
		var oe *Error
		if !errors.As(err, &oe) || !errors.Is(err, ErrNoIdentity) || oe.Upstream != upstream || oe.Flow != ft.Name {
			t.Errorf("no identity: err = %#v, want *Error wrapping ErrNoIdentity", err)
		}
	}

	// A refusal: *Error with the OAuth code, upstream and flow; no secret.
	rs, rctx, code := env.refuse(t, b)
	_, err = rs.Token(rctx)
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != code || oe.Flow != ft.Name || oe.Upstream == "" {
		t.Fatalf("refusal: err = %v (%#v), want *Error with code %q and flow %s", err, err, code, ft.Name)
	}
	text := err.Error()
	secrets := append(append([]string{}, env.secrets...), identity.FromContext(rctx).RawToken())
	for _, tok := range got {
		secrets = append(secrets, tok.AccessToken.Reveal())
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("refusal text holds a secret or token %q: %s", s, text)
		}
	}
	if !strings.Contains(text, rs.(*source).upstream) {
		t.Errorf("refusal text does not name the upstream: %s", text)
	}
}

// token_exchange at the real zitadel OP.
func zitadelExchangeEnv(t *testing.T) contractEnv {
	idp := startIdP(t)
	verifier := oidc.NewVerifier(idp.Issuer(), oidc.NewRemoteKeySet(context.Background(), idp.JWKSURL()), &oidc.Config{ClientID: crmAudience})
	cfg := Config{Flow: FlowTokenExchange, TokenURL: idp.TokenURL(), ClientID: "mandate", ClientSecret: "mandate-secret", Audience: crmAudience}
	return contractEnv{
		cfg:   cfg,
		login: cachedLogins(idp),
		owner: func(t *testing.T, tok *Token) string {
			it, err := verifier.Verify(context.Background(), tok.AccessToken.Reveal())
			if err != nil {
				t.Errorf("exchanged token does not verify for %s: %v", crmAudience, err)
				return ""
			}
			return it.Subject
		},
		want: func(u string) string { return "user-" + u },
		refuse: func(t *testing.T, b *Broker) (Source, context.Context, string) {
			bad := cfg
			bad.Audience = forbiddenAudience
			return mustSource(t, b, "payroll", bad), loginAs(t, idp, "alice"), "invalid_target"
		},
		secrets: []string{"mandate-secret"},
	}
}

// entra_obo at an httptest endpoint that answers as Entra ID does.
func entraEnv(t *testing.T) contractEnv {
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if form.Get("client_secret") != "entra-secret-1" {
			oauthError(w, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
			return
		}
		u, ok := strings.CutPrefix(form.Get("assertion"), "inbound-token-of-")
		if !ok || form.Get("requested_token_use") != "on_behalf_of" {
			oauthError(w, 400, "invalid_grant", "AADSTS50027: JWT token is invalid or malformed.")
			return
		}
		if u == "mallory" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(400)
			_, _ = w.Write([]byte(entraConsent))
			return
		}
		claims, _ := json.Marshal(map[string]any{"aud": "api://crm", "preferred_username": u + "@contoso.com", "sub": "pairwise-" + u})
		writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3599,
			"access_token": "h." + base64.RawURLEncoding.EncodeToString(claims) + "." + u})
	})
	cfg := Config{Flow: FlowEntraOBO, TokenURL: ts.TokenURL(), ClientID: "mandate-app", ClientSecret: "entra-secret-1", Scopes: []string{"api://crm/.default"}}
	return contractEnv{
		cfg: cfg,
		login: func(_ *testing.T, u string) context.Context {
			return user(context.Background(), u, time.Now().Add(time.Hour))
		},
		owner: func(_ *testing.T, tok *Token) string {
			return subjectOf(jwtClaims(tok.AccessToken.Reveal()), "preferred_username")
		},
		want: func(u string) string { return u + "@contoso.com" },
		refuse: func(t *testing.T, b *Broker) (Source, context.Context, string) {
			return mustSource(t, b, "crm", cfg), user(context.Background(), "mallory", time.Now().Add(time.Hour)), "invalid_grant"
		},
		secrets: []string{"entra-secret-1"},
	}
}

// jwt_bearer at an httptest endpoint that verifies assertions as Salesforce.
func salesforceEnv(t *testing.T) contractEnv {
	srv := newJWTBearerServer(t, &testRSAKey(t).PublicKey, jose.RS256, "ck", "https://login.salesforce.com")
	cfg := Config{
		Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "ck", PrivateKeyFile: writeRSAKey(t, false),
		AssertionAudience: "https://login.salesforce.com", Subject: "{{ .Subject }}@acme.com",
	}
	return contractEnv{
		cfg: cfg,
		login: func(_ *testing.T, u string) context.Context {
			return user(context.Background(), u, time.Now().Add(time.Hour))
		},
		owner: func(_ *testing.T, tok *Token) string {
			return strings.TrimPrefix(tok.AccessToken.Reveal(), "00Dxx!")
		},
		want: func(u string) string { return u + "@acme.com" },
		refuse: func(t *testing.T, b *Broker) (Source, context.Context, string) {
			return mustSource(t, b, "salesforce", cfg), user(context.Background(), "mallory", time.Now().Add(time.Hour)), "invalid_grant"
		},
	}
}

// jwt_bearer at the real Ory Hydra (skipped without its binary, unless
// MANDATE_E2E is set).
func hydraJWTBearerEnv(t *testing.T) contractEnv {
	h := startHydra(t)
	ctx := context.Background()
	clientID, clientSecret, kid := "mandate-contract", "mandate-contract-secret", "mandate-contract-key"
	if err := h.CreateClient(ctx, clientID, clientSecret, []string{testhydra.GrantTypeJWTBearer}, []string{"api"}, "client_secret_basic"); err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &testRSAKey(t).PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"}
	if err := h.TrustIssuer(ctx, clientID, "", []string{"api"}, pub, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Flow: FlowJWTBearer, TokenURL: h.TokenURL(), ClientID: clientID, ClientSecret: secret.String(clientSecret),
		PrivateKeyFile: writeRSAKey(t, false), KeyID: kid, Scopes: []string{"api"},
		SubjectMapFile: writeFile(t, "users.yaml", []byte("user-alice: alice@acme.example\nuser-bob: bob@acme.example\n")),
	}
	var ks jose.JSONWebKeySet
	resp, err := http.Get(h.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&ks); err != nil {
		t.Fatal(err)
	}
	login := func(_ *testing.T, u string) context.Context {
		return withIdentity(ctx, identity.Identity{Issuer: "https://idp.example/", Subject: "user-" + u}, "inbound-of-"+u)
	}
	return contractEnv{
		cfg:   cfg,
		login: login,
		owner: func(t *testing.T, tok *Token) string {
			jt, err := jwt.ParseSigned(tok.AccessToken.Reveal(), []jose.SignatureAlgorithm{jose.RS256})
			if err != nil {
				t.Errorf("Hydra token is not a JWT: %v", err)
				return ""
			}
			keys := ks.Key(jt.Headers[0].KeyID)
			var c jwt.Claims
			if len(keys) == 0 || jt.Claims(keys[0].Key, &c) != nil {
				t.Errorf("Hydra token does not verify with Hydra's JWKS")
				return ""
			}
			return c.Subject
		},
		want: func(u string) string { return u + "@acme.example" },
		refuse: func(t *testing.T, b *Broker) (Source, context.Context, string) {
			bad := cfg
			bad.AssertionAudience = "https://login.salesforce.com"
			return mustSource(t, b, "salesforce-bad-aud", bad), login(t, "alice"), "invalid_grant"
		},
		secrets: []string{clientSecret},
	}
}

// client_credentials at an httptest endpoint that checks Basic auth.
func clientCredentialsEnv(t *testing.T) contractEnv {
	var n atomic.Int64
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		id, sec, ok := r.BasicAuth()
		if !ok || id != "svc" || sec != "svc-secret-1" || form.Get("grant_type") != "client_credentials" {
			oauthError(w, 401, "invalid_client", "client authentication failed")
			return
		}
		writeJSON(w, 200, map[string]any{"access_token": fmt.Sprintf("svc-token-%d", n.Add(1)), "token_type": "Bearer", "expires_in": 600})
	})
	cfg := Config{Flow: FlowClientCredentials, TokenURL: ts.TokenURL(), ClientID: "svc", ClientSecret: "svc-secret-1", Audience: "https://reports"}
	return contractEnv{
		cfg: cfg,
		login: func(_ *testing.T, u string) context.Context {
			return user(context.Background(), u, time.Now().Add(time.Hour))
		},
		owner: func(_ *testing.T, tok *Token) string {
			if strings.HasPrefix(tok.AccessToken.Reveal(), "svc-token-") {
				return "svc"
			}
			return ""
		},
		want: func(string) string { return "svc" },
		refuse: func(t *testing.T, b *Broker) (Source, context.Context, string) {
			bad := cfg
			bad.ClientSecret = "wrong-svc-secret-9"
			return mustSource(t, b, "reports", bad), user(context.Background(), "alice", time.Time{}), "invalid_client"
		},
		secrets: []string{"svc-secret-1", "wrong-svc-secret-9"},
	}
}

func noneEnv(*testing.T) contractEnv {
	return contractEnv{
		cfg:   Config{Flow: FlowNone},
		login: func(_ *testing.T, u string) context.Context { return user(context.Background(), u, time.Time{}) },
	}
}

// authorization_code at the real Ory Hydra, the grants in the real SQLite
// store: alice and bob consented beforehand; the refusal is a refresh with
// a wrong client secret (invalid_client, which leaves the grant intact).
func hydraAuthCodeEnv(t *testing.T) contractEnv {
	h := startHydraWith(t)
	ctx := context.Background()
	const clientID, clientSecret = "contract-ac", "contract-ac-secret"
	if err := h.CreateAuthCodeClient(ctx, clientID, clientSecret, []string{acRedirect}, []string{"offline_access", "issues"}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Flow: FlowAuthorizationCode, AuthorizationURL: h.PublicURL() + "oauth2/auth", TokenURL: h.TokenURL(),
		ClientID: clientID, ClientSecret: clientSecret, Scopes: []string{"offline_access", "issues"},
	}
	grants := sqliteGrants(t)()
	const upstream = "contract-authorization-code" // runContract's name for it
	setup := NewBroker(BrokerOptions{Grants: grants})
	mustSource(t, setup, upstream, cfg)
	conn, _ := setup.Connector(upstream)
	for _, u := range contractUsers {
		connectAt(t, h, conn, u)
	}
	return contractEnv{
		cfg:   cfg,
		opts:  BrokerOptions{Grants: grants},
		login: func(_ *testing.T, u string) context.Context { return acUser(u) },
		owner: func(t *testing.T, tok *Token) string {
			in, err := h.Introspect(ctx, tok.AccessToken.Reveal())
			if err != nil || !in.Active || in.ClientID != clientID {
				t.Errorf("Hydra says of the token: %+v %v", in, err)
			}
			return in.Subject
		},
		want: func(u string) string { return "platform-" + u },
		refuse: func(t *testing.T, _ *Broker) (Source, context.Context, string) {
			bad := cfg
			bad.ClientSecret = "wrong-contract-secret"
			later := NewBroker(BrokerOptions{Grants: grants, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }})
			return mustSource(t, later, upstream, bad), acUser("alice"), "invalid_client"
		},
		secrets: []string{clientSecret, "wrong-contract-secret"},
	}
}

// cachedLogins signs each user in at idp once (loginAs) and returns the
// same context on later calls, safe for parallel subtests.
func cachedLogins(idp *devidp.IdP) func(t *testing.T, u string) context.Context {
	var mu sync.Mutex
	logins := map[string]context.Context{}
	return func(t *testing.T, u string) context.Context {
		mu.Lock()
		defer mu.Unlock()
		if logins[u] == nil {
			logins[u] = loginAs(t, idp, u)
		}
		return logins[u]
	}
}
