package entraidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// DefaultTenantID is the tenant (directory) id when Options.TenantID is
// empty.
const DefaultTenantID = "72f988bf-0000-4000-8000-2d7cd011db47"

// GraphAppID is Microsoft Graph's application id: the audience of access
// tokens requested with OIDC scopes only [scopes-oidc].
const GraphAppID = "00000003-0000-0000-c000-000000000000"

// GrantOBO and the On-Behalf-Of parameters [v2-oauth2-on-behalf-of-flow].
const (
	GrantJWTBearer    = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	RequestedTokenOBO = "on_behalf_of"
)

// User is a directory user.
type User struct {
	// OID is the object id (a GUID): immutable, the same for every app.
	OID string
	// UPN is the user principal name, sent as preferred_username.
	UPN  string
	Name string
	// Roles are app roles assigned to the user (the roles claim), by
	// application id.
	Roles map[string][]string
}

// App is an application registration: a client, and (through Scopes) an
// API under App ID URI api://<ClientID>.
type App struct {
	// ClientID is the Application (client) ID, a GUID.
	ClientID string
	// Secret is a client secret; empty for a public client.
	Secret string
	// RedirectURIs are matched exactly.
	RedirectURIs []string
	// Scopes are the delegated permissions the app's API exposes (e.g.
	// access_as_user); .default grants all of them.
	Scopes []string
	// AppIDURI is the Application ID URI. Default api://<ClientID>.
	AppIDURI string
}

func (a *App) appIDURI() string {
	if a.AppIDURI != "" {
		return a.AppIDURI
	}
	return "api://" + a.ClientID
}

// Options configure the provider. The zero value has the default tenant,
// four users (rita, morgan, ivy, oscar @contoso.example) and no apps.
type Options struct {
	TenantID string
	Users    []User
	Apps     []App
	// AccessTokenTTL is the lifetime of access and ID tokens. Default 1h
	// (Entra's default is 60-90 minutes [access-tokens]).
	AccessTokenTTL time.Duration
	// ErrorsToRedirect sends request errors found after the client and
	// its redirect URI were validated (AADSTS901002 among them) to the
	// redirect URI as error and error_description. When false (the
	// default) they are shown on the provider's own error page, as the
	// sign-in window shows AADSTS901002.
	ErrorsToRedirect bool
}

// Request is one request an endpoint received: the endpoint (authorize,
// token), the form (query for authorize; client_secret replaced by
// "[redacted]") and, for refresh grants, whether the refresh token
// presented was an older one of its chain.
type Request struct {
	Endpoint string
	Form     url.Values
	// StaleRefreshToken: a refresh grant presented a refresh token that
	// was already superseded by a newer one.
	StaleRefreshToken bool
	// ClientID and ClientAuth of a token request: how the client
	// authenticated (client_secret_basic, client_secret_post, none).
	ClientID, ClientAuth string
}

// Issued is one token response.
type Issued struct {
	ClientID     string
	Grant        string
	AccessToken  string
	RefreshToken string
	// Audience and Scp of the access token.
	Audience, Scp string
	User          string // UPN
}

// IdP is a running provider. Safe for concurrent use.
type IdP struct {
	opts   Options
	srv    *httptest.Server
	base   string
	key    *rsa.PrivateKey
	kid    string
	graph  *rsa.PrivateKey // signs Graph tokens: not in the JWKS
	signer jose.Signer
	gsign  jose.Signer
	page   *template.Template

	mu       sync.Mutex
	codes    map[string]*authCode
	refresh  map[string]*refreshGrant
	disabled map[string]bool
	requests []Request
	issued   []Issued
}

type authCode struct {
	clientID, redirectURI, challenge, method, nonce string
	user                                            *User
	scopes                                          []string
	expires                                         time.Time
	used                                            bool
}

// refreshGrant is a refresh token's grant: the user, client and consented
// scopes; chain counts the refresh tokens of one sign-in, latest the newest.
type refreshGrant struct {
	clientID string
	user     *User
	scopes   []string
	chain    *int
	n        int
}

