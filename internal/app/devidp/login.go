package devidp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// ErrUnknownUser is returned by Token for a username the IdP does not have.
var ErrUnknownUser = errors.New("devidp: unknown user")

// TokenOptions shape one access token issued by Token.
type TokenOptions struct {
	// Audience is the aud claim, exactly (a JSON array). Empty means
	// ["devidp-login"], the internal client's ID.
	Audience []string
	// Scopes are requested in addition to "openid"; the scope claim lists
	// the granted scopes ("openid" first), space-separated.
	Scopes []string
	// Lifetime sets exp = now + Lifetime; 0 means DefaultTokenLifetime.
	Lifetime time.Duration
}

// Token logs username in programmatically through the OP's own endpoints —
// /authorize, the login page, /authorize/callback, then the authorization
// code grant (with PKCE) at /oauth/token — and returns the signed JWT access
// token zitadel issued. No browser and no password are needed: the login is
// authorized by a one-time ticket that only this process knows.
func (p *IdP) Token(ctx context.Context, username string, o TokenOptions) (string, error) {
	u, ok := p.UserByUsername(username)
	if !ok {
		return "", fmt.Errorf("%w %q", ErrUnknownUser, username)
	}
	if o.Lifetime < 0 {
		return "", fmt.Errorf("devidp: negative token lifetime %v", o.Lifetime)
	}
	for _, a := range o.Audience {
		if a == "" {
			return "", errors.New("devidp: empty audience value")
		}
	}
	aud := slices.Clone(o.Audience)
	if len(aud) == 0 {
		aud = []string{loginClientID}
	}
	scopes := []string{oidc.ScopeOpenID}
	for _, s := range o.Scopes {
		if s != "" && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}

	state, err := randomID()
	if err != nil {
		return "", err
	}
	secret, err := randomID()
	if err != nil {
		return "", err
	}
	verifier, err := randomID()
	if err != nil {
		return "", err
	}
	verifier += "-" + state // 65 characters, within RFC 7636's 43..128
	sum := sha256.Sum256([]byte(verifier))

	p.store.mu.Lock()
	p.store.tickets[state] = &ticket{secret: secret, userID: u.ID, audience: aud, lifetime: o.Lifetime}
	p.store.mu.Unlock()
	defer func() {
		p.store.mu.Lock()
		delete(p.store.tickets, state)
		p.store.mu.Unlock()
	}()

	redirectURI := p.issuer + callbackPath
	q := url.Values{
		"client_id":             {loginClientID},
		"redirect_uri":          {redirectURI},
		"response_type":         {string(oidc.ResponseTypeCode)},
		"scope":                 {strings.Join(scopes, " ")},
		"state":                 {state},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {string(oidc.CodeChallengeMethodS256)},
	}

	// 1. /authorize redirects to the login page with the auth request id.
	loc, err := p.expectRedirect(ctx, http.MethodGet, p.AuthorizationURL()+"?"+q.Encode(), nil)
	if err != nil {
		return "", fmt.Errorf("devidp: authorize: %w", err)
	}
	authRequestID := loc.Query().Get("authRequestID")
	if loc.Path != loginPath || authRequestID == "" {
		return "", fmt.Errorf("devidp: authorize redirected to %s, not the login page", loc.Redacted())
	}
	// 2. The login page authenticates the ticket and redirects to the callback.
	form := url.Values{"authRequestID": {authRequestID}, "ticket": {secret}}
	loc, err = p.expectRedirect(ctx, http.MethodPost, p.issuer+loginPath, form)
	if err != nil {
		return "", fmt.Errorf("devidp: login: %w", err)
	}
	// 3. The callback issues the code and redirects to the client.
	loc, err = p.expectRedirect(ctx, http.MethodGet, loc.String(), nil)
	if err != nil {
		return "", fmt.Errorf("devidp: authorize callback: %w", err)
	}
	if loc.Scheme+"://"+loc.Host+loc.Path != redirectURI {
		return "", fmt.Errorf("devidp: authorize callback redirected to %s, not the client", loc.Scheme+"://"+loc.Host+loc.Path)
	}
	if e := loc.Query().Get("error"); e != "" {
		return "", fmt.Errorf("devidp: authorize callback: %s: %s", e, loc.Query().Get("error_description"))
	}
	if loc.Query().Get("state") != state {
		return "", errors.New("devidp: authorize callback: state mismatch")
	}
	code := loc.Query().Get("code")
	if code == "" {
		return "", errors.New("devidp: authorize callback: no code")
	}
	// 4. The code grant at the token endpoint.
	tok, err := p.codeExchange(ctx, code, redirectURI, verifier)
	if err != nil {
		return "", fmt.Errorf("devidp: code exchange: %w", err)
	}
	return tok, nil
}

// expectRedirect sends one request and returns the Location of its 302/303.
func (p *IdP) expectRedirect(ctx context.Context, method, target string, form url.Values) (*url.URL, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := p.httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("HTTP %d (want a redirect): %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("redirect without usable Location: %w", err)
	}
	return loc, nil
}

