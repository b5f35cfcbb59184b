package authserver

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/internal/identity"
)

// The browser sign-in API: Mandate's own pages outside the authorization
// endpoint (gateway/connect: the connect link, My connections) sign the
// user in at the IdP through Mandate exactly as a client's authorization
// does, and then come back to themselves instead of issuing a code.

// BrowserIdentity returns the user signed in to Mandate in this browser:
// the sign-in cookie opens and its IdP session is alive (refreshed if
// needed). false when nobody is signed in.
func (s *Server) BrowserIdentity(r *http.Request) (*identity.Identity, bool) {
	_, id := s.currentSignIn(r)
	return id, id != nil
}

// SignInThen signs the user in at the IdP through Mandate (the OIDC code
// flow of the authorization endpoint: PKCE, nonce, state sealed and bound
// to this browser) and then sends the browser to returnTo: a path (with
// query) on Mandate's own origin under its path prefix, never an absolute
// URL — anything else is refused with an error page (no open redirect).
// loginHint is passed to the IdP when non-empty.
func (s *Server) SignInThen(w http.ResponseWriter, r *http.Request, returnTo, loginHint string) {
	if !s.safeReturnTo(returnTo) {
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "Mandate signs you in only to return to one of its own pages.", "")
		return
	}
	d, err := s.login.provider(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable",
			"Mandate cannot reach your organisation's identity provider right now. Try again in a minute.", err.Error())
		return
	}
	browser := cookieValue(r, s.login.cookies.browser)
	if len(browser) < 32 {
		browser = randomString(32)
	}
	p := pendingSignIn{Verifier: randomString(32), Nonce: randomString(24), Browser: sha256B64(browser), ReturnTo: returnTo}
	sealed, err := s.login.seal.seal(sealPending, p, s.now().Add(pendingTTL))
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Mandate could not start the sign-in.", "")
		return
	}
	forward := url.Values{}
	if loginHint != "" {
		forward.Set("login_hint", loginHint)
	}
	s.login.cookies.set(w, s.login.cookies.browser, browser, pendingTTL)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, s.login.authCodeURL(d, sealed, p.Verifier, p.Nonce, forward), http.StatusFound)
}

// browserCallback finishes a SignInThen sign-in (handleCallback has opened
// the state and checked the browser binding).
func (s *Server) browserCallback(w http.ResponseWriter, r *http.Request, p pendingSignIn) {
	if e := r.URL.Query().Get("error"); e != "" {
		s.recordLogin(r, nil, "", audit.OutcomeDenied, "idp_"+safeClass(e), "the identity provider refused the sign-in: "+safeClass(e))
		s.errorPage(w, r, http.StatusForbidden, "Sign-in refused",
			"Your organisation's identity provider did not sign you in ("+safeClass(e)+").", "")
		return
	}
	if !s.safeReturnTo(p.ReturnTo) { // sealed by us: cannot happen
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "Mandate signs you in only to return to one of its own pages.", "")
		return
	}
	if _, _, ok := s.completeSignIn(w, r, p, ""); !ok {
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, s.origin()+p.ReturnTo, http.StatusFound)
}

// safeReturnTo accepts a path (and query) under Mandate's path prefix on
// its own origin: no scheme, no host, no "//" or "\" that a browser could
// read as another host, no control characters, no fragment.
func (s *Server) safeReturnTo(rt string) bool {
	if len(rt) == 0 || len(rt) > 2048 || rt[0] != '/' || strings.HasPrefix(rt, "//") || strings.ContainsAny(rt, "\\#") {
		return false
	}
	for i := 0; i < len(rt); i++ {
		if rt[i] <= ' ' || rt[i] == 0x7f {
			return false
		}
	}
	u, err := url.Parse(rt)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	prefix := ""
	if iu, err := url.Parse(s.opts.Issuer); err == nil {
		prefix = strings.TrimSuffix(iu.Path, "/")
	}
	return strings.HasPrefix(u.Path, prefix+"/") && !strings.Contains(u.Path, "/../") && !strings.HasSuffix(u.Path, "/..")
}

// BindBrowser returns a value that binds something a page round-trips
// (a sealed state) to this browser: the hash of Mandate's browser cookie,
// which it sets (for ttl) when absent. Check it with BrowserBound.
func (s *Server) BindBrowser(w http.ResponseWriter, r *http.Request, ttl time.Duration) string {
	browser := cookieValue(r, s.login.cookies.browser)
	if len(browser) < 32 {
		browser = randomString(32)
	}
	if ttl < pendingTTL {
		ttl = pendingTTL
	}
	s.login.cookies.set(w, s.login.cookies.browser, browser, ttl)
	return sha256B64(browser)
}

// BrowserBound reports whether binding (from BindBrowser) is this
// browser's.
func (s *Server) BrowserBound(r *http.Request, binding string) bool {
	browser := cookieValue(r, s.login.cookies.browser)
	return browser != "" && binding != "" && subtle.ConstantTimeCompare([]byte(sha256B64(browser)), []byte(binding)) == 1
}

// CSRFToken is a form's CSRF token for purpose, bound to this browser's
// sign-in cookie ("" when there is none). Check it with CheckCSRF.
func (s *Server) CSRFToken(r *http.Request, purpose string) string {
	v := cookieValue(r, s.login.cookies.signIn)
	if v == "" {
		return ""
	}
	return s.login.seal.mac("mandate/page-csrf/"+purpose, v)
}

// CheckCSRF reports whether token is CSRFToken(r, purpose).
func (s *Server) CheckCSRF(r *http.Request, purpose, token string) bool {
	want := s.CSRFToken(r, purpose)
	return want != "" && token != "" && subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}

// SameOriginPost refuses form posts from other sites (Sec-Fetch-Site,
// Origin), as the consent form does.
func (s *Server) SameOriginPost(r *http.Request) bool { return s.sameOriginPost(r) }

// WritePage writes one of Mandate's pages (the consent page's chrome and
// security headers: no script, CSP with form-action formTargets or 'none',
// never framed, never cached, no referrer) with body as its content.
func WritePage(w http.ResponseWriter, status int, title string, body template.HTML, formTargets ...string) {
	renderPage(w, status, pageData{Title: title, Body: body}, formTargets...)
}

// WriteMessage writes a page that says one thing (an error, a result):
// a title, a sentence and an optional hint.
func WriteMessage(w http.ResponseWriter, status int, title, message, hint string) {
	renderPage(w, status, pageData{Title: title, Message: message, Hint: hint})
}

// Sealer seals what Mandate's pages round-trip through browsers and other
// servers (AES-256-GCM, a purpose as associated data, an expiry), as the
// authorization server does for its own state. Safe for concurrent use.
type Sealer struct{ s *sealer }

// ErrSealExpired is returned by Sealer.Open for a value past its expiry;
// any other error means altered, foreign or malformed.
var ErrSealExpired = errSealExpired

// NewSealer builds a Sealer under key (32 bytes).
func NewSealer(key []byte) (*Sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("sealer: key must be 32 bytes")
	}
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	return &Sealer{s}, nil
}

// Seal seals v (JSON) for purpose until exp.
func (s *Sealer) Seal(purpose string, v any, exp time.Time) (string, error) {
	return s.s.seal(purpose, v, exp)
}

// Open opens what Seal sealed for the same purpose into v.
func (s *Sealer) Open(purpose, sealed string, now time.Time, v any) error {
	return s.s.open(purpose, sealed, now, v)
}
