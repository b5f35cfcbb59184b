package authserver_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/testenv/webtest"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/secret"
)

const (
	appID       = "test-app"
	appRedirect = "http://127.0.0.1:9999/callback"
	idpClientID = "mandate"
	idpSecret   = "mandate-idp-secret"
	// challenge is the S256 challenge of verifier.
	verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
)

var challenge = func() string {
	s := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(s[:])
}()

var (
	keyOnce sync.Once
	idpKey  *rsa.PrivateKey
)

func signingKey(t *testing.T) *rsa.PrivateKey {
	keyOnce.Do(func() {
		var err error
		if idpKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return idpKey
}

// env is Mandate's authorization server on loopback in front of the real
// zitadel IdP (devidp), with the real SQLite store, and a browser (cookie
// jar, redirects not followed).
type env struct {
	t       *testing.T
	idp     *devidp.IdP
	srv     *httptest.Server
	as      *authserver.Server
	st      store.Store
	issuer  string
	browser *http.Client
	offset  atomic.Int64 // clock offset, ns

	mu     sync.Mutex
	audits []audit.Record
}

type envOptions struct {
	config func(*authserver.Config)
	// audience is identity.audience (default: Mandate's client id at the
	// IdP, which devidp puts in aud).
	audience string
	// idpAddr starts the IdP later, on this address (IdP down at start).
	idpAddr string
	noIdP   bool
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.issuer = e.srv.URL

	var idpIssuer string
	if o.noIdP {
		idpIssuer = "http://" + o.idpAddr
	} else {
		e.idp = startIdP(t, ctx, o.idpAddr, e.issuer)
		idpIssuer = e.idp.Issuer()
	}
	aud := o.audience
	if aud == "" {
		aud = idpClientID
	}
	icfg := authn.Config{Issuer: idpIssuer, Audience: aud}.WithDefaults("")
	auth := authn.New(icfg, authn.Options{})
	auth.Start(ctx)

	st := openStore(t)
	e.st = st
	cfg := authserver.Config{
		Enabled: true,
		IdP:     authserver.IdPClientConfig{ClientID: idpClientID, ClientSecret: secret.String(idpSecret)},
		Clients: []clients.ClientConfig{
			{ClientID: appID, ClientName: "Test App", RedirectURIs: []string{appRedirect}},
			{ClientID: "trusted-app", ClientName: "Trusted", RedirectURIs: []string{appRedirect}, SkipConsent: true},
		},
	}
	if o.config != nil {
		o.config(&cfg)
	}
	stateKey := make([]byte, 32)
	_, _ = rand.Read(stateKey)
	as, err := authserver.New(ctx, cfg, authserver.Options{
		Issuer: e.issuer, Resource: e.issuer + "/mcp", IdPIssuer: idpIssuer,
		Auth: auth, Identity: icfg, Store: st, StateKey: stateKey,
		Audit: func(_ context.Context, r *audit.Record) {
			e.mu.Lock()
			e.audits = append(e.audits, *r)
			e.mu.Unlock()
		},
		Now: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) },
	})
	if err != nil {
		t.Fatalf("authserver.New: %v", err)
	}
	e.as = as
	for _, r := range as.Routes() {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}
	e.browser = newBrowser(t)
	if !o.noIdP {
		waitReady(t, auth)
	}
	return e
}

