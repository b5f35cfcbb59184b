package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	tIssuer   = "https://mcp.example.com"
	tResource = "https://mcp.example.com/mcp"
	tIdPAud   = "mandate-api" // the IdP access tokens' audience (identity.audience)
	tClient   = "app"
	tClient2  = "other-app"
	tRedirect = "http://127.0.0.1:7777/callback"
	// tIdPCallback is Mandate's redirect URI at the IdP (never contacted:
	// the test stops at the redirect).
	tIdPCallback = "http://127.0.0.1:1/oauth/callback"
)

// idpOAuth is Mandate as a confidential client of the dev IdP.
func (e *idpEnv) idpOAuth() *oauth2.Config {
	return &oauth2.Config{ClientID: "mandate", ClientSecret: "mandate-secret", RedirectURL: tIdPCallback,
		Scopes:   []string{"openid", "profile", "email", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: e.idp.AuthorizationURL(), TokenURL: e.idp.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader}}
}

// browserLogin signs username in at the IdP through its authorization
// endpoint (login_hint, no picker), as Mandate's sign-in does, and returns
// the IdP's tokens (with a rotating refresh token).
func (e *idpEnv) browserLogin(t testing.TB, username string) *oauth2.Token {
	t.Helper()
	conf := e.idpOAuth()
	verifier := oauth2.GenerateVerifier()
	target := conf.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("login_hint", username))
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 10 {
		if strings.HasPrefix(target, tIdPCallback) {
			u, _ := url.Parse(target)
			tok, err := conf.Exchange(context.Background(), u.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}
		resp, err := noFollow.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("IdP sign-in stopped at HTTP %d", resp.StatusCode)
		}
		target = loc.String()
	}
	t.Fatal("too many redirects")
	return nil
}

// idpRefresh redeems an IdP refresh token as the sign-in part does: an
// OAuth refusal (invalid_grant) is ErrSessionEnded.
func (e *idpEnv) idpRefresh(ctx context.Context, rt string) (*oauth2.Token, error) {
	tok, err := e.idpOAuth().TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return nil, fmt.Errorf("%w: %s", ErrSessionEnded, re.ErrorDescription)
	}
	return tok, err
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// idpEnv is the real dev IdP (zitadel OP) and an authenticator trusting it.
type idpEnv struct {
	idp  *devidp.IdP
	auth *authn.Authenticator
	cfg  authn.Config
}

func startIdP(t testing.TB) *idpEnv {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	idp, err := devidp.Start(ctx, devidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	if err := idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: "mandate-secret",
		RedirectURIs: []string{tIdPCallback}, Audience: []string{tIdPAud}}); err != nil {
		t.Fatal(err)
	}
	cfg := authn.Config{Issuer: idp.Issuer(), Audience: tIdPAud}.WithDefaults(tIdPAud)
	a := authn.New(cfg, authn.Options{})
	a.Start(ctx)
	for deadline := time.Now().Add(10 * time.Second); !a.Ready(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("IdP keys not loaded: %s", a.Status())
		}
	}
	return &idpEnv{idp: idp, auth: a, cfg: cfg}
}

