package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Claim names used in the access tokens this IdP issues. Registered claims
// (iss, sub, aud, exp, iat, nbf, jti, client_id) come from zitadel.
const (
	ClaimEmail  = "email"  // string
	ClaimRoles  = "roles"  // JSON array of strings, always present (maybe empty) in user tokens
	ClaimGroups = "groups" // JSON array of strings, always present (maybe empty) in user tokens
	ClaimScope  = "scope"  // space-separated string; absent when no scope was granted
)

const (
	// DefaultAddr is the listen address when Options.Addr is empty.
	DefaultAddr = "127.0.0.1:0"
	// DefaultTokenLifetime is the lifetime of every access token unless set otherwise.
	DefaultTokenLifetime = time.Hour
	// loginClientID is the internal confidential client Token logs in with.
	loginClientID = "devidp-login"
	// loginPath is the login page zitadel redirects to; callbackPath the
	// internal client's redirect_uri (never actually followed by Token).
	loginPath    = "/login"
	callbackPath = "/devidp/callback"
	// oauthMetadataPath is RFC 8414's authorization server metadata.
	oauthMetadataPath = "/.well-known/oauth-authorization-server"
)

// User is a user of the IdP.
type User struct {
	// ID is the token's sub. Defaults to Username.
	ID string
	// Username is the login name and the preferred_username claim. Required, unique.
	Username string
	// Email, GivenName, FamilyName become the email, given_name, family_name
	// (and name) claims.
	Email, GivenName, FamilyName string
	// Roles and Groups become the roles and groups claims (JSON string arrays).
	Roles, Groups []string
	// Admin is informational: an ExchangePolicy may read it via UserFromContext.
	Admin bool
	// Password, when set, is required on the browser login page. Empty means
	// a passwordless dev login. Token never needs it.
	Password string
	// Claims are extra claims added to the user's tokens; they never override
	// the claims above or registered ones.
	Claims map[string]any
}

func (u *User) clone() User {
	c := *u
	c.Roles, c.Groups, c.Claims = slices.Clone(u.Roles), slices.Clone(u.Groups), maps.Clone(u.Claims)
	return c
}

// DefaultUsers are the users of an IdP started without Options.Users.
func DefaultUsers() []User {
	return []User{
		{ID: "user-alice", Username: "alice", Email: "alice@example.com", GivenName: "Alice", FamilyName: "Anders", Roles: []string{"sales"}, Groups: []string{"emea"}},
		{ID: "user-bob", Username: "bob", Email: "bob@example.com", GivenName: "Bob", FamilyName: "Berg", Roles: []string{"support"}, Groups: []string{"amer"}},
	}
}

// ExchangePolicy decides one RFC 8693 token-exchange request: clientID is the
// authenticated client, subject the user ID of the subject token. Return nil to
// allow. To refuse, return an OAuth error such as ErrInvalidTarget or
// ErrAccessDenied (or zitadel's oidc.Err* values); any other error is sent as
// access_denied with its message as error_description. All become HTTP 400
// (except oidc.ErrServerError, 500). It may be called concurrently.
type ExchangePolicy func(ctx context.Context, clientID, subject string, audience, scopes []string) error

// ErrInvalidTarget returns an invalid_target OAuth error (HTTP 400) for an ExchangePolicy.
func ErrInvalidTarget(description string) error {
	return oidc.ErrInvalidTarget().WithDescription("%s", description)
}

// ErrAccessDenied returns an access_denied OAuth error (HTTP 400) for an ExchangePolicy.
func ErrAccessDenied(description string) error {
	return oidc.ErrAccessDenied().WithDescription("%s", description)
}

// Options configures an IdP. The zero value works.
type Options struct {
	// Addr is the listen address; default "127.0.0.1:0". It must be a
	// loopback address: the IdP has passwordless logins.
	Addr string
	// Users default to DefaultUsers (alice: role sales, bob: role support).
	Users []User
	// Logger receives the IdP's own logs; nil discards them. (zitadel's op
	// package logs through slog.Default; v3.52.0 has no per-instance logger.)
	Logger *slog.Logger
	// ExchangePolicy decides RFC 8693 token exchanges; nil allows any
	// audience for any user.
	ExchangePolicy ExchangePolicy
	// ExchangeTokenLifetime is the lifetime of access tokens issued by token
	// exchange and client_credentials; default DefaultTokenLifetime.
	ExchangeTokenLifetime time.Duration
	// Consent makes every browser authorization (not Token's) ask the
	// signed-in user to consent on a plain HTML page (ConsentPath) before a
	// code is issued: one <form method="post"> whose fields, posted with
	// decision=allow, approve it (decision=deny sends the client
	// access_denied). A platform's authorization server asks this way.
	Consent bool
	// SigningKey is the RS256 key; nil means a fresh RSA-2048 key for this
	// IdP (see Start for its cost). Pass one to start in about a millisecond.
	SigningKey *rsa.PrivateKey
}

