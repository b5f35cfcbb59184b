package authserver

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

// authzRequest is a validated authorization request of a client: what the
// sign-in carries (sealed) from the authorization endpoint through the IdP
// and the consent page to the code.
type authzRequest struct {
	ClientID      string `json:"cid"`
	RedirectURI   string `json:"ru"`
	State         string `json:"st,omitempty"`
	CodeChallenge string `json:"cc"`
	Resource      string `json:"res"`
	Scope         string `json:"sc"`
	// Prompt is the client's prompt parameter (login, consent,
	// select_account, none).
	Prompt string `json:"pr,omitempty"`
}

// pendingSignIn is the IdP state parameter, sealed: the client's request,
// this sign-in's PKCE verifier and nonce at the IdP, and the hash of the
// browser cookie it is bound to (so the callback cannot be replayed in
// another browser: no login CSRF).
type pendingSignIn struct {
	Req      authzRequest `json:"req"`
	Verifier string       `json:"v"`
	Nonce    string       `json:"n"`
	Browser  string       `json:"b"`
	// ReturnTo, when set, makes this a browser sign-in (SignInThen): the
	// callback sends the browser back to this path on Mandate's origin
	// instead of issuing a code to a client (Req is then empty).
	ReturnTo string `json:"rt,omitempty"`
}

// signInCookie is the sign-in cookie's sealed content.
type signInCookie struct {
	SID     string `json:"sid"`
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
}

// oauthError is an error sent back to the client's redirect URI.
type oauthError struct {
	Code, Description string
}

// handleAuthorize is the authorization endpoint (GET or POST form).
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	}
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Bad authorization request", "The request's parameters could not be read.", "")
		return
	}
	form := r.Form
	if r.Method == http.MethodPost {
		form = r.PostForm
	}
	// Until the client and its redirect URI are known to belong together,
	// every error is a page at Mandate: redirecting would make Mandate an
	// open redirector.
	one := func(k string) (string, bool) {
		v := form[k]
		if len(v) > 1 {
			return "", false
		}
		if len(v) == 0 {
			return "", true
		}
		return v[0], true
	}
	clientID, ok := one("client_id")
	if !ok || clientID == "" {
		s.errorPage(w, r, http.StatusBadRequest, "Bad authorization request", "The application sent no client_id (or several).", "")
		return
	}
	client, cerr := s.clients.Resolve(r.Context(), clientID)
	if cerr != nil {
		status := cerr.Status
		if status < 400 || status > 599 {
			status = http.StatusBadRequest
		}
		s.errorPage(w, r, status, "Unknown application", "Mandate cannot sign you in to this application: "+cerr.Description+" ("+cerr.Code+").", "")
		return
	}
	redirectURI, ok := one("redirect_uri")
	if !ok || redirectURI == "" {
		s.errorPage(w, r, http.StatusBadRequest, "Bad authorization request", "The application sent no redirect_uri (or several).", "")
		return
	}
	if !client.RedirectAllowed(redirectURI) {
		s.errorPage(w, r, http.StatusBadRequest, "Redirect address not registered",
			"The application asked Mandate to send you to an address it did not register, so Mandate stops here.",
			"redirect_uri: "+truncate(redirectURI, 200))
		return
	}
	state, stateOK := one("state")
	req := authzRequest{ClientID: client.ID, RedirectURI: redirectURI, State: state}
	fail := func(code, desc string) {
		s.redirectError(w, r, req, oauthError{code, desc})
	}
	// From here on errors go back to the client.
	for _, k := range []string{"response_type", "response_mode", "code_challenge", "code_challenge_method", "resource", "scope", "prompt", "login_hint", "nonce"} {
		if len(form[k]) > 1 {
			if k == "resource" {
				fail("invalid_target", "only one resource is allowed")
				return
			}
			fail("invalid_request", "parameter "+k+" is repeated")
			return
		}
	}
	if !stateOK {
		fail("invalid_request", "parameter state is repeated")
		return
	}
	if form.Get("request") != "" || form.Get("request_uri") != "" {
		fail("request_not_supported", "request objects are not supported")
		return
	}
	if rt := form.Get("response_type"); rt != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	if rm := form.Get("response_mode"); rm != "" && rm != "query" {
		fail("invalid_request", "response_mode must be query")
		return
	}
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail("invalid_request", "code_challenge is required (PKCE with S256)")
		return
	case method != "S256":
		fail("invalid_request", "code_challenge_method must be S256")
		return
	case !validChallenge(challenge):
		fail("invalid_request", "code_challenge is not a base64url SHA-256 value (43 characters)")
		return
	}
	req.CodeChallenge = challenge
	resource := form.Get("resource")
	switch {
	case resource == "":
		req.Resource = s.opts.Resource
	case sameResource(resource, s.opts.Resource):
		req.Resource = s.opts.Resource
	default:
		fail("invalid_target", "resource must be "+s.opts.Resource)
		return
	}
	scope, oe := s.grantScope(form.Get("scope"))
	if oe != nil {
		fail(oe.Code, oe.Description)
		return
	}
	req.Scope = scope
	prompt := form.Get("prompt")
	for _, p := range strings.Fields(prompt) {
		if !slices.Contains([]string{"none", "login", "consent", "select_account"}, p) {
			fail("invalid_request", "prompt "+p+" is not supported")
			return
		}
	}
	if slices.Contains(strings.Fields(prompt), "none") && len(strings.Fields(prompt)) > 1 {
		fail("invalid_request", "prompt none cannot be combined")
		return
	}
	req.Prompt = prompt
	loginHint := form.Get("login_hint")

	// Single sign-on: a live Mandate sign-in in this browser skips the IdP,
	// unless the client asked to sign in again or named someone else.
	forceLogin := hasPrompt(prompt, "login") || hasPrompt(prompt, "select_account")
	if !forceLogin {
		if sid, id := s.currentSignIn(r); id != nil && (loginHint == "" || hintMatches(loginHint, id)) {
			s.afterSignIn(w, r, client, req, sid, id)
			return
		}
	}
	if hasPrompt(prompt, "none") {
		fail("login_required", "the user is not signed in to Mandate")
		return
	}
	d, err := s.login.provider(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable",
			"Mandate cannot reach your organisation's identity provider right now. Try again in a minute.",
			err.Error())
		return
	}
	browser := cookieValue(r, s.login.cookies.browser)
	if len(browser) < 32 {
		browser = randomString(32)
	}
	p := pendingSignIn{Req: req, Verifier: randomString(32), Nonce: randomString(24), Browser: sha256B64(browser)}
	sealed, err := s.login.seal.seal(sealPending, p, s.now().Add(pendingTTL))
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Mandate could not start the sign-in.", "")
		return
	}
	forward := url.Values{}
	if loginHint != "" {
		forward.Set("login_hint", loginHint)
	}
	var fp []string
	for _, p := range strings.Fields(prompt) {
		if p == "login" || p == "select_account" {
			fp = append(fp, p)
		}
	}
	if len(fp) > 0 {
		forward.Set("prompt", strings.Join(fp, " "))
	}
	s.login.cookies.set(w, s.login.cookies.browser, browser, pendingTTL)
	http.Redirect(w, r, s.login.authCodeURL(d, sealed, p.Verifier, p.Nonce, forward), http.StatusFound)
}