// Start serves the provider on a 127.0.0.1 port.
func Start(opts Options) (*IdP, error) {
	if opts.TenantID == "" {
		opts.TenantID = DefaultTenantID
	}
	if opts.Users == nil {
		for i, n := range []string{"rita", "morgan", "ivy", "oscar"} {
			opts.Users = append(opts.Users, User{OID: fmt.Sprintf("0a1b2c3d-0000-4000-8000-00000000000%d", i+1),
				UPN: n + "@contoso.example", Name: strings.ToUpper(n[:1]) + n[1:]})
		}
	}
	if opts.AccessTokenTTL == 0 {
		opts.AccessTokenTTL = time.Hour
	}
	for i := range opts.Apps {
		if opts.Apps[i].ClientID == "" {
			return nil, errors.New("entraidp: an app without ClientID")
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	graph, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	i := &IdP{opts: opts, key: key, graph: graph, kid: randomHex(8),
		codes: map[string]*authCode{}, refresh: map[string]*refreshGrant{}, disabled: map[string]bool{}}
	// Entra's access and ID tokens: RS256, typ JWT, kid [access-tokens].
	if i.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: i.kid}},
		(&jose.SignerOptions{}).WithType("JWT")); err != nil {
		return nil, err
	}
	if i.gsign, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: graph, KeyID: i.kid}},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("nonce", randomHex(16))); err != nil {
		return nil, err
	}
	i.page = template.Must(template.New("p").Parse(pageHTML))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	t := "/" + opts.TenantID
	mux.HandleFunc("GET "+t+"/v2.0/.well-known/openid-configuration", i.discovery)
	mux.HandleFunc("GET "+t+"/discovery/v2.0/keys", i.jwks)
	mux.HandleFunc(t+"/oauth2/v2.0/authorize", i.authorize)
	mux.HandleFunc("POST "+t+"/oauth2/v2.0/token", i.token)
	i.srv = httptest.NewUnstartedServer(mux)
	i.srv.Listener.Close()
	i.srv.Listener = ln
	i.srv.Start()
	i.base = i.srv.URL
	return i, nil
}

// Close stops the server.
func (i *IdP) Close() { i.srv.Close() }

// TenantID is the directory id (the tid claim).
func (i *IdP) TenantID() string { return i.opts.TenantID }

// Issuer is <base>/<tenant id>/v2.0.
func (i *IdP) Issuer() string { return i.base + "/" + i.opts.TenantID + "/v2.0" }

// AuthorizeURL, TokenURL and JWKSURL are the endpoints.
func (i *IdP) AuthorizeURL() string { return i.base + "/" + i.opts.TenantID + "/oauth2/v2.0/authorize" }
func (i *IdP) TokenURL() string     { return i.base + "/" + i.opts.TenantID + "/oauth2/v2.0/token" }
func (i *IdP) JWKSURL() string      { return i.base + "/" + i.opts.TenantID + "/discovery/v2.0/keys" }

// User returns the user with this UPN or UPN local part, or nil.
func (i *IdP) User(hint string) *User {
	for k := range i.opts.Users {
		u := &i.opts.Users[k]
		if strings.EqualFold(hint, u.UPN) || strings.EqualFold(hint+"@"+upnDomain(u.UPN), u.UPN) {
			return u
		}
	}
	return nil
}

func upnDomain(upn string) string {
	_, d, _ := strings.Cut(upn, "@")
	return d
}

// AddRedirectURI registers one more redirect URI of an app (a test
// learns its callback address after Start).
func (i *IdP) AddRedirectURI(clientID, uri string) error {
	a := i.app(clientID)
	if a == nil {
		return fmt.Errorf("entraidp: no app %s", clientID)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	a.RedirectURIs = append(a.RedirectURIs, uri)
	return nil
}

// DisableUser blocks a user's sign-ins and refresh grants (AADSTS50057).
func (i *IdP) DisableUser(upn string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.disabled[strings.ToLower(upn)] = true
}

// Requests returns what the endpoints received, oldest first.
func (i *IdP) Requests() []Request {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.requests)
}

// Issued returns the token responses, oldest first.
func (i *IdP) Issued() []Issued {
	i.mu.Lock()
	defer i.mu.Unlock()
	return slices.Clone(i.issued)
}

func (i *IdP) record(endpoint string, form url.Values, stale bool, clientID, auth string) {
	f := url.Values{}
	for k, v := range form {
		if k == "client_secret" {
			v = []string{"[redacted]"}
		}
		f[k] = slices.Clone(v)
	}
	i.mu.Lock()
	i.requests = append(i.requests, Request{Endpoint: endpoint, Form: f, StaleRefreshToken: stale, ClientID: clientID, ClientAuth: auth})
	i.mu.Unlock()
}

