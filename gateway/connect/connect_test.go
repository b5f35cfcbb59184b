package connect_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
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

	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// The company IdP and the platform's authorization server are both the
// real zitadel OP (devidp) on loopback; the store is the real SQLite
// store.
//
// platformConnector stands in for the authorization_code flow's Connector
// (branch grantflow, not merged yet): plain x/oauth2 against the platform
// (PKCE S256 as Mandate asks, the code redeemed at its token endpoint, RFC
// 7009 revocation there). It keeps grants in memory because the grants
// part of the store is still a stub on main. The tests assert the connect
// pages' behaviour, not this stand-in's.
type platformConnector struct {
	cfg       oauth2.Config
	revokeURL string
	mu        sync.Mutex
	grants    map[credentials.GrantKey]credentials.Grant
	redeems   atomic.Int32
	revokes   atomic.Int32
}

func (c *platformConnector) AuthCodeURL(_ context.Context, state, challenge, redirectURI, loginHint string) (string, error) {
	opts := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("code_challenge", challenge),
		oauth2.SetAuthURLParam("code_challenge_method", "S256"), oauth2.SetAuthURLParam("redirect_uri", redirectURI)}
	if loginHint != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", loginHint))
	}
	return c.cfg.AuthCodeURL(state, opts...), nil
}

func (c *platformConnector) Redeem(ctx context.Context, k credentials.GrantKey, code, verifier, redirectURI string) (credentials.Grant, error) {
	c.redeems.Add(1)
	cfg := c.cfg
	cfg.RedirectURL = redirectURI
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return credentials.Grant{}, err
	}
	g := credentials.Grant{ClientID: cfg.ClientID, AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken,
		TokenType: tok.TokenType, Expiry: tok.Expiry, Scope: strings.Join(cfg.Scopes, " "), PlatformSubject: jwtSub(tok.AccessToken)}
	c.mu.Lock()
	c.grants[k] = g
	c.mu.Unlock()
	return g, nil
}