// grantScope checks a requested scope against Scopes(): empty means all of
// them; offline_access is tolerated and dropped (refresh tokens come with
// every grant); anything else unknown is invalid_scope. The result lists
// the granted scopes in Scopes() order.
func (s *Server) grantScope(requested string) (string, *oauthError) {
	supported := s.Scopes()
	fields := strings.Fields(requested)
	if len(fields) == 0 {
		return strings.Join(supported, " "), nil
	}
	for _, f := range fields {
		if f != "offline_access" && !slices.Contains(supported, f) {
			return "", &oauthError{"invalid_scope", "scope " + truncate(f, 64) + " is not offered; scopes_supported: " + strings.Join(supported, " ")}
		}
	}
	var granted []string
	for _, sc := range supported {
		if slices.Contains(fields, sc) {
			granted = append(granted, sc)
		}
	}
	if len(granted) == 0 {
		return "", &oauthError{"invalid_scope", "no scope Mandate offers was requested; scopes_supported: " + strings.Join(supported, " ")}
	}
	return strings.Join(granted, " "), nil
}

// scopeCovers reports whether every scope of want is in have.
func scopeCovers(have, want string) bool {
	h := strings.Fields(have)
	for _, w := range strings.Fields(want) {
		if !slices.Contains(h, w) {
			return false
		}
	}
	return true
}

func hasPrompt(prompt, p string) bool { return slices.Contains(strings.Fields(prompt), p) }

// hintMatches reports whether a login_hint names the signed-in user (its
// subject, email or preferred_username).
func hintMatches(hint string, id *identity.Identity) bool {
	if strings.EqualFold(hint, id.Subject) || (id.Email != "" && strings.EqualFold(hint, id.Email)) {
		return true
	}
	pu, _ := id.Claims["preferred_username"].(string)
	return pu != "" && strings.EqualFold(hint, pu)
}