func (i *IdP) app(clientID string) *App {
	for k := range i.opts.Apps {
		if i.opts.Apps[k].ClientID == clientID {
			return &i.opts.Apps[k]
		}
	}
	return nil
}

// discovery is the v2 OpenID configuration, with the fields Entra
// publishes that matter to clients [v2-protocols-oidc]. Entra lists no
// code_challenge_methods_supported.
func (i *IdP) discovery(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        i.TokenURL(),
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              i.JWKSURL(),
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                i.Issuer(),
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     "https://graph.microsoft.com/oidc/userinfo",
		"authorization_endpoint":                i.AuthorizeURL(),
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  i.base + "/" + i.opts.TenantID + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"tenant_region_scope": "EU",
		"cloud_instance_name": "microsoftonline.com",
	})
}

func (i *IdP) jwks(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &i.key.PublicKey, KeyID: i.kid, Algorithm: "RS256", Use: "sig"}}})
}

// stsError is an AADSTS error: code (the OAuth error), the AADSTS number
// and its message.
type stsError struct {
	status int
	code   string
	num    int
	msg    string
}

func (e *stsError) description() string {
	return fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s",
		e.num, e.msg, uuid(), uuid(), time.Now().UTC().Format("2006-01-02 15:04:05Z"))
}

// authorize is the v2 authorization endpoint [v2-oauth2-auth-code-flow].
func (i *IdP) authorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		i.errorPage(w, &stsError{400, "invalid_request", 900144, "The request could not be parsed."})
		return
	}
	q := r.Form
	i.record("authorize", q, false, q.Get("client_id"), "")
	app := i.app(q.Get("client_id"))
	if app == nil {
		i.errorPage(w, &stsError{400, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", q.Get("client_id"), i.opts.TenantID)})
		return
	}
	redirect := q.Get("redirect_uri")
	i.mu.Lock()
	known := slices.Contains(app.RedirectURIs, redirect)
	i.mu.Unlock()
	if !known {
		i.errorPage(w, &stsError{400, "invalid_request", 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'.", redirect, app.ClientID)})
		return
	}
	fail := func(e *stsError) {
		if !i.opts.ErrorsToRedirect {
			i.errorPage(w, e)
			return
		}
		u, _ := url.Parse(redirect)
		v := u.Query()
		v.Set("error", e.code)
		v.Set("error_description", e.description())
		v.Set("error_uri", fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", e.num))
		if s := q.Get("state"); s != "" {
			v.Set("state", s)
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	// The v2 endpoint does not take RFC 8707's resource: the resource is
	// named by the scope [reference-error-codes: AADSTS901002].
	if _, ok := q["resource"]; ok {
		fail(&stsError{400, "invalid_request", 901002, "The 'resource' request parameter is not supported."})
		return
	}
	if !slices.Contains(strings.Fields(q.Get("response_type")), "code") {
		fail(&stsError{400, "unsupported_response_type", 700054, "response_type 'code' is required by this test provider."})
		return
	}
	scopes := strings.Fields(q.Get("scope"))
	if len(scopes) == 0 {
		fail(&stsError{400, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'."})
		return
	}
	if _, _, e := i.resolveScopes(scopes); e != nil {
		fail(e)
		return
	}
	method := q.Get("code_challenge_method")
	if q.Get("code_challenge") != "" && method == "" {
		method = "plain"
	}
	if method != "" && method != "S256" && method != "plain" {
		fail(&stsError{400, "invalid_request", 501491, "Invalid code_challenge_method."})
		return
	}
	hint := q.Get("login_hint")
	if hint == "" {
		hint = q.Get("pick") // the picker's answer
	}
	user := i.User(hint)
	if user == nil {
		if q.Get("prompt") == "none" {
			fail(&stsError{400, "login_required", 50058, "A silent sign-in request was sent but no user is signed in."})
			return
		}
		i.picker(w, q)
		return
	}
	i.mu.Lock()
	disabled := i.disabled[strings.ToLower(user.UPN)]
	i.mu.Unlock()
	if disabled {
		fail(&stsError{400, "access_denied", 50057, "The user account is disabled."})
		return
	}
	code := randomHex(32)
	i.mu.Lock()
	i.codes[code] = &authCode{clientID: app.ClientID, redirectURI: redirect, challenge: q.Get("code_challenge"), method: method,
		nonce: q.Get("nonce"), user: user, scopes: scopes, expires: time.Now().Add(10 * time.Minute)}
	i.mu.Unlock()
	u, _ := url.Parse(redirect)
	v := u.Query()
	v.Set("code", code)
	if s := q.Get("state"); s != "" {
		v.Set("state", s)
	}
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// resolveScopes splits scopes into OIDC scopes and the resource the access
// token is for: the first resource scope's API, with the scp it gets
// (.default: the API's configured permissions). No resource scope means
// Microsoft Graph [scopes-oidc]. Scopes of other resources than the first
// are consented but not in this token [v2-oauth2-auth-code-flow: "returns
// a token for the resource specified in the first scope"].
func (i *IdP) resolveScopes(scopes []string) (*App, []string, *stsError) {
	var res *App
	var scp []string
	seenDefault := false
	for _, s := range scopes {
		switch s {
		case "openid", "profile", "email", "offline_access":
			continue
		}
		k := strings.LastIndexByte(s, '/')
		if k <= 0 {
			return nil, nil, &stsError{400, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' does not exist.", s)}
		}
		rid, perm := s[:k], s[k+1:]
		var app *App
		for a := range i.opts.Apps {
			if x := &i.opts.Apps[a]; x.appIDURI() == rid || x.ClientID == rid {
				app = x
			}
		}
		if app == nil {
			return nil, nil, &stsError{400, "invalid_resource", 500011, fmt.Sprintf("The resource principal named %s was not found in the tenant named %s.", rid, i.opts.TenantID)}
		}
		if perm != ".default" && !slices.Contains(app.Scopes, perm) {
			return nil, nil, &stsError{400, "invalid_scope", 65005, fmt.Sprintf("The application asked for scope '%s' that doesn't exist on the resource '%s'.", perm, app.ClientID)}
		}
		if res != nil && res != app {
			continue
		}
		if (perm == ".default" && len(scp) > 0 && !seenDefault) || (perm != ".default" && seenDefault) {
			return nil, nil, &stsError{400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The .default scope can't be combined with resource-specific scopes."}
		}
		res = app
		if perm == ".default" {
			seenDefault = true
			scp = slices.Clone(app.Scopes)
		} else if !slices.Contains(scp, perm) {
			scp = append(scp, perm)
		}
	}
	return res, scp, nil
}

// token is the v2 token endpoint.
func (i *IdP) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		i.tokenError(w, &stsError{400, "invalid_request", 900144, "The request body could not be parsed."})
		return
	}
	f := r.PostForm
	grant := f.Get("grant_type")
	// Client authentication: client_secret_post or client_secret_basic
	// [v2-oauth2-auth-code-flow].
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	auth := "none"
	if secret != "" {
		auth = "client_secret_post"
	}
	if u, p, ok := r.BasicAuth(); ok {
		cu, _ := url.QueryUnescape(u)
		cp, _ := url.QueryUnescape(p)
		clientID, secret, auth = cu, cp, "client_secret_basic"
	}
	var stale bool
	defer func() { i.record("token", f, stale, clientID, auth) }()
	app := i.app(clientID)
	switch {
	case app == nil:
		i.tokenError(w, &stsError{400, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, i.opts.TenantID)})
		return
	case app.Secret != "" && secret == "":
		i.tokenError(w, &stsError{401, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."})
		return
	case app.Secret != "" && secret != app.Secret:
		i.tokenError(w, &stsError{401, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."})
		return
	}
	switch grant {
	case "authorization_code":
		i.codeGrant(w, app, f)
	case "refresh_token":
		stale = i.refreshGrant(w, app, f)
	case GrantJWTBearer:
		i.oboGrant(w, app, f)
	default:
		i.tokenError(w, &stsError{400, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", grant)})
	}
}

// resourceParam refuses a resource parameter at the token endpoint that
// does not name the scopes' resource (AADSTS9010010).
func resourceParam(f url.Values, res *App) *stsError {
	rv, ok := f["resource"]
	if !ok {
		return nil
	}
	if res != nil && len(rv) == 1 && (rv[0] == res.appIDURI() || rv[0] == res.ClientID) {
		return nil
	}
	return &stsError{400, "invalid_target", 9010010, "The resource parameter provided in the request doesn't match with the requested scopes."}
}

func (i *IdP) codeGrant(w http.ResponseWriter, app *App, f url.Values) {
	i.mu.Lock()
	c := i.codes[f.Get("code")]
	reused := c != nil && c.used
	if c != nil {
		c.used = true
	}
	i.mu.Unlock()
	switch {
	case c == nil || time.Now().After(c.expires):
		i.tokenError(w, &stsError{400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."})
		return
	case reused:
		i.tokenError(w, &stsError{400, "invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."})
		return
	case c.clientID != app.ClientID:
		i.tokenError(w, &stsError{400, "invalid_grant", 70000, "The provided authorization code was issued to another client."})
		return
	case f.Get("redirect_uri") != c.redirectURI:
		i.tokenError(w, &stsError{400, "invalid_grant", 50148, "The redirect_uri doesn't match the one used in the authorization request."})
		return
	}
	if c.challenge != "" {
		v := f.Get("code_verifier")
		ok := v != "" && (c.method == "plain" && v == c.challenge || c.method == "S256" && s256(v) == c.challenge)
		if !ok {
			i.tokenError(w, &stsError{400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request."})
			return
		}
	}
	scopes := c.scopes
	if s := strings.Fields(f.Get("scope")); len(s) > 0 {
		scopes = s // a Microsoft extension: name the resource at redemption
	}
	res, scp, e := i.resolveScopes(scopes)
	if e == nil {
		e = resourceParam(f, res)
	}
	if e != nil {
		i.tokenError(w, e)
		return
	}
	i.respond(w, app, c.user, "authorization_code", c.scopes, scopes, res, scp, c.nonce, nil)
}

// refreshGrant redeems a refresh token: scope optional (default: the
// original request's), a subset of what was consented; a new refresh token
// each time, the old one not revoked [v2-oauth2-auth-code-flow]. It
// returns whether the token presented was superseded.
func (i *IdP) refreshGrant(w http.ResponseWriter, app *App, f url.Values) bool {
	i.mu.Lock()
	g := i.refresh[f.Get("refresh_token")]
	stale := g != nil && g.n != *g.chain
	disabled := g != nil && i.disabled[strings.ToLower(g.user.UPN)]
	i.mu.Unlock()
	switch {
	case g == nil || g.clientID != app.ClientID:
		i.tokenError(w, &stsError{400, "invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."})
		return stale
	case disabled:
		i.tokenError(w, &stsError{400, "invalid_grant", 50057, "The user account is disabled."})
		return stale
	}
	scopes := strings.Fields(f.Get("scope"))
	if len(scopes) == 0 {
		scopes = g.scopes
	}
	for _, s := range scopes {
		if !i.consented(g.scopes, s) {
			i.tokenError(w, &stsError{400, "invalid_grant", 65001, fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s'. Send an interactive authorization request for this user and resource.", app.ClientID)})
			return stale
		}
	}
	res, scp, e := i.resolveScopes(scopes)
	if e == nil {
		e = resourceParam(f, res)
	}
	if e != nil {
		i.tokenError(w, e)
		return stale
	}
	i.respond(w, app, g.user, "refresh_token", g.scopes, scopes, res, scp, "", g.chain)
	return stale
}

// consented reports whether scope s is covered by the scopes consented at
// sign-in: OIDC scopes, or a permission of an API consented to (by name or
// through .default).
func (i *IdP) consented(consented []string, s string) bool {
	switch s {
	case "openid", "profile", "email", "offline_access":
		return slices.Contains(consented, s) || s != "offline_access"
	}
	k := strings.LastIndexByte(s, '/')
	if k <= 0 {
		return false
	}
	rid, perm := s[:k], s[k+1:]
	for _, c := range consented {
		if c == s || c == rid+"/.default" {
			return true
		}
	}
	return perm == ".default" && slices.ContainsFunc(consented, func(c string) bool { return strings.HasPrefix(c, rid+"/") })
}

// oboGrant is On-Behalf-Of: the assertion is an access token of this
// tenant for the calling app; the new token is for the scope's resource,
// for the same user [v2-oauth2-on-behalf-of-flow].
func (i *IdP) oboGrant(w http.ResponseWriter, app *App, f url.Values) {
	if f.Get("requested_token_use") != RequestedTokenOBO {
		i.tokenError(w, &stsError{400, "invalid_request", 50027, "JWT token is invalid or malformed: requested_token_use must be on_behalf_of."})
		return
	}
	claims, err := i.verify(f.Get("assertion"))
	if err != nil {
		i.tokenError(w, &stsError{400, "invalid_grant", 50013, "Assertion failed signature validation. [Reason - " + err.Error() + "]"})
		return
	}
	if aud, _ := claims["aud"].(string); aud != app.ClientID {
		i.tokenError(w, &stsError{400, "invalid_grant", 500131, fmt.Sprintf("Assertion audience does not match the Client app presenting the assertion. The audience in the assertion was '%s' and the expected audience is '%s'.", aud, app.ClientID)})
		return
	}
	oid, _ := claims["oid"].(string)
	var user *User
	for k := range i.opts.Users {
		if i.opts.Users[k].OID == oid {
			user = &i.opts.Users[k]
		}
	}
	if user == nil {
		i.tokenError(w, &stsError{400, "invalid_grant", 50034, "The user account does not exist in this directory."})
		return
	}
	scopes := strings.Fields(f.Get("scope"))
	res, scp, e := i.resolveScopes(scopes)
	if e == nil && res == nil {
		e = &stsError{400, "invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid: On-Behalf-Of needs a resource scope."}
	}
	if e != nil {
		i.tokenError(w, e)
		return
	}
	i.respond(w, app, user, GrantJWTBearer, nil, scopes, res, scp, "", nil)
}

// verify checks a token this provider signed (signature, issuer, expiry)
// and returns its claims.
func (i *IdP) verify(raw string) (map[string]any, error) {
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return nil, errors.New("the assertion is not a JWT")
	}
	var claims map[string]any
	if err := tok.Claims(&i.key.PublicKey, &claims); err != nil {
		return nil, errors.New("the key was not found")
	}
	var std jwt.Claims
	_ = tok.Claims(&i.key.PublicKey, &std)
	if std.Issuer != i.Issuer() {
		return nil, errors.New("the issuer is not this tenant's")
	}
	if err := std.ValidateWithLeeway(jwt.Expected{Time: time.Now()}, 0); err != nil {
		return nil, errors.New("the assertion has expired")
	}
	return claims, nil
}

// respond issues the tokens: an access token for res (Graph when nil), an
// ID token when openid was asked (with nonce), a refresh token when
// offline_access was consented. chain continues a refresh-token chain.
func (i *IdP) respond(w http.ResponseWriter, app *App, u *User, grant string, consented, scopes []string, res *App, scp []string, nonce string, chain *int) {
	now := time.Now()
	exp := now.Add(i.opts.AccessTokenTTL)
	var at, aud, scpStr string
	var err error
	if res == nil {
		// Only OIDC scopes: the token is for Microsoft Graph, a v1 token
		// signed so that only Graph can check it [scopes-oidc, access-tokens].
		aud, scpStr = GraphAppID, "openid profile email User.Read"
		at, err = jwt.Signed(i.gsign).Claims(map[string]any{
			"aud": "https://graph.microsoft.com", "iss": "https://sts.windows.net/" + i.opts.TenantID + "/",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(), "appid": app.ClientID, "oid": u.OID,
			"tid": i.opts.TenantID, "sub": pairwise(u.OID, GraphAppID), "upn": u.UPN, "name": u.Name,
			"scp": scpStr, "ver": "1.0",
		}).Serialize()
	} else {
		aud, scpStr = res.ClientID, strings.Join(scp, " ")
		c := map[string]any{
			"aud": res.ClientID, "iss": i.Issuer(), "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
			"aio": randomHex(16), "azp": app.ClientID, "azpacr": azpacr(app), "name": u.Name, "oid": u.OID,
			"preferred_username": u.UPN, "rh": randomHex(12), "scp": scpStr, "sub": pairwise(u.OID, res.ClientID),
			"tid": i.opts.TenantID, "uti": randomHex(11), "ver": "2.0",
		}
		if roles := u.Roles[res.ClientID]; len(roles) > 0 {
			c["roles"] = roles
		}
		at, err = jwt.Signed(i.signer).Claims(c).Serialize()
	}
	if err != nil {
		i.tokenError(w, &stsError{500, "server_error", 90000, "signing failed"})
		return
	}
	out := map[string]any{"token_type": "Bearer", "expires_in": int(i.opts.AccessTokenTTL / time.Second),
		"ext_expires_in": int(i.opts.AccessTokenTTL / time.Second), "access_token": at, "scope": responseScope(scopes, res, scp)}
	if slices.Contains(scopes, "openid") {
		c := map[string]any{"aud": app.ClientID, "iss": i.Issuer(), "iat": now.Unix(), "nbf": now.Unix(), "exp": exp.Unix(),
			"name": u.Name, "oid": u.OID, "preferred_username": u.UPN, "rh": randomHex(12), "sub": pairwise(u.OID, app.ClientID),
			"tid": i.opts.TenantID, "uti": randomHex(11), "ver": "2.0", "aio": randomHex(16)}
		if nonce != "" {
			c["nonce"] = nonce
		}
		idt, err := jwt.Signed(i.signer).Claims(c).Serialize()
		if err != nil {
			i.tokenError(w, &stsError{500, "server_error", 90000, "signing failed"})
			return
		}
		out["id_token"] = idt
	}
	var rt string
	if grant != GrantJWTBearer && slices.Contains(consented, "offline_access") {
		rt = randomHex(40)
		i.mu.Lock()
		if chain == nil {
			chain = new(int)
		}
		*chain++
		i.refresh[rt] = &refreshGrant{clientID: app.ClientID, user: u, scopes: consented, chain: chain, n: *chain}
		i.mu.Unlock()
		out["refresh_token"] = rt
	}
	i.mu.Lock()
	i.issued = append(i.issued, Issued{ClientID: app.ClientID, Grant: grant, AccessToken: at, RefreshToken: rt, Audience: aud, Scp: scpStr, User: u.UPN})
	i.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// responseScope is the response's scope: the token's permissions in URI
// form, then the OIDC scopes asked for.
func responseScope(scopes []string, res *App, scp []string) string {
	var out []string
	if res == nil {
		out = append(out, "https://graph.microsoft.com/User.Read")
	} else {
		for _, s := range scp {
			out = append(out, res.appIDURI()+"/"+s)
		}
	}
	for _, s := range scopes {
		if s == "openid" || s == "profile" || s == "email" {
			out = append(out, s)
		}
	}
	return strings.Join(out, " ")
}

// azpacr: 0 public client, 1 client secret [access-token-claims-reference].
func azpacr(a *App) string {
	if a.Secret == "" {
		return "0"
	}
	return "1"
}

// pairwise is a sub that differs per application, as Entra's does.
func pairwise(oid, appID string) string {
	sum := sha256.Sum256([]byte(oid + "|" + appID))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// tokenError writes an Entra token endpoint error body
// [v2-oauth2-auth-code-flow: error response].
func (i *IdP) tokenError(w http.ResponseWriter, e *stsError) {
	writeJSON(w, e.status, map[string]any{
		"error": e.code, "error_description": e.description(), "error_codes": []int{e.num},
		"timestamp": time.Now().UTC().Format("2006-01-02 15:04:05Z"), "trace_id": uuid(), "correlation_id": uuid(),
		"error_uri": fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", e.num),
	})
}

const pageHTML = `<!doctype html><html><head><meta charset="utf-8"><title>Sign in to your account</title></head><body>
{{if .Error}}<h1>Sign in</h1><p>Sorry, but we're having trouble signing you in.</p>
<p id="error">AADSTS{{.Error.Num}}: {{.Error.Msg}}</p>
{{else}}<h1>Pick an account</h1>
<form method="get" action="{{.Action}}">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<select name="pick">{{range .Users}}<option value="{{.UPN}}">{{.Name}} ({{.UPN}})</option>{{end}}</select>
<button type="submit">Sign in</button>
</form>{{end}}
</body></html>`

// errorPage is the provider's own error page (the request cannot go
// back to the client, or ErrorsToRedirect is off).
func (i *IdP) errorPage(w http.ResponseWriter, e *stsError) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(e.status)
	_ = i.page.Execute(w, map[string]any{"Error": map[string]any{"Num": e.num, "Msg": e.msg}})
}

func (i *IdP) picker(w http.ResponseWriter, q url.Values) {
	params := map[string]string{}
	for k := range q {
		if k != "pick" && k != "login_hint" {
			params[k] = q.Get(k)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = i.page.Execute(w, map[string]any{"Action": i.AuthorizeURL(), "Params": params, "Users": i.opts.Users})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func s256(v string) string {
	sum := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func uuid() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