// Exchange records one token exchange the IdP allowed.
type Exchange struct {
	ClientID string
	Subject  string
	Audience []string
	Scopes   []string
	Time     time.Time
	// IssuedTokenType is TokenTypeIDJAG for an ID-JAG, else empty (an
	// access token).
	IssuedTokenType string
}

// ClientConfig describes a client for AddClient.
type ClientConfig struct {
	// ID is the client_id. Required.
	ID string
	// Secret makes the client confidential (client_secret_basic or
	// client_secret_post; grants authorization_code with PKCE,
	// refresh_token — a rotating refresh token when the scope has
	// offline_access —, client_credentials, token exchange). Empty makes it a public client (PKCE, authorization_code only).
	Secret string
	// RedirectURIs for the authorization code flow (exact match).
	RedirectURIs []string
	// Audience is the aud of the access tokens (and ID tokens) issued to
	// this client in the authorization code flow, and of their refreshes,
	// instead of the request's RFC 8707 resource values; the client ID is
	// always added (an ID token's aud must contain it). Mandate's client
	// at the demo IdP uses it so the IdP tokens Mandate gets at sign-in are
	// for the MCP URL, the audience Mandate's identity config expects.
	Audience []string
}

// IdP is a running OpenID Provider (zitadel/oidc op) on a loopback listener.
// All methods are safe for concurrent use.
type IdP struct {
	issuer   string
	provider *op.Provider
	store    *store
	srv      *http.Server
	ln       net.Listener
	log      *slog.Logger
	httpc    *http.Client
	loginSec string
	consent  bool

	closeOnce sync.Once
	closeErr  error
	stopAfter func() bool
}