// validChallenge: an S256 challenge is 43 base64url characters.
func validChallenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	for i := 0; i < len(c); i++ {
		b := c[i]
		if !(b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-' || b == '_') {
			return false
		}
	}
	return true
}

// sameResource compares resource indicators exactly, tolerating one
// trailing slash on either side (RFC 8707 clients SHOULD drop it; the MCP
// TypeScript SDK sends the protected resource metadata's value verbatim).
func sameResource(a, b string) bool {
	return a == b || strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// currentSignIn returns the browser's live Mandate sign-in (sign-in
// cookie opened, its IdP session alive), or "", nil.
func (s *Server) currentSignIn(r *http.Request) (string, *identity.Identity) {
	v := cookieValue(r, s.login.cookies.signIn)
	if v == "" {
		return "", nil
	}
	var c signInCookie
	if err := s.login.seal.open(sealSignIn, v, s.now(), &c); err != nil {
		return "", nil
	}
	id, err := s.sessions.identity(r.Context(), c.SID)
	if err != nil || id == nil || id.Issuer != c.Issuer || id.Subject != c.Subject {
		return "", nil
	}
	return c.SID, id
}

// redirectTo sends the browser to the client's redirect URI with params
// (and iss, RFC 9207). Only called with a redirect URI the client
// registered.
func (s *Server) redirectTo(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil { // cannot happen: RedirectAllowed accepted it
		s.errorPage(w, r, http.StatusBadRequest, "Bad redirect address", "The application's redirect address cannot be used.", "")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	q.Set("iss", s.opts.Issuer)
	u.RawQuery = q.Encode()
	u.Fragment = ""
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, u.String(), status)
}

// redirectError sends an OAuth error to the client (error,
// error_description, state, iss).
func (s *Server) redirectError(w http.ResponseWriter, r *http.Request, req authzRequest, e oauthError) {
	s.log.InfoContext(r.Context(), "authorization request refused", "client_id", req.ClientID, "error", e.Code, "error_description", e.Description)
	p := url.Values{"error": {e.Code}}
	if e.Description != "" {
		p.Set("error_description", e.Description)
	}
	if req.State != "" {
		p.Set("state", req.State)
	}
	s.redirectTo(w, r, req.RedirectURI, p)
}

// handleCallback is the IdP's redirect back to Mandate.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var p pendingSignIn
	switch err := s.login.seal.open(sealPending, q.Get("state"), s.now(), &p); {
	case errors.Is(err, errSealExpired):
		s.errorPage(w, r, http.StatusBadRequest, "Sign-in expired", "This sign-in took too long. Go back to the application and start again.", "")
		return
	case err != nil:
		s.errorPage(w, r, http.StatusBadRequest, "Bad sign-in response", "The identity provider's answer does not belong to a sign-in Mandate started (its state is missing or altered).", "")
		return
	}
	browser := cookieValue(r, s.login.cookies.browser)
	if browser == "" || sha256B64(browser) != p.Browser {
		s.errorPage(w, r, http.StatusBadRequest, "Sign-in started elsewhere",
			"This sign-in was not started in this browser (its cookie is missing), so Mandate stops here. Start again from the application.",
			"Mandate needs cookies for its own address during sign-in.")
		return
	}
	if p.ReturnTo != "" {
		s.browserCallback(w, r, p)
		return
	}
	req := p.Req
	client, cerr := s.clients.Resolve(r.Context(), req.ClientID)
	if cerr != nil || !client.RedirectAllowed(req.RedirectURI) {
		msg := "the application is no longer registered"
		if cerr != nil {
			msg = cerr.Description
		}
		s.errorPage(w, r, http.StatusBadRequest, "Unknown application", "Mandate cannot finish this sign-in: "+msg+".", "")
		return
	}
	if e := q.Get("error"); e != "" {
		s.log.InfoContext(r.Context(), "identity provider refused the sign-in", "client_id", req.ClientID, "idp_error", e, "idp_error_description", truncate(q.Get("error_description"), 300))
		if idpRequestError(e) {
			// Mandate's own request to the IdP is wrong (its registration
			// or authorization_server.idp, e.g. a resource parameter Entra
			// ID v2 refuses with AADSTS901002): neither the user nor the
			// client can fix it, and "access denied" would mislead them.
			// The page says what the IdP said and what to check.
			desc := idpErrorLine(q.Get("error_description"))
			s.recordLogin(r, nil, req.ClientID, audit.OutcomeError, "idp_"+safeClass(e), "the identity provider refused Mandate's sign-in request: "+safeClass(e))
			msg := "Your organisation's identity provider refused Mandate's sign-in request (" + safeClass(e)
			if desc != "" {
				msg += ": " + desc
			}
			s.errorPage(w, r, http.StatusBadGateway, "Sign-in failed", msg+"). This is a configuration problem; tell your administrator.",
				"Administrators: check authorization_server.idp (client_id, scopes, resource, extra_params) against Mandate's registration at the identity provider. For Entra ID, leave idp.resource empty and name the API with api://<application id>/.default in idp.scopes.")
			return
		}
		code := "access_denied"
		switch e {
		case "server_error":
			code = "server_error"
		case "temporarily_unavailable":
			code = "temporarily_unavailable"
		}
		s.recordLogin(r, nil, req.ClientID, audit.OutcomeDenied, "idp_"+safeClass(e), "the identity provider refused the sign-in: "+safeClass(e))
		s.redirectError(w, r, req, oauthError{code, "the identity provider refused the sign-in (" + safeClass(e) + ")"})
		return
	}
	sid, id, ok := s.completeSignIn(w, r, p, req.ClientID)
	if !ok {
		return
	}
	s.afterSignIn(w, r, client, req, sid, id)
}