func (c *platformConnector) Disconnect(ctx context.Context, k credentials.GrantKey) error {
	c.mu.Lock()
	g, ok := c.grants[k]
	delete(c.grants, k)
	c.mu.Unlock()
	if !ok {
		return nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, c.revokeURL,
		strings.NewReader(url.Values{"token": {g.RefreshToken}, "token_type_hint": {"refresh_token"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(c.cfg.ClientID, c.cfg.ClientSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New("revocation: " + resp.Status)
	}
	c.revokes.Add(1)
	return nil
}

func (c *platformConnector) Key(issuer, subject string) credentials.GrantKey {
	return credentials.GrantKey{Issuer: issuer, Subject: subject, Upstream: "tracker", ConfigDigest: "d1"}
}

func (c *platformConnector) Scopes() []string { return c.cfg.Scopes }

func (c *platformConnector) grant(issuer, subject string) (credentials.Grant, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g, ok := c.grants[c.Key(issuer, subject)]
	return g, ok
}

func jwtSub(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Sub
}

var (
	keyOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func signingKey() *rsa.PrivateKey {
	keyOnce.Do(func() { rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048) })
	return rsaKey
}

type env struct {
	t        *testing.T
	idp      *devidp.IdP // the company IdP
	platform *devidp.IdP // the tracker's authorization server
	srv      *httptest.Server
	issuer   string
	as       *authserver.Server
	svc      *connect.Service
	st       store.Store
	conn     *platformConnector
	offset   atomic.Int64

	mu        sync.Mutex
	audits    []audit.Record
	changes   []string
	completed []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e := &env{t: t}
	mux := http.NewServeMux()
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.issuer = e.srv.URL
	now := func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }
	users := []devidp.User{
		{ID: "idp-0001", Username: "rita", Email: "rita@acme.example"},
		{ID: "idp-0003", Username: "morgan", Email: "morgan@acme.example"},
	}
	var err error
	if e.idp, err = devidp.Start(ctx, devidp.Options{SigningKey: signingKey(), Users: users}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.idp.Close() })
	if err := e.idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: "s1", RedirectURIs: []string{e.issuer + authserver.PathCallback}}); err != nil {
		t.Fatal(err)
	}
	if e.platform, err = devidp.Start(ctx, devidp.Options{SigningKey: signingKey(), Users: []devidp.User{
		{ID: "tracker-rita", Username: "rita"}, {ID: "tracker-morgan", Username: "morgan"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.platform.Close() })
	if err := e.platform.AddClient(devidp.ClientConfig{ID: "mandate-at-tracker", Secret: "s2", RedirectURIs: []string{e.issuer + connect.PathCallback}}); err != nil {
		t.Fatal(err)
	}
	e.conn = &platformConnector{
		cfg: oauth2.Config{ClientID: "mandate-at-tracker", ClientSecret: "s2", Scopes: []string{"openid", "offline_access"},
			Endpoint: oauth2.Endpoint{AuthURL: e.platform.AuthorizationURL(), TokenURL: e.platform.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader}},
		revokeURL: discover(t, e.platform, "revocation_endpoint"),
		grants:    map[credentials.GrantKey]credentials.Grant{},
	}

	icfg := authn.Config{Issuer: e.idp.Issuer(), Audience: "mandate"}.WithDefaults("")
	auth := authn.New(icfg, authn.Options{})
	auth.Start(ctx)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	e.st, err = store.OpenSQLite(filepath.Join(t.TempDir(), "mandate.db"), store.EncryptionKey{ID: "k1", Key: secret.String(base64.StdEncoding.EncodeToString(key))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.st.Close() })
	rec := func(_ context.Context, r *audit.Record) {
		e.mu.Lock()
		e.audits = append(e.audits, *r)
		e.mu.Unlock()
	}
	e.as, err = authserver.New(ctx, authserver.Config{Enabled: true, IdP: authserver.IdPClientConfig{ClientID: "mandate", ClientSecret: "s1"}},
		authserver.Options{Issuer: e.issuer, Resource: e.issuer + "/mcp", IdPIssuer: e.idp.Issuer(), Auth: auth, Identity: icfg,
			Store: e.st, StateKey: key, Audit: rec, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	stateKey := make([]byte, 32)
	_, _ = rand.Read(stateKey)
	e.svc, err = connect.New(ctx, connect.Options{
		Issuer: e.issuer, Auth: e.as, Store: e.st, StateKey: stateKey, Audit: rec, Now: now,
		Connector: func(up string) (credentials.Connector, bool) {
			if up == "tracker" {
				return e.conn, true
			}
			return nil, false
		},
		Upstreams: func() []string { return []string{"crm", "tracker"} },
		OnChange: func(iss, sub, up string) {
			e.mu.Lock()
			e.changes = append(e.changes, sub+"|"+up)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc.Completed = func(eid string, id *identity.Identity, up string) {
		e.mu.Lock()
		e.completed = append(e.completed, eid+"|"+id.Subject+"|"+up)
		e.mu.Unlock()
	}
	for _, r := range append(e.as.Routes(), e.svc.Routes()...) {
		mux.Handle(r.Method+" "+r.Path, r.Handler)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !auth.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("IdP keys not loaded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return e
}

func discover(t *testing.T, p *devidp.IdP, field string) string {
	resp, err := http.Get(p.DiscoveryURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	s, _ := m[field].(string)
	if s == "" {
		t.Fatalf("platform discovery has no %s", field)
	}
	return s
}

func newBrowser(*testing.T) *http.Client { return webtest.NewBrowser() }

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

func (e *env) get(c *http.Client, target string) response {
	return e.do(c, http.MethodGet, target, nil, nil)
}

// signIn signs browser b in to Mandate as username (through SignInThen of
// a page under test, which must send the browser to the IdP), then follows
// Mandate's redirect back; it returns that redirect's target.
func (e *env) signIn(b *http.Client, r response, username string) *url.URL {
	e.t.Helper()
	if r.status != http.StatusFound || r.loc == nil || !strings.HasPrefix(r.loc.String(), e.idp.Issuer()) {
		e.t.Fatalf("want a redirect to the IdP, got %d %v %s", r.status, r.loc, short(r.body))
	}
	// login_hint is how the demo picks the user without a form.
	q := r.loc.Query()
	q.Set("login_hint", username)
	r.loc.RawQuery = q.Encode()
	r = e.get(b, r.loc.String())
	for i := 0; i < 5 && r.loc != nil && !strings.HasPrefix(r.loc.String(), e.issuer); i++ {
		r = e.get(b, r.loc.String())
	}
	if r.loc == nil || !strings.HasPrefix(r.loc.String(), e.issuer+authserver.PathCallback) {
		e.t.Fatalf("IdP: %d %v %s, want Mandate's callback", r.status, r.loc, short(r.body))
	}
	r = e.get(b, r.loc.String())
	if r.status != http.StatusFound || r.loc == nil || !strings.HasPrefix(r.loc.String(), e.issuer+"/") {
		e.t.Fatalf("Mandate callback: %d %v %s, want a redirect back to the page", r.status, r.loc, short(r.body))
	}
	return r.loc
}

// consentAtPlatform follows the platform's authorization URL (signing in
// there by login_hint) to the redirect back to Mandate's connect callback.
func (e *env) consentAtPlatform(b *http.Client, to *url.URL, username string) *url.URL {
	e.t.Helper()
	if !strings.HasPrefix(to.String(), e.platform.Issuer()) {
		e.t.Fatalf("want the platform, got %v", to)
	}
	q := to.Query()
	q.Set("login_hint", username)
	to.RawQuery = q.Encode()
	r := e.get(b, to.String())
	for i := 0; i < 5 && r.loc != nil && !strings.HasPrefix(r.loc.String(), e.issuer); i++ {
		r = e.get(b, r.loc.String())
	}
	if r.loc == nil || !strings.HasPrefix(r.loc.String(), e.issuer+connect.PathCallback) {
		e.t.Fatalf("platform: %d %v %s, want Mandate's connect callback", r.status, r.loc, short(r.body))
	}
	return r.loc
}

func short(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}

func (e *env) link(subject, email string) (string, string) {
	e.t.Helper()
	l, eid, err := e.svc.Link(&identity.Identity{Issuer: e.idp.Issuer(), Subject: subject, Email: email}, "tracker", "no_grant")
	if err != nil {
		e.t.Fatal(err)
	}
	return l, eid
}

func (e *env) records(method string) []audit.Record {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []audit.Record
	for _, a := range e.audits {
		if a.Method == method {
			out = append(out, a)
		}
	}
	return out
}

var formRE = regexp.MustCompile(`<form[^>]*>`)

// wantPage checks r is a page at Mandate with status, saying contains,
// with the pages' security headers and no script (webtest.WantPage).
func wantPage(t *testing.T, r response, status int, contains string) {
	t.Helper()
	webtest.WantPage(t, webtest.Response{Status: r.status, Header: r.header, Body: r.body, Loc: r.loc}, status, contains)
}

// connectThrough opens link in b (signed in or not as username) up to the
// redirect to the platform.
func (e *env) startLink(b *http.Client, link, username string) *url.URL {
	e.t.Helper()
	r := e.get(b, link)
	if r.loc != nil && strings.HasPrefix(r.loc.String(), e.idp.Issuer()) {
		back := e.signIn(b, r, username)
		if back.String() != link {
			e.t.Fatalf("sign-in returned to %s, want the link %s", back, link)
		}
		r = e.get(b, link)
	}
	if r.status != http.StatusFound || r.loc == nil || !strings.HasPrefix(r.loc.String(), e.platform.Issuer()) {
		e.t.Fatalf("link: %d %v %s, want a redirect to the platform", r.status, r.loc, short(r.body))
	}
	q := r.loc.Query()
	if q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43 || q.Get("state") == "" ||
		q.Get("redirect_uri") != e.issuer+connect.PathCallback {
		e.t.Fatalf("platform authorization URL %v lacks PKCE/state/redirect_uri", r.loc)
	}
	return r.loc
}

func TestConnectLinkByItsUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	link, eid := e.link("idp-0001", "rita@acme.example")
	if !strings.HasPrefix(link, e.issuer+connect.PathStart+"?t=") {
		t.Fatalf("link %s is not Mandate's start page", link)
	}
	for _, pii := range []string{"rita", "idp-0001", "tracker", "acme"} {
		if strings.Contains(strings.ToLower(link), pii) {
			t.Errorf("link %s shows %q in the clear", link, pii)
		}
	}
	b := newBrowser(t)
	to := e.startLink(b, link, "rita")
	cb := e.consentAtPlatform(b, to, "rita")
	r := e.get(b, cb.String())
	wantPage(t, r, http.StatusOK, "Your tracker account is connected")
	if f := formRE.FindAllString(r.body, -1); len(f) != 0 {
		t.Errorf("success page has forms %q", f)
	}
	if strings.Contains(strings.ToLower(r.body), "http-equiv") {
		t.Error("success page refreshes/redirects")
	}
	g, ok := e.conn.grant(e.idp.Issuer(), "idp-0001")
	if !ok || g.PlatformSubject != "tracker-rita" || g.RefreshToken == "" {
		t.Fatalf("grant = %+v %v, want rita's tracker grant", g, ok)
	}
	recs := e.records(audit.MethodConnectGrant)
	if len(recs) != 1 || recs[0].Outcome != audit.OutcomeOK || recs[0].User.Subject != "idp-0001" || recs[0].Upstream != "tracker" ||
		recs[0].Credential == nil || recs[0].Credential.PlatformSubject != "tracker-rita" || recs[0].Credential.Flow != "authorization_code" {
		t.Errorf("connect/grant records = %+v", recs)
	}
	e.mu.Lock()
	changes, completed := strings.Join(e.changes, ","), strings.Join(e.completed, ",")
	e.mu.Unlock()
	if !strings.Contains(changes, "idp-0001|tracker") {
		t.Errorf("OnChange calls = %q", changes)
	}
	if completed != eid+"|idp-0001|tracker" {
		t.Errorf("Completed calls = %q, want %s|idp-0001|tracker", completed, eid)
	}

	// The same answer again: nothing more is redeemed.
	r = e.get(b, cb.String())
	wantPage(t, r, http.StatusBadRequest, "already used")
	if n := e.conn.redeems.Load(); n != 1 {
		t.Errorf("redeems = %d after a replay, want 1", n)
	}
}

func TestConnectLinkOpenedByAnotherUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	link, _ := e.link("idp-0001", "rita@acme.example") // made for rita
	b := newBrowser(t)
	r := e.get(b, link)
	e.signIn(b, r, "morgan") // forwarded to morgan, who signs in
	r = e.get(b, link)
	wantPage(t, r, http.StatusForbidden, "made for someone else")
	if !strings.Contains(r.body, "morgan@acme.example") {
		t.Errorf("page does not say who is signed in: %s", r.body)
	}
	if e.conn.redeems.Load() != 0 {
		t.Error("something was redeemed")
	}
	if _, ok := e.conn.grant(e.idp.Issuer(), "idp-0003"); ok {
		t.Error("morgan got a grant")
	}
	recs := e.records(audit.MethodConnectGrant)
	if len(recs) != 1 || recs[0].Outcome != audit.OutcomeDenied || recs[0].ErrorClass != "wrong_user" || recs[0].User.Subject != "idp-0003" {
		t.Errorf("records = %+v, want one denied wrong_user by morgan", recs)
	}
}

func TestConnectLinkExpiredOrTampered(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	link, _ := e.link("idp-0001", "")
	b := newBrowser(t)
	u, _ := url.Parse(link)
	tk := u.Query().Get("t")
	flipped := []byte(tk)
	flipped[len(flipped)/2] ^= 1
	if flipped[len(flipped)/2] == tk[len(tk)/2] {
		t.Fatal("no change")
	}
	for _, bad := range []string{string(flipped), tk[:len(tk)-4], "", "x"} {
		r := e.get(b, e.issuer+connect.PathStart+"?t="+url.QueryEscape(bad))
		wantPage(t, r, http.StatusBadRequest, "not valid")
	}
	e.offset.Store(int64(connect.LinkTTL + time.Second))
	wantPage(t, e.get(b, link), http.StatusBadRequest, "expired")
}

func TestConnectCallbackStateChecks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	link, _ := e.link("idp-0001", "")
	b := newBrowser(t)
	to := e.startLink(b, link, "rita")
	cb := e.consentAtPlatform(b, to, "rita")

	// Another browser (no binding cookie) gets nothing.
	other := newBrowser(t)
	wantPage(t, e.get(other, cb.String()), http.StatusBadRequest, "not started in this browser")
	// An altered state.
	q := cb.Query()
	st := q.Get("state")
	q.Set("state", st[:len(st)-2]+"AA")
	bad := *cb
	bad.RawQuery = q.Encode()
	wantPage(t, e.get(b, bad.String()), http.StatusBadRequest, "missing or altered")
	// A platform error.
	q = cb.Query()
	q.Del("code")
	q.Set("error", "access_denied")
	perr := *cb
	perr.RawQuery = q.Encode()
	// (Uses the state once: the real answer below is then a replay.)
	wantPage(t, e.get(b, perr.String()), http.StatusForbidden, "declined")
	wantPage(t, e.get(b, cb.String()), http.StatusBadRequest, "already used")
	if e.conn.redeems.Load() != 0 {
		t.Errorf("redeems = %d, want 0", e.conn.redeems.Load())
	}

	// An expired state.
	link, _ = e.link("idp-0001", "")
	to = e.startLink(b, link, "rita")
	cb = e.consentAtPlatform(b, to, "rita")
	e.offset.Store(int64(11 * time.Minute))
	wantPage(t, e.get(b, cb.String()), http.StatusBadRequest, "expired")
	if e.conn.redeems.Load() != 0 {
		t.Errorf("redeems = %d, want 0", e.conn.redeems.Load())
	}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

func TestMyConnectionsDisconnect(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := newBrowser(t)
	// Not signed in: sign in, come back to the page.
	r := e.get(b, e.issuer+connect.PathConnections)
	if back := e.signIn(b, r, "rita"); back.String() != e.issuer+connect.PathConnections {
		t.Fatalf("sign-in returned to %v", back)
	}
	r = e.get(b, e.issuer+connect.PathConnections)
	wantPage(t, r, http.StatusOK, "My connections")
	if !strings.Contains(r.body, "<h2>tracker</h2>") || strings.Contains(r.body, "<h2>crm</h2>") {
		t.Errorf("page lists the wrong upstreams: %s", r.body)
	}
	if !strings.Contains(r.body, "Not connected") {
		t.Errorf("tracker not shown as not connected: %s", r.body)
	}
	if csp := r.header.Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("CSP %q", csp)
	}
	// Its Connect link is rita's own link.
	m := regexp.MustCompile(`href="([^"]+)"`).FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no connect link: %s", r.body)
	}
	link := strings.ReplaceAll(m[1], "&amp;", "&")
	to := e.startLink(b, link, "rita")
	cb := e.consentAtPlatform(b, to, "rita")
	wantPage(t, e.get(b, cb.String()), http.StatusOK, "connected")
	g, ok := e.conn.grant(e.idp.Issuer(), "idp-0001")
	if !ok {
		t.Fatal("no grant after connecting")
	}

	// Disconnect: the form's fields, posted as the browser does.
	r = e.get(b, e.issuer+connect.PathConnections)
	fields := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(r.body, -1) {
		fields.Set(m[1], m[2])
	}
	if fields.Get("csrf_token") == "" {
		// The grants part of the store is a stub until grants-store
		// lands: the page shows no grant, hence no form. Post what the
		// form would carry.
		fields.Set("upstream", "tracker")
		fields.Set("csrf_token", csrfFrom(t, e, b))
	}
	sameSite := map[string]string{"Origin": e.issuer, "Sec-Fetch-Site": "same-origin"}
	// Cross-site posts and posts without the token are refused.
	for name, c := range map[string]struct {
		f   url.Values
		hdr map[string]string
	}{
		"cross-site": {fields, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
		"no token":   {url.Values{"upstream": {"tracker"}}, sameSite},
		"bad token":  {url.Values{"upstream": {"tracker"}, "csrf_token": {"x" + fields.Get("csrf_token")}}, sameSite},
	} {
		r := e.do(b, http.MethodPost, e.issuer+connect.PathDisconnect, c.f, c.hdr)
		wantPage(t, r, http.StatusForbidden, "ignored it")
		if e.conn.revokes.Load() != 0 {
			t.Fatalf("%s: revoked", name)
		}
	}
	// Another browser signed in as morgan cannot use rita's token.
	mb := newBrowser(t)
	e.signIn(mb, e.get(mb, e.issuer+connect.PathConnections), "morgan")
	wantPage(t, e.do(mb, http.MethodPost, e.issuer+connect.PathDisconnect, fields, sameSite), http.StatusForbidden, "ignored it")

	r = e.do(b, http.MethodPost, e.issuer+connect.PathDisconnect, fields, sameSite)
	if r.status != http.StatusSeeOther || r.loc == nil || r.loc.String() != e.issuer+connect.PathConnections {
		t.Fatalf("disconnect: %d %v %s", r.status, r.loc, short(r.body))
	}
	if e.conn.revokes.Load() != 1 {
		t.Errorf("revocations at the platform = %d, want 1", e.conn.revokes.Load())
	}
	if _, ok := e.conn.grant(e.idp.Issuer(), "idp-0001"); ok {
		t.Error("grant still there")
	}
	// The platform no longer honours the refresh token.
	if _, err := e.conn.cfg.TokenSource(context.Background(), &oauth2.Token{RefreshToken: g.RefreshToken}).Token(); err == nil {
		t.Error("the revoked refresh token still works at the platform")
	}
	recs := e.records(audit.MethodConnectDisconnect)
	if len(recs) != 1 || recs[0].Outcome != audit.OutcomeOK || recs[0].User.Subject != "idp-0001" || recs[0].Upstream != "tracker" {
		t.Errorf("disconnect records = %+v", recs)
	}
	e.mu.Lock()
	n := strings.Count(strings.Join(e.changes, ","), "idp-0001|tracker")
	e.mu.Unlock()
	if n < 2 {
		t.Errorf("OnChange for rita's tracker grant called %d times, want connect + disconnect", n)
	}
}

// csrfFrom reads the CSRF token the way the page computes it: through a
// page handler of the test's own (the page shows no form while the store's
// grants are a stub).
func csrfFrom(t *testing.T, e *env, b *http.Client) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, e.as.CSRFToken(r, "connect/disconnect"))
	}))
	defer srv.Close()
	u, _ := url.Parse(e.issuer)
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	for _, c := range b.Jar.Cookies(u) {
		req.AddCookie(c)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s, _ := io.ReadAll(resp.Body)
	return string(s)
}