// Start starts an IdP. It serves until Close is called or ctx is done.
//
// Start takes about 1 ms plus RSA-2048 key generation (on a 2-core machine
// 40-500 ms, median ~150 ms) unless Options.SigningKey is set or a key
// pre-generated in the background after an earlier Start is ready.
func Start(ctx context.Context, opts Options) (*IdP, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	users := opts.Users
	if users == nil {
		users = DefaultUsers()
	}
	st := &store{
		log:              log,
		key:              opts.SigningKey,
		policy:           opts.ExchangePolicy,
		exchangeLifetime: opts.ExchangeTokenLifetime,
		usersByID:        make(map[string]*User),
		usersByName:      make(map[string]*User),
		clients:          make(map[string]*client),
		authRequests:     make(map[string]*authRequest),
		codes:            make(map[string]string),
		tokens:           make(map[string]*tokenRecord),
		refresh:          make(map[string]*refreshRecord),
		tickets:          make(map[string]*ticket),
	}
	if st.exchangeLifetime < 0 {
		return nil, fmt.Errorf("devidp: negative ExchangeTokenLifetime %v", st.exchangeLifetime)
	}
	if st.exchangeLifetime == 0 {
		st.exchangeLifetime = DefaultTokenLifetime
	}
	for i, u := range users {
		if err := st.addUserLocked(u); err != nil {
			return nil, fmt.Errorf("devidp: users[%d]: %w", i, err)
		}
	}
	var err error
	if st.key == nil {
		if st.key, err = newSigningKey(); err != nil {
			return nil, err
		}
	}
	if st.keyID, err = randomID(); err != nil {
		return nil, err
	}
	loginSecret, err := randomID()
	if err != nil {
		return nil, err
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, fmt.Errorf("devidp: generating crypto key: %w", err)
	}

	addr := opts.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	if host, _, err := net.SplitHostPort(addr); err != nil {
		return nil, fmt.Errorf("devidp: listen address %q: %w", addr, err)
	} else if ip := net.ParseIP(host); host == "" || (ip != nil && !ip.IsLoopback()) {
		return nil, fmt.Errorf("devidp: listen address %s is not loopback", addr)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devidp: listening on %s: %w", addr, err)
	}
	tcpAddr, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !tcpAddr.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("devidp: listen address %s is not loopback", ln.Addr())
	}
	issuer := "http://" + ln.Addr().String()

	p := &IdP{
		issuer:   issuer,
		store:    st,
		ln:       ln,
		log:      log,
		loginSec: loginSecret,
		consent:  opts.Consent,
	}
	st.clients[loginClientID] = &client{
		id:           loginClientID,
		secret:       loginSecret,
		redirectURIs: []string{issuer + callbackPath},
		loginURL:     p.loginURL,
	}

	config := &op.Config{
		CryptoKey:             cryptoKey,
		CryptoKeyId:           "devidp",
		CodeMethodS256:        true,
		GrantTypeRefreshToken: true,
		AuthMethodPost:        true,
		SupportedClaims: append(slices.Clone(op.DefaultSupportedClaims),
			ClaimRoles, ClaimGroups, ClaimScope),
	}
	p.provider, err = op.NewProvider(config, st, op.StaticIssuer(issuer), op.WithAllowInsecure())
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("devidp: creating provider: %w", err)
	}

	mux := http.NewServeMux()
	interceptor := op.NewIssuerInterceptor(p.provider.IssuerFromRequest)
	mux.Handle(loginPath, interceptor.Handler(http.HandlerFunc(p.serveLogin)))
	mux.Handle(ConsentPath, interceptor.Handler(http.HandlerFunc(p.serveConsent)))
	mux.HandleFunc(callbackPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("devidp: login complete\n"))
	})
	// RFC 8414 metadata: the same document as OpenID discovery (zitadel's
	// provider serves only the latter), for OAuth clients that look here
	// first, such as MCP clients discovering a platform's AS.
	mux.HandleFunc(oauthMetadataPath, func(w http.ResponseWriter, r *http.Request) {
		r2 := r.Clone(r.Context())
		r2.URL.Path, r2.URL.RawPath = oidc.DiscoveryEndpoint, ""
		p.provider.ServeHTTP(w, r2)
	})
	mux.Handle("/", p.provider)

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // loopback only; never through HTTP_PROXY
	p.httpc = &http.Client{
		Transport: tr,
		Timeout:   30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	p.srv = &http.Server{
		Handler:           withRequestShims(mux, p.provider.TokenEndpoint().Relative(), p.provider.AuthorizationEndpoint().Relative(), p.serveIDJAG),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := p.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("devidp server stopped", "error", err)
		}
	}()
	p.stopAfter = context.AfterFunc(ctx, func() { _ = p.Close() })
	log.Info("devidp started", "issuer", issuer, "users", len(users))
	return p, nil
}