func startIdP(t *testing.T, ctx context.Context, addr, mandate string) *devidp.IdP {
	t.Helper()
	idp, err := devidp.Start(ctx, devidp.Options{Addr: addr, SigningKey: signingKey(t), Users: []devidp.User{
		{ID: "idp-0001", Username: "rita", Email: "rita@acme.example", GivenName: "Rita"},
		{ID: "idp-0003", Username: "morgan", Email: "morgan@acme.example", GivenName: "Morgan"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	if err := idp.AddClient(devidp.ClientConfig{ID: idpClientID, Secret: idpSecret, RedirectURIs: []string{mandate + authserver.PathCallback}}); err != nil {
		t.Fatal(err)
	}
	return idp
}

func waitReady(t *testing.T, a *authn.Authenticator) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !a.Ready() {
		if time.Now().After(deadline) {
			t.Fatalf("IdP keys not loaded: %s", a.Status())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func newBrowser(*testing.T) *http.Client { return webtest.NewBrowser() }

// authParams are a valid authorization request of appID.
func authParams(state string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {appID}, "redirect_uri": {appRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {state},
	}
}

type response struct {
	status int
	header http.Header
	body   string
	loc    *url.URL
}

func (e *env) do(c *http.Client, method, target string, form url.Values, hdr map[string]string) response {
	e.t.Helper()
	r := webtest.Do(e.t, c, method, target, form, hdr)
	return response{status: r.Status, header: r.Header, body: r.Body, loc: r.Loc}
}

func (e *env) get(target string) response { return e.do(e.browser, http.MethodGet, target, nil, nil) }

func (e *env) authorize(p url.Values) response {
	return e.get(e.issuer + authserver.PathAuthorize + "?" + p.Encode())
}

// signInAtIdP follows Mandate's redirect through the IdP's login page (the
// picker form, as a browser posts it) back to Mandate's callback URL.
func (e *env) signInAtIdP(toIdP *url.URL, username string) *url.URL {
	e.t.Helper()
	r := e.get(toIdP.String())
	if r.loc == nil || !strings.HasSuffix(r.loc.Path, "/login") {
		e.t.Fatalf("IdP authorize: %d %s, want a redirect to its login page", r.status, r.body)
	}
	id := r.loc.Query().Get("authRequestID")
	r = e.do(e.browser, http.MethodPost, e.idp.Issuer()+"/login", url.Values{"authRequestID": {id}, "username": {username}}, nil)
	if r.loc == nil {
		e.t.Fatalf("IdP login: %d %s", r.status, r.body)
	}
	r = e.get(r.loc.String())
	if r.loc == nil || !strings.HasPrefix(r.loc.String(), e.issuer+authserver.PathCallback) {
		e.t.Fatalf("IdP callback: %d %s (location %v), want a redirect to Mandate", r.status, r.body, r.loc)
	}
	return r.loc
}

var (
	formRE   = regexp.MustCompile(`<form[^>]*>`)
	hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)
)

// consentFields returns the consent form's hidden fields (and checks the
// page has exactly one post form to PathConsent).
func (e *env) consentFields(page response) url.Values {
	e.t.Helper()
	if page.status != http.StatusOK {
		e.t.Fatalf("consent page: %d %s", page.status, page.body)
	}
	forms := formRE.FindAllString(page.body, -1)
	if len(forms) != 1 || forms[0] != `<form method="post" action="`+e.issuer+authserver.PathConsent+`">` {
		e.t.Fatalf("consent page forms = %q, want one post form to %s", forms, authserver.PathConsent)
	}
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page.body, -1) {
		v.Set(m[1], m[2])
	}
	if v.Get("request") == "" || v.Get("csrf_token") == "" {
		e.t.Fatalf("consent form lacks request/csrf_token: %v", v)
	}
	return v
}

// toConsent runs authorize → IdP → callback and returns the consent page.
func (e *env) toConsent(state, username string) response {
	e.t.Helper()
	r := e.authorize(authParams(state))
	if r.status != http.StatusFound || r.loc == nil || !strings.HasPrefix(r.loc.String(), e.idp.Issuer()) {
		e.t.Fatalf("authorize: %d %s (location %v), want a redirect to the IdP", r.status, r.body, r.loc)
	}
	cb := e.signInAtIdP(r.loc, username)
	return e.get(cb.String())
}

func (e *env) postConsent(fields url.Values, decision string, hdr map[string]string) response {
	f := url.Values{}
	for k, v := range fields {
		f[k] = v
	}
	f.Set("decision", decision)
	return e.do(e.browser, http.MethodPost, e.issuer+authserver.PathConsent, f, hdr)
}

// wantClientRedirect checks r sends the browser to appRedirect with the
// given parameters (and iss).
func (e *env) wantClientRedirect(r response, want map[string]string) url.Values {
	e.t.Helper()
	if r.loc == nil || r.status/100 != 3 {
		e.t.Fatalf("got %d %s, want a redirect to the client", r.status, truncateBody(r.body))
	}
	if got := r.loc.Scheme + "://" + r.loc.Host + r.loc.Path; got != appRedirect {
		e.t.Fatalf("redirect to %s, want %s", got, appRedirect)
	}
	q := r.loc.Query()
	if q.Get("iss") != e.issuer {
		e.t.Errorf("iss = %q, want %q", q.Get("iss"), e.issuer)
	}
	for k, v := range want {
		if q.Get(k) != v {
			e.t.Errorf("%s = %q, want %q (query %v)", k, q.Get(k), v, q)
		}
	}
	return q
}

func truncateBody(s string) string {
	if len(s) > 400 {
		return s[:400]
	}
	return s
}

// wantPage checks r is a page at Mandate with status, saying contains,
// with the pages' security headers and no script (webtest.WantPage).
func wantPage(t *testing.T, r response, status int, contains string) {
	t.Helper()
	webtest.WantPage(t, webtest.Response{Status: r.status, Header: r.header, Body: r.body, Loc: r.loc}, status, contains)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	for _, p := range []string{authserver.PathMetadata, authserver.PathOIDCMetadata} {
		r := e.get(e.issuer + p)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", p, r.status)
		}
		if cc := r.header.Get("Cache-Control"); !strings.HasPrefix(cc, "public") {
			t.Errorf("%s Cache-Control = %q", p, cc)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(r.body), &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"issuer":                                         e.issuer,
			"authorization_endpoint":                         e.issuer + authserver.PathAuthorize,
			"token_endpoint":                                 e.issuer + authserver.PathToken,
			"registration_endpoint":                          e.issuer + authserver.PathRegister,
			"revocation_endpoint":                            e.issuer + authserver.PathRevoke,
			"jwks_uri":                                       e.issuer + authserver.PathJWKS,
			"scopes_supported":                               []any{"mcp"},
			"response_types_supported":                       []any{"code"},
			"response_modes_supported":                       []any{"query"},
			"grant_types_supported":                          []any{"authorization_code", "refresh_token"},
			"code_challenge_methods_supported":               []any{"S256"},
			"token_endpoint_auth_methods_supported":          []any{"none", "client_secret_basic", "client_secret_post"},
			"client_id_metadata_document_supported":          true,
			"authorization_response_iss_parameter_supported": true,
		}
		for k, v := range want {
			if got, _ := json.Marshal(m[k]); string(got) != mustJSON(v) {
				t.Errorf("%s %s = %s, want %s", p, k, got, mustJSON(v))
			}
		}
		if _, ok := m["authorization_grant_profiles_supported"]; ok {
			t.Errorf("%s lists ID-JAG although enterprise_managed is off", p)
		}
	}

	e2 := newEnv(t, envOptions{config: func(c *authserver.Config) {
		c.Registration.Policy = "off"
		c.MetadataDocuments.Disabled = true
		c.EnterpriseManaged.Enabled = true
		c.Scopes = []string{"mcp", "mcp:admin"}
	}})
	var m map[string]any
	_ = json.Unmarshal([]byte(e2.get(e2.issuer+authserver.PathMetadata).body), &m)
	if _, ok := m["registration_endpoint"]; ok {
		t.Error("registration_endpoint listed with registration policy off")
	}
	for k, v := range map[string]any{
		"client_id_metadata_document_supported":  false,
		"grant_types_supported":                  []any{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		"authorization_grant_profiles_supported": []any{"urn:ietf:params:oauth:grant-profile:id-jag"},
		"scopes_supported":                       []any{"mcp", "mcp:admin"},
	} {
		if got, _ := json.Marshal(m[k]); string(got) != mustJSON(v) {
			t.Errorf("%s = %s, want %s", k, got, mustJSON(v))
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSignInConsentAndCode(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	const state = "st/ate+with=odd&chars"
	page := e.toConsent(state, "rita")
	fields := e.consentFields(page)
	for _, s := range []string{"Test App", "pre-registered", "http://127.0.0.1:9999", "rita@acme.example", "idp-0001", "10 minutes", "30 days"} {
		if !strings.Contains(page.body, s) {
			t.Errorf("consent page does not show %q", s)
		}
	}
	csp := page.header.Get("Content-Security-Policy")
	for _, s := range []string{"default-src 'none'", "form-action 'self' http://127.0.0.1:9999", "frame-ancestors 'none'", "style-src 'sha256-"} {
		if !strings.Contains(csp, s) {
			t.Errorf("consent CSP %q lacks %q", csp, s)
		}
	}
	if page.header.Get("X-Frame-Options") != "DENY" || page.header.Get("Cache-Control") != "no-store" {
		t.Errorf("consent page headers: %v", page.header)
	}
	if strings.Contains(page.body, "<script") {
		t.Error("consent page has a script")
	}
	// Cookies: HttpOnly, SameSite=Lax, scoped to Mandate's path prefix
	// (none here).
	for _, c := range page.header.Values("Set-Cookie") {
		if !strings.Contains(c, "HttpOnly") || !strings.Contains(c, "SameSite=Lax") || !strings.Contains(c, "Path=/;") {
			t.Errorf("cookie %q", c)
		}
	}

	r := e.postConsent(fields, "allow", map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"})
	if r.status != http.StatusSeeOther {
		t.Fatalf("consent post: %d, want 303", r.status)
	}
	q := e.wantClientRedirect(r, map[string]string{"state": state})
	code := q.Get("code")
	if len(code) < 43 {
		t.Fatalf("code %q too short", code)
	}
	sum := sha256.Sum256([]byte(code))
	row, err := e.st.TakeCode(context.Background(), sum[:], time.Now())
	if err != nil {
		t.Fatalf("the code is not in the store: %v", err)
	}
	if row.ClientID != appID || row.RedirectURI != appRedirect || row.CodeChallenge != challenge ||
		row.Resource != e.issuer+"/mcp" || row.Scope != "mcp" || row.SessionID == "" || row.FamilyID == "" {
		t.Errorf("code row = %+v", row)
	}
	if d := time.Until(row.ExpiresAt); d <= 0 || d > 61*time.Second {
		t.Errorf("code expires in %v, want ~60s", d)
	}
	c, err := e.st.GetConsent(context.Background(), e.idp.Issuer(), "idp-0001", appID)
	if err != nil || c.Scope != "mcp" || time.Until(c.ExpiresAt) < 89*24*time.Hour {
		t.Errorf("consent = %+v, %v; want scope mcp for 90 days", c, err)
	}
	e.mu.Lock()
	var methods []string
	for _, a := range e.audits {
		methods = append(methods, a.Method+":"+a.Outcome+":"+a.User.Subject+":"+a.OAuthClient)
	}
	e.mu.Unlock()
	if got, want := strings.Join(methods, ","), "oauth/login:ok:idp-0001:test-app,oauth/consent:ok:idp-0001:test-app"; got != want {
		t.Errorf("audit = %s, want %s", got, want)
	}

	// Single sign-on: the next authorization in this browser skips the IdP
	// and, consent given, the consent page.
	r = e.authorize(authParams("second"))
	q = e.wantClientRedirect(r, map[string]string{"state": "second"})
	if q.Get("code") == "" || q.Get("code") == code {
		t.Errorf("SSO code = %q", q.Get("code"))
	}
	// The token endpoint redeems it (the tokens part), and the token is rita's.
	tr := e.do(http.DefaultClient, http.MethodPost, e.issuer+authserver.PathToken, url.Values{
		"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {appRedirect},
		"client_id": {appID}, "code_verifier": {verifier}, "resource": {e.issuer + "/mcp"},
	}, nil)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal([]byte(tr.body), &tok); err != nil || tok.AccessToken == "" {
		t.Fatalf("token endpoint: %d %s", tr.status, tr.body)
	}
	if id, ok, aerr := e.as.VerifyAccessToken(context.Background(), tok.AccessToken); !ok || aerr != nil || id.Subject != "idp-0001" {
		t.Errorf("VerifyAccessToken = %v, %v, %v; want rita (idp-0001)", id, ok, aerr)
	}
	// ...unless the client names another user: then the IdP again, with
	// login_hint and prompt forwarded.
	p := authParams("third")
	p.Set("login_hint", "morgan")
	p.Set("prompt", "login")
	r = e.authorize(p)
	if r.loc == nil || !strings.HasPrefix(r.loc.String(), e.idp.Issuer()) {
		t.Fatalf("authorize with another login_hint: %d %v, want the IdP", r.status, r.loc)
	}
	if r.loc.Query().Get("login_hint") != "morgan" || r.loc.Query().Get("prompt") != "login" {
		t.Errorf("IdP request %s lacks login_hint/prompt", r.loc.RawQuery)
	}
}

func TestSkipConsentClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	p := authParams("s1")
	p.Set("client_id", "trusted-app")
	r := e.authorize(p)
	cb := e.signInAtIdP(r.loc, "rita")
	e.wantClientRedirect(e.get(cb.String()), map[string]string{"state": "s1"})
}

// Errors before the client and redirect URI are known to match never
// redirect: an error page at Mandate, 400.
func TestAuthorizeNeverRedirectsUnverified(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cases := map[string]func(url.Values){
		"unknown client":       func(p url.Values) { p.Set("client_id", "nobody") },
		"no client":            func(p url.Values) { p.Del("client_id") },
		"two client ids":       func(p url.Values) { p.Add("client_id", "trusted-app") },
		"no redirect_uri":      func(p url.Values) { p.Del("redirect_uri") },
		"other site":           func(p url.Values) { p.Set("redirect_uri", "https://evil.example/callback") },
		"other path":           func(p url.Values) { p.Set("redirect_uri", "http://127.0.0.1:9999/callback/../evil") },
		"userinfo trick":       func(p url.Values) { p.Set("redirect_uri", "http://127.0.0.1:9999@evil.example/callback") },
		"suffix":               func(p url.Values) { p.Set("redirect_uri", appRedirect+".evil.example") },
		"two redirect uris":    func(p url.Values) { p.Add("redirect_uri", "https://evil.example/") },
		"bad request and evil": func(p url.Values) { p.Set("redirect_uri", "https://evil.example/"); p.Del("code_challenge") },
	}
	for name, mod := range cases {
		t.Run(name, func(t *testing.T) {
			p := authParams("x")
			mod(p)
			r := e.authorize(p)
			wantPage(t, r, http.StatusBadRequest, "")
			if strings.Contains(r.body, "evil.example/callback\"") {
				t.Error("page links to the attacker's URL")
			}
		})
	}
}

// Errors after the client and redirect URI are verified go back to the
// client with error, error_description, state and iss.
func TestAuthorizeErrorsRedirect(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cases := []struct {
		name string
		mod  func(url.Values)
		code string
	}{
		{"resource mismatch", func(p url.Values) { p.Set("resource", "https://other.example/mcp") }, "invalid_target"},
		{"plain PKCE", func(p url.Values) { p.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no PKCE method", func(p url.Values) { p.Del("code_challenge_method") }, "invalid_request"},
		{"no PKCE", func(p url.Values) { p.Del("code_challenge"); p.Del("code_challenge_method") }, "invalid_request"},
		{"token response", func(p url.Values) { p.Set("response_type", "token") }, "unsupported_response_type"},
		{"unknown scope", func(p url.Values) { p.Set("scope", "mcp admin") }, "invalid_scope"},
		{"prompt none, not signed in", func(p url.Values) { p.Set("prompt", "none") }, "login_required"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := authParams("keep-me")
			c.mod(p)
			q := e.wantClientRedirect(e.authorize(p), map[string]string{"error": c.code, "state": "keep-me"})
			if q.Get("error_description") == "" {
				t.Error("no error_description")
			}
		})
	}
	// The resource, with or without a trailing slash, and offline_access are accepted.
	p := authParams("ok")
	p.Set("resource", e.issuer+"/mcp")
	p.Set("scope", "mcp offline_access")
	if r := e.authorize(p); r.loc == nil || !strings.HasPrefix(r.loc.String(), e.idp.Issuer()) {
		t.Errorf("valid request: %d %v, want the IdP", r.status, r.loc)
	}
}

func TestConsentRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	fields := e.consentFields(e.toConsent("s", "rita"))

	// Cross-site posts.
	wantPage(t, e.postConsent(fields, "allow", map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden, "another site")
	wantPage(t, e.postConsent(fields, "allow", map[string]string{"Sec-Fetch-Site": "same-site"}), http.StatusForbidden, "another site")
	wantPage(t, e.postConsent(fields, "allow", map[string]string{"Origin": "https://evil.example"}), http.StatusForbidden, "another site")
	wantPage(t, e.postConsent(fields, "allow", map[string]string{"Origin": "null"}), http.StatusForbidden, "another site")
	// CSRF: the form's fields posted from a browser without the cookie
	// (an attacker who obtained them), or a wrong token.
	other := newBrowser(t)
	f := url.Values{}
	for k, v := range fields {
		f[k] = v
	}
	f.Set("decision", "allow")
	wantPage(t, e.do(other, http.MethodPost, e.issuer+authserver.PathConsent, f, nil), http.StatusForbidden, "")
	bad := url.Values{}
	for k, v := range fields {
		bad[k] = v
	}
	bad.Set("csrf_token", "AAAA"+fields.Get("csrf_token")[4:])
	wantPage(t, e.postConsent(bad, "allow", nil), http.StatusForbidden, "")
	// A tampered request blob.
	bad = url.Values{}
	for k, v := range fields {
		bad[k] = v
	}
	req := []byte(fields.Get("request"))
	req[20] ^= 1
	bad.Set("request", string(req))
	wantPage(t, e.postConsent(bad, "allow", nil), http.StatusBadRequest, "altered")

	// None of them consented.
	if _, err := e.st.GetConsent(context.Background(), e.idp.Issuer(), "idp-0001", appID); err == nil {
		t.Fatal("a refused post stored consent")
	}
	// An expired page.
	e.offset.Store(int64(11 * time.Minute))
	wantPage(t, e.postConsent(fields, "allow", nil), http.StatusBadRequest, "expired")
	e.offset.Store(0)
	// Deny.
	e.wantClientRedirect(e.postConsent(fields, "deny", map[string]string{"Origin": e.issuer}), map[string]string{"error": "access_denied", "state": "s"})
	if _, err := e.st.GetConsent(context.Background(), e.idp.Issuer(), "idp-0001", appID); err == nil {
		t.Fatal("deny stored consent")
	}
}

func TestCallbackRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.authorize(authParams("s"))
	cb := e.signInAtIdP(r.loc, "rita")

	// Without the browser cookie (the callback URL replayed in another
	// browser: login CSRF).
	wantPage(t, e.do(newBrowser(t), http.MethodGet, cb.String(), nil, nil), http.StatusBadRequest, "not started in this browser")
	// A tampered state.
	q := cb.Query()
	st := []byte(q.Get("state"))
	st[30] ^= 2
	q.Set("state", string(st))
	wantPage(t, e.get(e.issuer+authserver.PathCallback+"?"+q.Encode()), http.StatusBadRequest, "altered")
	// No state.
	wantPage(t, e.get(e.issuer+authserver.PathCallback+"?code=x"), http.StatusBadRequest, "altered")
	// An expired one.
	e.offset.Store(int64(11 * time.Minute))
	wantPage(t, e.get(cb.String()), http.StatusBadRequest, "took too long")
	e.offset.Store(0)
	// The real one still works.
	e.consentFields(e.get(cb.String()))
}

func TestCallbackIdPError(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	r := e.authorize(authParams("s-err"))
	state := r.loc.Query().Get("state")
	q := url.Values{"state": {state}, "error": {"access_denied"}, "error_description": {"<b>user cancelled</b>"}}
	e.wantClientRedirect(e.get(e.issuer+authserver.PathCallback+"?"+q.Encode()), map[string]string{"error": "access_denied", "state": "s-err"})
	q.Set("error", "server_error")
	e.wantClientRedirect(e.get(e.issuer+authserver.PathCallback+"?"+q.Encode()), map[string]string{"error": "server_error", "state": "s-err"})
	// An error in Mandate's own request to the IdP (here Entra ID v2
	// refusing a configured resource) is a configuration problem: a page
	// with the IdP's first description line (escaped), not access_denied.
	q.Set("error", "invalid_request")
	q.Set("error_description", "<b>AADSTS901002: The 'resource' request parameter is not supported.</b>\r\nTrace ID: 1234")
	page := e.get(e.issuer + authserver.PathCallback + "?" + q.Encode())
	wantPage(t, page, http.StatusBadGateway, "AADSTS901002")
	if strings.Contains(page.body, "<b>") || strings.Contains(page.body, "Trace ID") || !strings.Contains(page.body, "authorization_server.idp") {
		t.Errorf("page = %s", page.body)
	}
}

// The IdP access token must pass the same checks as a presented token: a
// wrong identity.audience is an error page naming the settings.
func TestCallbackAccessTokenRejected(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{audience: "https://some-other-api.example"})
	page := e.toConsent("s", "rita")
	wantPage(t, page, http.StatusForbidden, "identity.audience")
	if !strings.Contains(page.body, "authorization_server.idp.scopes") {
		t.Error("page does not name authorization_server.idp.scopes")
	}
}

// Entra ID v2 refuses the resource parameter (AADSTS901002): with idp
// scopes carrying api://…/.default and no resource configured, the request
// to the IdP has the scope and no resource.
func TestIdPRequestEntraShaped(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{config: func(c *authserver.Config) {
		c.IdP.Scopes = []string{"openid", "offline_access", "api://mandate/.default"}
	}})
	p := authParams("s")
	p.Set("resource", e.issuer+"/mcp") // the client sends it; Mandate must not pass it on
	r := e.authorize(p)
	if r.loc == nil {
		t.Fatalf("authorize: %d %s", r.status, r.body)
	}
	q := r.loc.Query()
	if _, ok := q["resource"]; ok {
		t.Errorf("IdP request carries resource: %s", r.loc.RawQuery)
	}
	if q.Get("scope") != "openid offline_access api://mandate/.default" {
		t.Errorf("IdP scope = %q", q.Get("scope"))
	}
	if q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" || q.Get("client_id") != idpClientID ||
		q.Get("redirect_uri") != e.issuer+authserver.PathCallback {
		t.Errorf("IdP request %s", r.loc.RawQuery)
	}

	e2 := newEnv(t, envOptions{config: func(c *authserver.Config) { c.IdP.Resource = "https://api.example" }})
	r = e2.authorize(authParams("s"))
	if r.loc.Query().Get("resource") != "https://api.example" {
		t.Errorf("configured resource not sent: %s", r.loc.RawQuery)
	}
}

// The IdP may be down when Mandate starts: New succeeds, a sign-in gets a
// clear page, and once the IdP is up sign-ins work.
func TestIdPDownAtStart(t *testing.T) {
	t.Parallel()
	addr := freeAddr(t)
	e := newEnv(t, envOptions{noIdP: true, idpAddr: addr})
	wantPage(t, e.authorize(authParams("s")), http.StatusServiceUnavailable, "cannot reach")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	idp := startIdP(t, ctx, addr, e.issuer)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.authorize(authParams("s"))
		if r.loc != nil && strings.HasPrefix(r.loc.String(), idp.Issuer()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("authorize after the IdP came up: %d %s", r.status, r.body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// openStore opens the real SQLite store in the test's directory.
func openStore(t *testing.T) store.Store {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mandate.db"),
		store.EncryptionKey{ID: "k1", Key: secret.String(base64.StdEncoding.EncodeToString(key))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}
