package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/store"
)

func TestCodeGrantBadInput(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	sid := a.session(t, "alice", "", 24*time.Hour)
	set := func(k, v string) func(url.Values) { return func(f url.Values) { f.Set(k, v) } }
	del := func(k string) func(url.Values) { return func(f url.Values) { f.Del(k) } }
	cases := []struct {
		name   string
		client string
		edit   func(url.Values)
		basic  []string
		status int
		code   string
		desc   string
	}{
		{"missing verifier", tClient, del("code_verifier"), nil, 400, "invalid_grant", "code_verifier is required"},
		{"wrong verifier", tClient, set("code_verifier", strings.Repeat("x", 50)), nil, 400, "invalid_grant", "does not match the code challenge"},
		{"short verifier", tClient, set("code_verifier", "abc"), nil, 400, "invalid_grant", "43 to 128"},
		{"plain method (verifier = challenge)", tClient, set("code_verifier", s256(tVerifier)), nil, 400, "invalid_grant", "does not match the code challenge"},
		{"redirect mismatch", tClient, set("redirect_uri", "http://127.0.0.1:7777/other"), nil, 400, "invalid_grant", "redirect_uri does not match"},
		{"redirect missing", tClient, del("redirect_uri"), nil, 400, "invalid_grant", "redirect_uri does not match"},
		{"resource mismatch", tClient, set("resource", "https://evil.example/mcp"), nil, 400, "invalid_target", "is not served here"},
		{"wrong client", tClient, func(f url.Values) { f.Del("client_id") }, []string{tClient2, "s3cret-other"}, 400, "invalid_grant", "issued to another client"},
		{"unknown code", "", set("code", "nope"), nil, 400, "invalid_grant", "invalid or expired"},
		{"missing code", "", del("code"), nil, 400, "invalid_request", "code is required"},
		{"bad client secret", "", func(f url.Values) { f.Del("client_id") }, []string{tClient2, "wrong"}, 401, "invalid_client", ""},
		{"unknown grant", "", set("grant_type", "password"), nil, 400, "unsupported_grant_type", `"password"`},
		{"jwt-bearer disabled", "", set("grant_type", GrantJWTBearer), nil, 400, "unsupported_grant_type", "not enabled"},
		{"repeated parameter", "", func(f url.Values) { f.Add("code", "x") }, nil, 400, "invalid_request", "repeated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code := "unused"
			if c.client != "" {
				code, _ = a.code(t, sid, c.client)
			}
			f := codeForm(code)
			c.edit(f)
			r := a.token(t, f, c.basic...)
			wantTokenError(t, r, c.status, c.code, c.desc)
			if c.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("no Basic challenge: %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// Confidential client, correct secret: the wrong-client code is its own now.
	code, _ := a.code(t, sid, tClient2)
	f := codeForm(code)
	f.Del("client_id")
	if r := a.token(t, f, tClient2, "s3cret-other"); r.Status != 200 {
		t.Errorf("confidential client: %d %s", r.Status, r.Description)
	}
	// A resource-less request is fine (the code is bound to the resource).
	code, _ = a.code(t, sid, tClient)
	f = codeForm(code)
	f.Del("resource")
	if r := a.token(t, f); r.Status != 200 {
		t.Errorf("without resource: %d %s", r.Status, r.Description)
	}
	// Not a form.
	r := a.post(t, func(w http.ResponseWriter, req *http.Request) {
		req.Header.Set("Content-Type", "application/json")
		a.handleToken(w, req)
	}, codeForm("x"))
	wantTokenError(t, r, 400, "invalid_request", "x-www-form-urlencoded")
}

func TestCodeReuseRevokesWhatItIssued(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	sid := a.session(t, "alice", "", 24*time.Hour)
	code, _ := a.code(t, sid, tClient)
	r := a.token(t, codeForm(code))
	if r.Status != 200 {
		t.Fatal(r.Description)
	}
	if ok, desc := a.verify(t, r.AccessToken); !ok {
		t.Fatal(desc)
	}
	r2 := a.token(t, codeForm(code))
	wantTokenError(t, r2, 400, "invalid_grant", "already used")
	if ok, desc := a.verify(t, r.AccessToken); ok || desc != "token has been revoked" {
		t.Errorf("access token of a replayed code: ok=%v %q", ok, desc)
	}
	rf := a.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.RefreshToken}, "client_id": {tClient}})
	wantTokenError(t, rf, 400, "invalid_grant", "revoked")
	if m := a.methods(); !slices.Contains(m, audit.MethodOAuthCodeReuse) || !slices.Contains(m, audit.MethodOAuthToken) {
		t.Errorf("audit methods %v", m)
	}
}

func refreshForm(rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {tClient}}
}

