package authserver_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/gateway/authserver"
)

func TestBrowserSignInThen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	// A page of Mandate's (as gateway/connect's): who is signed in, or
	// sign in and come back here.
	page := httptestHandler(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := e.as.BrowserIdentity(r); ok {
			authserver.WriteMessage(w, http.StatusOK, "Signed in", "subject="+id.Subject, "")
			return
		}
		e.as.SignInThen(w, r, r.URL.Query().Get("rt"), r.URL.Query().Get("hint"))
	})
	mux := e.srv.Config.Handler.(*http.ServeMux)
	mux.Handle("GET /mypage", page)

	// Not signed in: the page sends the browser to the IdP with the hint.
	r := e.get(e.issuer + "/mypage?rt=%2Fmypage%3Fx%3D1&hint=rita")
	if r.status != http.StatusFound || r.loc == nil || !strings.HasPrefix(r.loc.String(), e.idp.Issuer()) {
		t.Fatalf("not signed in: %d %v, want a redirect to the IdP", r.status, r.loc)
	}
	if r.loc.Query().Get("login_hint") != "rita" {
		t.Errorf("login_hint = %q", r.loc.Query().Get("login_hint"))
	}
	cb := e.signInAtIdP(r.loc, "rita")
	r = e.get(cb.String())
	if r.status != http.StatusFound || r.loc == nil || r.loc.String() != e.issuer+"/mypage?x=1" {
		t.Fatalf("callback: %d %v %s, want a redirect to %s", r.status, r.loc, truncateBody(r.body), e.issuer+"/mypage?x=1")
	}
	if r.header.Get("Cache-Control") != "no-store" {
		t.Errorf("callback Cache-Control = %q", r.header.Get("Cache-Control"))
	}
	r = e.get(r.loc.String())
	if r.status != http.StatusOK || !strings.Contains(r.body, "subject=idp-0001") {
		t.Fatalf("back on the page: %d %s, want rita signed in", r.status, truncateBody(r.body))
	}
	// The sign-in is an oauth/login record without a client.
	found := false
	e.mu.Lock()
	for _, a := range e.audits {
		if a.Method == "oauth/login" && a.Outcome == "ok" && a.User.Subject == "idp-0001" && a.OAuthClient == "" {
			found = true
		}
	}
	e.mu.Unlock()
	if !found {
		t.Error("no oauth/login record of the browser sign-in")
	}

	// Another browser is not signed in.
	other := newBrowser(t)
	r = e.do(other, http.MethodGet, e.issuer+"/mypage?rt=/mypage", nil, nil)
	if r.status != http.StatusFound {
		t.Fatalf("other browser: %d, want the IdP redirect", r.status)
	}
}

func TestBrowserSignInThenRefusesOtherOrigins(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	mux := e.srv.Config.Handler.(*http.ServeMux)
	mux.Handle("GET /signin", httptestHandler(func(w http.ResponseWriter, r *http.Request) {
		e.as.SignInThen(w, r, r.URL.Query().Get("rt"), "")
	}))
	for _, rt := range []string{
		"https://evil.example/x", "//evil.example/x", "/\\evil.example", "\\\\evil.example",
		"http:/evil.example", "evil.example", "", "/ok#frag", "/a\r\nLocation: x", "javascript:alert(1)",
		"/ok/../../x/..",
	} {
		q := "rt=" + url.QueryEscape(rt)
		r := e.get(e.issuer + "/signin?" + q)
		if r.loc != nil || r.status != http.StatusBadRequest {
			t.Errorf("returnTo %q: %d (location %v), want a 400 page", rt, r.status, r.loc)
		}
	}
}

type httptestHandler func(http.ResponseWriter, *http.Request)

func (h httptestHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h(w, r) }