// login signs username in at the IdP and returns its access token and the
// verified claims, as the sign-in part hands them to sessions.create.
func (e *idpEnv) login(t testing.TB, username string, lifetime time.Duration) (string, map[string]any, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := e.idp.Token(ctx, username, devidp.TokenOptions{Audience: []string{tIdPAud}, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	id, ae := e.auth.Authenticate(ctx, []string{"Bearer " + tok})
	if ae != nil {
		t.Fatal(ae)
	}
	return tok, id.Claims, id.Expiry
}

type testAS struct {
	*Server
	st    store.Store
	clk   *clock
	env   *idpEnv
	mu    sync.Mutex
	audit []audit.Record
}

type asOptions struct {
	st        store.Store
	clk       *clock
	cfg       func(*Config)
	ttl       time.Duration
	rotation  time.Duration
	enterpris *EnterpriseConfig
}

var (
	testKeyOnce sync.Once
	testKey     store.EncryptionKey
)

// openStore opens a real SQLite store in dir.
func openStore(t testing.TB, dir string) store.Store {
	t.Helper()
	testKeyOnce.Do(func() {
		var err error
		if testKey, err = store.GenerateKey("test"); err != nil {
			panic(err)
		}
	})
	st, err := store.OpenSQLite(filepath.Join(dir, "mandate.db"), testKey)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func newAS(t testing.TB, env *idpEnv, o asOptions) *testAS {
	t.Helper()
	if o.st == nil {
		o.st = openStore(t, t.TempDir())
	}
	if o.clk == nil {
		o.clk = &clock{t: time.Now()}
	}
	cfg := Config{Enabled: true, AccessTokenTTL: o.ttl, KeyRotation: o.rotation,
		Clients: []clients.ClientConfig{
			{ClientID: tClient, ClientName: "App", RedirectURIs: []string{tRedirect}},
			{ClientID: tClient2, ClientName: "Other", RedirectURIs: []string{tRedirect}, ClientSecret: "s3cret-other"},
		}}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	as := &testAS{st: o.st, clk: o.clk, env: env}
	s, err := New(context.Background(), cfg, Options{
		Issuer: tIssuer, Resource: tResource, IdPIssuer: env.idp.Issuer(), Auth: env.auth, Identity: env.cfg,
		Store: o.st, Now: o.clk.now,
		Audit: func(_ context.Context, r *audit.Record) {
			as.mu.Lock()
			as.audit = append(as.audit, *r)
			as.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	as.Server = s
	return as
}

func (a *testAS) methods() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var m []string
	for _, r := range a.audit {
		m = append(m, r.Method)
	}
	return m
}

// session signs username in at the IdP and creates its IdP session.
func (a *testAS) session(t testing.TB, username, refreshToken string, lifetime time.Duration) string {
	t.Helper()
	tok, claims, exp := a.env.login(t, username, lifetime)
	sid, err := a.sessions.create(context.Background(), SessionKindLogin, &oauth2.Token{AccessToken: tok, RefreshToken: refreshToken, Expiry: exp}, "", claims)
	if err != nil {
		t.Fatal(err)
	}
	return sid
}

const tVerifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-0123456789"

func s256(v string) string {
	h := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(h[:])
}

// code writes an authorization code row as the authorization endpoint
// does and returns the code and its family.
func (a *testAS) code(t testing.TB, sid, client string) (code, fam string) {
	t.Helper()
	code, fam = randomToken(32), randomToken(16)
	h := sha256.Sum256([]byte(code))
	if err := a.st.PutCode(context.Background(), store.Code{Hash: h[:], ClientID: client, SessionID: sid, RedirectURI: tRedirect,
		CodeChallenge: s256(tVerifier), Resource: tResource, Scope: "mcp", FamilyID: fam, ExpiresAt: a.clk.now().Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	return code, fam
}

type tokenReply struct {
	Status       int
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
	Header       http.Header
}

func (a *testAS) post(t testing.TB, h http.HandlerFunc, form url.Values, basic ...string) tokenReply {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if len(basic) == 2 {
		req.SetBasicAuth(basic[0], basic[1])
	}
	rec := httptest.NewRecorder()
	h(rec, req)
	var r tokenReply
	if rec.Body.Len() > 0 {
		if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
			t.Fatalf("reply is not JSON: %q", rec.Body.String())
		}
	}
	r.Status, r.Header = rec.Code, rec.Header()
	return r
}

func (a *testAS) token(t testing.TB, form url.Values, basic ...string) tokenReply {
	t.Helper()
	return a.post(t, a.handleToken, form, basic...)
}

func codeForm(code string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {tClient},
		"redirect_uri": {tRedirect}, "code_verifier": {tVerifier}, "resource": {tResource}}
}

// signIn runs the code grant for a new session of username.
func (a *testAS) signIn(t testing.TB, username string) (tokenReply, string) {
	t.Helper()
	sid := a.session(t, username, "", 24*time.Hour)
	code, _ := a.code(t, sid, tClient)
	r := a.token(t, codeForm(code))
	if r.Status != 200 || r.AccessToken == "" || r.RefreshToken == "" {
		t.Fatalf("code grant: %d %s: %s", r.Status, r.Error, r.Description)
	}
	return r, sid
}

func wantTokenError(t testing.TB, r tokenReply, status int, code, desc string) {
	t.Helper()
	if r.Status != status || r.Error != code || !strings.Contains(r.Description, desc) {
		t.Errorf("got %d %s %q, want %d %s containing %q", r.Status, r.Error, r.Description, status, code, desc)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

func (a *testAS) verify(t testing.TB, raw string) (ok bool, desc string) {
	t.Helper()
	id, ours, e := a.VerifyAccessToken(context.Background(), raw)
	if !ours {
		t.Fatalf("token not recognised as Mandate's")
	}
	if e != nil {
		if e.Status != http.StatusUnauthorized || e.Code != "invalid_token" {
			t.Errorf("error %d %s: %s", e.Status, e.Code, e.Description)
		}
		return false, e.Description
	}
	if id == nil || id.Subject == "" {
		t.Fatalf("no identity")
	}
	return true, ""
}