// completeSignIn is the IdP callback's common part (a client's
// authorization and a browser sign-in, SignInThen): it redeems the IdP's
// code, checks its access token as the gateway checks IdP tokens, stores
// the IdP session and sets the sign-in cookie. On failure it has written
// an error page and ok is false.
func (s *Server) completeSignIn(w http.ResponseWriter, r *http.Request, p pendingSignIn, clientID string) (sid string, id *identity.Identity, ok bool) {
	q := r.URL.Query()
	code := q.Get("code")
	if code == "" {
		s.errorPage(w, r, http.StatusBadRequest, "Bad sign-in response", "The identity provider's answer carries no code.", "")
		return "", nil, false
	}
	d, err := s.login.provider(r.Context())
	if err != nil {
		s.errorPage(w, r, http.StatusServiceUnavailable, "Sign-in is unavailable", "Mandate cannot reach your organisation's identity provider right now. Try again in a minute.", err.Error())
		return "", nil, false
	}
	tok, idt, rawID, err := s.login.exchange(r.Context(), d, code, p.Verifier, p.Nonce)
	if err != nil {
		s.recordLogin(r, nil, clientID, audit.OutcomeError, "idp_exchange", err.Error())
		s.errorPage(w, r, http.StatusBadGateway, "Sign-in failed", "Mandate could not complete the sign-in at your identity provider.", err.Error())
		return "", nil, false
	}
	// The IdP access token must pass exactly the checks a token a client
	// presents passes: identity is built the same way.
	if s.opts.Auth == nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Mandate has no identity verifier configured.", "")
		return "", nil, false
	}
	var aerr *authn.Error
	id, aerr = s.opts.Auth.Authenticate(r.Context(), []string{"Bearer " + tok.AccessToken})
	if aerr != nil {
		s.recordLogin(r, nil, clientID, audit.OutcomeUnauthenticated, "idp_token_rejected", aerr.Error())
		s.errorPage(w, r, http.StatusForbidden, "Sign-in not accepted",
			"You signed in, but the access token your identity provider issued to Mandate does not pass Mandate's checks: "+aerr.Description+".",
			"Administrators: the token must be issued for identity.audience (for Entra ID, request api://<app>/.default in authorization_server.idp.scopes) and carry identity.required_scopes.")
		return "", nil, false
	}
	if sc := s.subjectClaim(); sc == "sub" && idt.Subject != id.Subject {
		s.recordLogin(r, id, clientID, audit.OutcomeUnauthenticated, "idp_subject_mismatch", "ID token and access token name different users")
		s.errorPage(w, r, http.StatusForbidden, "Sign-in not accepted", "The identity provider's ID token and access token name different users.", "")
		return "", nil, false
	}
	sid, err = s.sessions.create(r.Context(), SessionKindLogin, tok, rawID, id.Claims)
	if err != nil {
		s.log.ErrorContext(r.Context(), "storing the IdP session failed", "error", err)
		s.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Mandate could not save your sign-in. Try again.", "")
		return "", nil, false
	}
	if sealed, err := s.login.seal.seal(sealSignIn, signInCookie{SID: sid, Issuer: id.Issuer, Subject: id.Subject}, s.now().Add(signInTTL)); err == nil {
		s.login.cookies.set(w, s.login.cookies.signIn, sealed, signInTTL)
	}
	s.recordLogin(r, id, clientID, audit.OutcomeOK, "", "")
	return sid, id, true
}

