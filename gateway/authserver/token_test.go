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

// TestIdPRefusalEndsRefresh: the user's IdP access token is about to
// expire and the IdP refuses its refresh token (the real dev IdP answers
// invalid_grant to every refresh: it issues none) — the client's refresh
// fails and the family is revoked.
func TestIdPRefusalEndsRefresh(t *testing.T) {
	env := startIdP(t)
	a := newAS(t, env, asOptions{})
	a.sessions.refresh = func(ctx context.Context, rt string) (*oauth2.Token, error) {
		conf := oauth2.Config{ClientID: "mandate", ClientSecret: "mandate-secret", Endpoint: oauth2.Endpoint{TokenURL: env.idp.TokenURL(), AuthStyle: oauth2.AuthStyleInHeader}}
		tok, err := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: rt}).Token()
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			return nil, fmt.Errorf("%w: %s", ErrSessionEnded, re.ErrorDescription)
		}
		return tok, err
	}
	sid := a.session(t, "alice", "idp-refresh-token", 10*time.Minute)
	code, _ := a.code(t, sid, tClient)
	r := a.token(t, codeForm(code))
	if r.Status != 200 {
		t.Fatal(r.Description)
	}
	a.clk.add(9*time.Minute + 30*time.Second) // IdP token within a minute of expiry
	rf := a.token(t, refreshForm(r.RefreshToken))
	wantTokenError(t, rf, 400, "invalid_grant", "sign-in at the identity provider has ended")
	row, err := a.st.GetIdPSession(context.Background(), sid)
	if err != nil || !row.Revoked {
		t.Errorf("session revoked=%v err=%v", row.Revoked, err)
	}
	if ok, _ := a.verify(t, r.AccessToken); ok {
		t.Error("the access token of an ended sign-in still verifies")
	}
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