func (p *IdP) codeExchange(ctx context.Context, code, redirectURI, verifier string) (string, error) {
	form := url.Values{
		"grant_type":    {string(oidc.GrantTypeCode)},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"code_verifier": {verifier},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(loginClientID), url.QueryEscape(p.loginSec))
	resp, err := p.httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(b, &e)
		return "", fmt.Errorf("HTTP %d: %s: %s", resp.StatusCode, e.Error, e.Description)
	}
	var tr struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tr); err != nil {
		return "", fmt.Errorf("decoding token response: %w", err)
	}
	if tr.AccessToken == "" {
		return "", errors.New("token response without access_token")
	}
	return tr.AccessToken, nil
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Mandate dev IdP — sign in</title></head>
<body style="font-family:sans-serif;max-width:28em;margin:3em auto">
<h1>Mandate dev IdP</h1>
<p>Development identity provider. Do not use in production.</p>
{{if .Error}}<p style="color:#b00">{{.Error}}</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<p><label>User <select name="username">{{range .Users}}<option value="{{.Username}}"{{if eq .Username $.Selected}} selected{{end}}>{{.Username}}{{if .Email}} ({{.Email}}){{end}}</option>{{end}}</select></label></p>
{{if .Passwords}}<p><label>Password <input type="password" name="password"></label> <small>(empty for passwordless dev users)</small></p>
{{end}}<p><button type="submit">Sign in</button></p>
</form></body></html>`))

// serveLogin is the login UI zitadel redirects to (Client.LoginURL). GET
// signs in the passwordless user the request's login_hint names, or else
// shows the picker form; POST authenticates either Token's one-time ticket
// or a username/password and redirects to the OP's callback.
func (p *IdP) serveLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("authRequestID")
		userID, selected, msg := p.store.loginByHint(id)
		if userID != "" {
			p.log.InfoContext(r.Context(), "login by login_hint", "subject", userID)
			p.loggedIn(w, r, id, userID)
			return
		}
		p.renderLogin(w, id, selected, msg, http.StatusOK)
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			http.Error(w, "cannot parse form", http.StatusBadRequest)
			return
		}
		id := r.PostForm.Get("authRequestID")
		userID, err := p.checkLogin(id, r.PostForm)
		if err != nil {
			p.log.InfoContext(r.Context(), "login refused", "error", err)
			p.renderLogin(w, id, r.PostForm.Get("username"), err.Error(), http.StatusUnauthorized)
			return
		}
		p.log.InfoContext(r.Context(), "login", "subject", userID)
		p.loggedIn(w, r, id, userID)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *IdP) checkLogin(authRequestID string, form url.Values) (userID string, err error) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	ar, ok := p.store.authRequests[authRequestID]
	if !ok {
		return "", errors.New("unknown or expired login request")
	}
	if ar.ticketSecret != "" || ar.clientID == loginClientID {
		if ar.ticketSecret == "" || subtle.ConstantTimeCompare([]byte(ar.ticketSecret), []byte(form.Get("ticket"))) != 1 {
			return "", errors.New("invalid login ticket")
		}
		return ar.ticketUser, nil
	}
	u, ok := p.store.usersByName[form.Get("username")]
	if !ok || (u.Password != "" && subtle.ConstantTimeCompare([]byte(u.Password), []byte(form.Get("password"))) != 1) {
		return "", errors.New("wrong username or password")
	}
	return u.ID, nil
}

// loginByHint reads the login_hint of a browser authorization request. A
// hint naming a passwordless user (by username, or email ignoring case)
// returns that user's ID: the demo signs them in without the picker. A user
// with a password is only preselected; an unknown name is reported. Token's
// ticket logins ignore hints.
func (s *store) loginByHint(authRequestID string) (userID, selected, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[authRequestID]
	if !ok || ar.loginHint == "" || ar.ticketSecret != "" || ar.clientID == loginClientID || ar.done {
		return "", "", ""
	}
	u := s.usersByName[ar.loginHint]
	if u == nil {
		for _, c := range s.usersByName {
			if c.Email != "" && strings.EqualFold(c.Email, ar.loginHint) {
				u = c
				break
			}
		}
	}
	switch {
	case u == nil:
		return "", "", fmt.Sprintf("login_hint: no user %s; choose one", ar.loginHint)
	case u.Password != "":
		return "", u.Username, ""
	default:
		return u.ID, "", ""
	}
}

func (p *IdP) renderLogin(w http.ResponseWriter, id, selected, msg string, status int) {
	p.store.mu.Lock()
	users := make([]User, 0, len(p.store.usersByName))
	passwords := false
	for _, u := range p.store.usersByName {
		users = append(users, *u)
		passwords = passwords || u.Password != ""
	}
	p.store.mu.Unlock()
	slices.SortFunc(users, func(a, b User) int { return strings.Compare(a.Username, b.Username) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = loginPage.Execute(w, struct {
		ID, Error, Action, Selected string
		Passwords                   bool
		Users                       []User
	}{ID: id, Error: msg, Action: loginPath, Selected: selected, Passwords: passwords, Users: users})
}