// subjectClaim is identity.claims.subject (default sub).
func (s *Server) subjectClaim() string {
	sc := s.opts.Auth.Config().Claims.Subject
	if sc == "" {
		sc = "sub"
	}
	return sc
}

// idpRequestError reports whether an IdP's authorization error means that
// Mandate's request to it is wrong (RFC 6749 §4.1.2.1, RFC 8707's
// invalid_target, Entra ID's invalid_resource) rather than a refusal by or
// for the user.
func idpRequestError(code string) bool {
	switch code {
	case "invalid_request", "unauthorized_client", "unsupported_response_type", "invalid_scope",
		"invalid_resource", "invalid_target", "invalid_client":
		return true
	}
	return false
}

// idpErrorLine is the first line of an IdP's error_description (Entra ID
// appends trace and correlation ids on further lines), printable and short.
func idpErrorLine(d string) string {
	if i := strings.IndexAny(d, "\r\n"); i >= 0 {
		d = d[:i]
	}
	d = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, d)
	return truncate(strings.TrimSpace(d), 200)
}

// safeClass keeps an IdP-provided error code printable and short.
func safeClass(e string) string {
	e = truncate(e, 64)
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, e)
}

// afterSignIn is the step after the user is known: a skip-consent client
// or a live consent covering the scope gets its code now; otherwise the
// consent page.
func (s *Server) afterSignIn(w http.ResponseWriter, r *http.Request, client *clients.Client, req authzRequest, sid string, id *identity.Identity) {
	if !hasPrompt(req.Prompt, "consent") {
		if client.SkipConsent {
			s.issueCode(w, r, req, sid, id)
			return
		}
		c, err := s.opts.Store.GetConsent(r.Context(), id.Issuer, id.Subject, client.ID)
		switch {
		case err == nil && s.now().Before(c.ExpiresAt) && scopeCovers(c.Scope, req.Scope):
			s.issueCode(w, r, req, sid, id)
			return
		case err != nil && !errors.Is(err, store.ErrNotFound):
			s.log.ErrorContext(r.Context(), "reading consent failed", "error", err)
			s.redirectError(w, r, req, oauthError{"server_error", "Mandate could not read the consent"})
			return
		}
	}
	if hasPrompt(req.Prompt, "none") {
		s.redirectError(w, r, req, oauthError{"consent_required", "the user has not approved this application"})
		return
	}
	s.consentPage(w, r, client, req, sid, id)
}

// issueCode makes an authorization code (32 random bytes; only its
// SHA-256 is stored), and sends it to the client with state and iss.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, req authzRequest, sid string, id *identity.Identity) {
	code := randomString(32)
	sum := sha256.Sum256([]byte(code))
	err := s.opts.Store.PutCode(r.Context(), store.Code{
		Hash:          sum[:],
		ClientID:      req.ClientID,
		SessionID:     sid,
		RedirectURI:   req.RedirectURI,
		CodeChallenge: req.CodeChallenge,
		Resource:      req.Resource,
		Scope:         req.Scope,
		FamilyID:      randomString(16),
		ExpiresAt:     s.now().Add(codeTTL),
	})
	if err != nil {
		s.log.ErrorContext(r.Context(), "storing the authorization code failed", "error", err)
		s.redirectError(w, r, req, oauthError{"server_error", "Mandate could not issue the code"})
		return
	}
	p := url.Values{"code": {code}}
	if req.State != "" {
		p.Set("state", req.State)
	}
	s.redirectTo(w, r, req.RedirectURI, p)
}

// recordLogin writes the oauth/login audit record.
func (s *Server) recordLogin(r *http.Request, id *identity.Identity, clientID, outcome, class, msg string) {
	s.recordAuthz(r.Context(), &audit.Record{
		Method: audit.MethodOAuthLogin, User: audit.UserFromIdentity(id), OAuthClient: clientID,
		RemoteAddr: r.RemoteAddr, Outcome: outcome, ErrorClass: class, Error: msg,
	})
}

func (s *Server) recordAuthz(ctx context.Context, rec *audit.Record) {
	if s.opts.Audit == nil {
		return
	}
	rec.Time = s.now()
	s.opts.Audit(ctx, rec)
}

// codeTTL is an authorization code's lifetime.
const codeTTL = 60 * time.Second