// withRequestShims adapts two requests zitadel v3.52.0 does not handle itself:
//   - RFC 8707 resource parameters of /authorize are put into the request
//     context, for the audience of the tokens of browser logins;
//   - a token-exchange request authenticated with client_secret_post is
//     turned into client_secret_basic (zitadel reads only Basic auth for that grant);
//   - a token exchange for an ID-JAG goes to idjag (zitadel refuses that
//     requested_token_type).
func withRequestShims(next http.Handler, tokenPath, authPath string, idjag http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case authPath:
			if err := r.ParseForm(); err == nil && len(r.Form["resource"]) > 0 {
				r = r.WithContext(withResources(r.Context(), r.Form["resource"]))
			}
		case tokenPath:
			if r.Method == http.MethodPost && r.ParseForm() == nil && wantsIDJAG(r) {
				idjag(w, r)
				return
			}
			if r.Method == http.MethodPost && r.Header.Get("Authorization") == "" {
				if err := r.ParseForm(); err == nil &&
					r.PostForm.Get("grant_type") == string(oidc.GrantTypeTokenExchange) &&
					r.PostForm.Get("client_id") != "" {
					r.SetBasicAuth(url.QueryEscape(r.PostForm.Get("client_id")), url.QueryEscape(r.PostForm.Get("client_secret")))
					for _, f := range []url.Values{r.PostForm, r.Form} {
						f.Del("client_id")
						f.Del("client_secret")
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// Issuer is the exact iss of every token and the discovery base:
// "http://127.0.0.1:PORT" with no trailing slash.
func (p *IdP) Issuer() string { return p.issuer }

// TokenURL is the token endpoint ("{issuer}/oauth/token").
func (p *IdP) TokenURL() string { return p.provider.TokenEndpoint().Absolute(p.issuer) }

// JWKSURL is the JSON Web Key Set ("{issuer}/keys").
func (p *IdP) JWKSURL() string { return p.provider.KeysEndpoint().Absolute(p.issuer) }

// AuthorizationURL is the authorization endpoint ("{issuer}/authorize").
func (p *IdP) AuthorizationURL() string {
	return p.provider.AuthorizationEndpoint().Absolute(p.issuer)
}

// IntrospectionURL is the RFC 7662 endpoint ("{issuer}/oauth/introspect").
func (p *IdP) IntrospectionURL() string {
	return p.provider.IntrospectionEndpoint().Absolute(p.issuer)
}

// DiscoveryURL is "{issuer}/.well-known/openid-configuration".
func (p *IdP) DiscoveryURL() string { return p.issuer + oidc.DiscoveryEndpoint }

// PublicKey is the RS256 verification key published at JWKSURL.
func (p *IdP) PublicKey() *rsa.PublicKey { return &p.store.key.PublicKey }

// KeyID is the kid of the signing key.
func (p *IdP) KeyID() string { return p.store.keyID }

// Close stops the server: in-flight requests get up to a second, then
// connections are closed. It is idempotent.
func (p *IdP) Close() error {
	p.closeOnce.Do(func() {
		p.stopAfter()
		// Graceful for in-flight requests, but bounded: net/http counts a
		// connection that never sent a request as active for 5 s, and clients'
		// spare dials create such connections.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			p.log.Debug("devidp: forcing close", "error", err)
			if err := p.srv.Close(); err != nil {
				p.closeErr = fmt.Errorf("devidp: close: %w", err)
			}
		}
		p.httpc.CloseIdleConnections()
		p.log.Info("devidp stopped", "issuer", p.issuer)
	})
	return p.closeErr
}

// RegisterClient registers a confidential client that authenticates at the
// token endpoint with client_secret_basic or client_secret_post and may use
// the token-exchange and client_credentials grants. Its tokens are JWTs.
func (p *IdP) RegisterClient(id, secret string) error {
	if secret == "" {
		return errors.New("devidp: RegisterClient: empty secret")
	}
	return p.AddClient(ClientConfig{ID: id, Secret: secret})
}

// AddClient registers a client (see ClientConfig). Re-registering an ID
// replaces the client, except the internal login client.
func (p *IdP) AddClient(c ClientConfig) error {
	if c.ID == "" {
		return errors.New("devidp: empty client id")
	}
	if c.ID == loginClientID {
		return fmt.Errorf("devidp: client id %q is reserved", c.ID)
	}
	for _, u := range c.RedirectURIs {
		if pu, err := url.Parse(u); err != nil || pu.Scheme == "" || pu.Host == "" {
			return fmt.Errorf("devidp: client %q: invalid redirect URI %q", c.ID, u)
		}
	}
	for _, a := range c.Audience {
		if a == "" {
			return fmt.Errorf("devidp: client %q: empty audience value", c.ID)
		}
	}
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.clients[c.ID] = &client{
		id:           c.ID,
		secret:       c.Secret,
		redirectURIs: slices.Clone(c.RedirectURIs),
		audience:     slices.Clone(c.Audience),
		loginURL:     p.loginURL,
	}
	return nil
}

// EndSessions ends username's sessions: the IdP refuses its refresh
// tokens from now on (as an IdP does for a disabled user or a revoked
// session). It returns how many refresh tokens it revoked.
func (p *IdP) EndSessions(username string) int {
	u, ok := p.UserByUsername(username)
	if !ok {
		return 0
	}
	return p.store.endSessions(u.ID)
}

// UserByID returns the user whose sub is id.
func (p *IdP) UserByID(id string) (User, bool) { return p.store.user(id) }

// UserByUsername returns the user with that login name.
func (p *IdP) UserByUsername(name string) (User, bool) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	u, ok := p.store.usersByName[name]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// Exchanges returns the token exchanges allowed so far, oldest first.
func (p *IdP) Exchanges() []Exchange {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	return slices.Clone(p.store.exchanges)
}

func (p *IdP) loginURL(authRequestID string) string {
	return p.issuer + loginPath + "?authRequestID=" + url.QueryEscape(authRequestID)
}

func randomID() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("devidp: random: %w", err)
	}
	return strings.TrimRight(base64.RawURLEncoding.EncodeToString(b), "="), nil
}