func TestRefreshRotationAndReplay(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	r, _ := a.signIn(t, "alice")
	r2 := a.token(t, refreshForm(r.RefreshToken))
	if r2.Status != 200 || r2.RefreshToken == "" || r2.RefreshToken == r.RefreshToken || r2.Scope != "mcp" {
		t.Fatalf("refresh: %+v", r2)
	}
	if ok, desc := a.verify(t, r2.AccessToken); !ok {
		t.Fatal(desc)
	}
	// Bad input that must not burn the token.
	f := refreshForm(r2.RefreshToken)
	f.Set("scope", "mcp admin")
	wantTokenError(t, a.token(t, f), 400, "invalid_scope", `"admin"`)
	f = refreshForm(r2.RefreshToken)
	f.Set("resource", "https://evil.example/mcp")
	wantTokenError(t, a.token(t, f), 400, "invalid_target", "not served here")
	f = refreshForm(r2.RefreshToken)
	f.Del("client_id")
	wantTokenError(t, a.token(t, f, tClient2, "s3cret-other"), 400, "invalid_grant", "another client")
	// Narrowing is fine (here: the same single scope).
	f = refreshForm(r2.RefreshToken)
	f.Set("scope", "mcp")
	r3 := a.token(t, f)
	if r3.Status != 200 {
		t.Fatalf("refresh with scope: %d %s", r3.Status, r3.Description)
	}
	// Replaying an old refresh token revokes the family: the newest tokens stop working.
	wantTokenError(t, a.token(t, refreshForm(r.RefreshToken)), 400, "invalid_grant", "already used")
	if ok, desc := a.verify(t, r3.AccessToken); ok || desc != "token has been revoked" {
		t.Errorf("newest access token after replay: ok=%v %q", ok, desc)
	}
	wantTokenError(t, a.token(t, refreshForm(r3.RefreshToken)), 400, "invalid_grant", "")
	if m := a.methods(); !slices.Contains(m, audit.MethodOAuthRefreshReuse) || !slices.Contains(m, audit.MethodOAuthRefresh) {
		t.Errorf("audit methods %v", m)
	}
}

// TestIdPRefusalEndsRefresh: alice signed in at the real dev IdP (a
// rotating refresh token); Mandate refreshes her IdP tokens when they are
// about to expire; after the IdP ends her sessions (as for a disabled
// user) it refuses the refresh, and the client's refresh fails too: the
// family is revoked and the session ended.
func TestIdPRefusalEndsRefresh(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	a.sessions.refresh = env.idpRefresh
	ctx := context.Background()
	newSession := func() (string, tokenReply) {
		tok := env.browserLogin(t, "alice")
		if tok.RefreshToken == "" {
			t.Fatal("the IdP issued no refresh token")
		}
		id, e := env.auth.Authenticate(ctx, []string{"Bearer " + tok.AccessToken})
		if e != nil {
			t.Fatal(e)
		}
		sid, err := a.sessions.create(ctx, SessionKindLogin, tok, "", id.Claims)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := a.code(t, sid, tClient)
		r := a.token(t, codeForm(code))
		if r.Status != 200 {
			t.Fatal(r.Description)
		}
		return sid, r
	}
	// 1. The IdP refreshes: new IdP tokens, the client's refresh works.
	sid, r := newSession()
	before, _ := a.sessions.identity(ctx, sid)
	a.clk.set(before.Expiry.Add(-30 * time.Second)) // within a minute of the IdP token's expiry
	r2 := a.token(t, refreshForm(r.RefreshToken))
	if r2.Status != 200 {
		t.Fatalf("refresh while the IdP session lives: %d %s", r2.Status, r2.Description)
	}
	after, _ := a.sessions.identity(ctx, sid)
	if after.RawToken() == before.RawToken() {
		t.Error("the IdP tokens were not refreshed")
	}
	// 2. The IdP ends alice's sessions: the next refresh is refused.
	if n := env.idp.EndSessions("alice"); n == 0 {
		t.Fatal("EndSessions revoked nothing")
	}
	a.clk.set(after.Expiry.Add(-30 * time.Second))
	rf := a.token(t, refreshForm(r2.RefreshToken))
	wantTokenError(t, rf, 400, "invalid_grant", "sign-in at the identity provider has ended")
	if _, err := a.st.GetIdPSession(ctx, sid); !errors.Is(err, store.ErrRevoked) {
		t.Errorf("session: err=%v, want store.ErrRevoked", err)
	}
	if ok, _ := a.verify(t, r2.AccessToken); ok {
		t.Error("the access token of an ended sign-in still verifies")
	}
	if rev, _ := a.st.FamilyRevoked(ctx, mustFam(t, a, r2.AccessToken)); !rev {
		t.Error("the family of an ended sign-in is not revoked")
	}
}

func mustFam(t *testing.T, a *testAS, at string) string {
	c, ok := a.parseOwnAccessToken(at)
	if !ok {
		t.Fatal("cannot parse own access token")
	}
	return c.Fam
}

// TestIdPRefreshRotatesSessionTokens: a successful IdP refresh (a new
// real IdP token) replaces the session's tokens; the identity carries the
// new IdP token as the subject token.
func TestIdPRefreshRotatesSessionTokens(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	var calls int
	a.sessions.refresh = func(ctx context.Context, rt string) (*oauth2.Token, error) {
		calls++
		if rt != "rt-1" {
			return nil, fmt.Errorf("%w: unknown refresh token", ErrSessionEnded)
		}
		tok, _, exp := env.login(t, "alice", time.Hour)
		return &oauth2.Token{AccessToken: tok, RefreshToken: "rt-2", Expiry: exp}, nil
	}
	sid := a.session(t, "alice", "rt-1", 10*time.Minute)
	before, err := a.sessions.identity(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	a.clk.add(9*time.Minute + 30*time.Second)
	after, err := a.sessions.identity(context.Background(), sid)
	if err != nil {
		t.Fatal(err)
	}
	if calls != 1 || after.RawToken() == before.RawToken() || after.Subject != before.Subject {
		t.Errorf("calls=%d new raw token=%v", calls, after.RawToken() != before.RawToken())
	}
	row, _ := a.st.GetIdPSession(context.Background(), sid)
	if row.RefreshToken != "rt-2" || row.AccessToken != after.RawToken() {
		t.Errorf("stored session not rotated")
	}
	// A replica (cold cache) reads the rotated tokens from the store.
	a.sessions.cache.Purge()
	again, err := a.sessions.identity(context.Background(), sid)
	if err != nil || again.RawToken() != after.RawToken() || calls != 1 {
		t.Errorf("reloaded: err=%v calls=%d", err, calls)
	}
}
