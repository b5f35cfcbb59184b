package authserver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// DefaultIdPScopes are requested at the IdP when authorization_server.idp.scopes
// is empty.
var DefaultIdPScopes = []string{oidc.ScopeOpenID, "profile", "email", oidc.ScopeOfflineAccess}

// Timings of the sign-in.
const (
	// pendingTTL bounds the time between the client's authorization
	// request and the IdP's callback (and a consent page's lifetime).
	pendingTTL = 10 * time.Minute
	// signInTTL is the lifetime of the sign-in cookie: within it a second
	// authorization request in the same browser skips the IdP (as long as
	// the IdP session is alive).
	signInTTL = 12 * time.Hour
	// discoveryRetry is the least time between two discovery attempts
	// after a failure (sign-ins in between get the failure at once).
	discoveryRetry = 2 * time.Second
	// idpTimeout bounds one call to the IdP (discovery, token endpoint).
	idpTimeout = 15 * time.Second
)

// idpLogin is Mandate as one confidential OIDC client of the company IdP
// (authorization_server.idp): discovery (lazy, retried: the IdP may be down
// when Mandate starts), the authorization URL, the code exchange, ID token
// verification and refresh. It also holds the sign-in side's sealer and
// cookie settings. Safe for concurrent use.
type idpLogin struct {
	s            *Server
	issuer       string // identity.issuer
	clientID     string
	clientSecret string
	scopes       []string
	resource     string
	extra        map[string]string
	httpc        *http.Client
	seal         *sealer
	cookies      cookieNames

	mu       sync.Mutex
	disc     *discovered
	lastFail time.Time
	lastErr  error
}

// discovered is what discovery yields: the OAuth client and the ID token
// verifier.
type discovered struct {
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func newIDPLogin(ctx context.Context, s *Server) (*idpLogin, error) {
	c := s.cfg.IdP
	l := &idpLogin{
		s:        s,
		issuer:   s.opts.IdPIssuer,
		clientID: c.ClientID,
		scopes:   c.Scopes,
		resource: c.Resource,
		extra:    c.ExtraParams,
		httpc:    s.opts.HTTPClient,
	}
	if len(l.scopes) == 0 {
		l.scopes = DefaultIdPScopes
	}
	if l.httpc == nil {
		l.httpc = &http.Client{Timeout: idpTimeout}
	}
	l.clientSecret = c.ClientSecret.Reveal()
	if c.ClientSecretFile != "" {
		b, err := os.ReadFile(c.ClientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("authorization_server.idp.client_secret_file: %w", err)
		}
		l.clientSecret = strings.TrimSpace(string(b))
	}
	var err error
	if l.seal, err = newSealer(s.opts.StateKey); err != nil {
		return nil, err
	}
	if l.cookies, err = newCookieNames(s.opts.Issuer); err != nil {
		return nil, err
	}
	return l, nil
}

// errIdPUnavailable: discovery failed (the IdP is down or misconfigured).
var errIdPUnavailable = errors.New("the identity provider is not reachable")

// provider returns the discovered IdP, discovering it now if needed. A
// failure is remembered for discoveryRetry so that a burst of sign-ins
// while the IdP is down does not hammer it.
func (l *idpLogin) provider(ctx context.Context) (*discovered, error) {
	if l.issuer == "" || l.clientID == "" {
		return nil, errors.New("Mandate is not registered at the identity provider: set identity.issuer and authorization_server.idp.client_id")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.disc != nil {
		return l.disc, nil
	}
	now := time.Now()
	if l.lastErr != nil && now.Sub(l.lastFail) < discoveryRetry {
		return nil, l.lastErr
	}
	ctx, cancel := context.WithTimeout(ctx, idpTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, l.httpc), l.issuer)
	if err != nil {
		l.lastFail, l.lastErr = now, fmt.Errorf("%w: OIDC discovery at %s failed: %v", errIdPUnavailable, l.issuer, err)
		l.s.log.Warn("identity provider discovery failed", "issuer", l.issuer, "error", err)
		return nil, l.lastErr
	}
	// The verifier's key set keeps its own (uncancelled) context.
	l.disc = &discovered{
		oauth: oauth2.Config{
			ClientID:     l.clientID,
			ClientSecret: l.clientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  l.s.opts.Issuer + PathCallback,
			Scopes:       l.scopes,
		},
		verifier: p.VerifierContext(oidc.ClientContext(context.Background(), l.httpc), &oidc.Config{ClientID: l.clientID}),
	}
	l.lastErr = nil
	return l.disc, nil
}

// authCodeURL is the IdP authorization URL for one sign-in: PKCE S256,
// the nonce, the configured resource (only when set: Entra ID v2 refuses
// it) and extra parameters, then what the client asked to forward
// (login_hint, prompt=login|select_account).
func (l *idpLogin) authCodeURL(d *discovered, state, verifier, nonce string, forward url.Values) string {
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(verifier), oidc.Nonce(nonce)}
	if l.resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", l.resource))
	}
	for k, v := range l.extra {
		if _, ok := forward[k]; !ok {
			opts = append(opts, oauth2.SetAuthURLParam(k, v))
		}
	}
	for k, v := range forward {
		opts = append(opts, oauth2.SetAuthURLParam(k, v[0]))
	}
	return d.oauth.AuthCodeURL(state, opts...)
}

// exchange redeems the IdP's code (with the PKCE verifier) and verifies
// the ID token (issuer, audience = Mandate's client id, expiry, nonce).
func (l *idpLogin) exchange(ctx context.Context, d *discovered, code, verifier, nonce string) (*oauth2.Token, *oidc.IDToken, string, error) {
	ctx, cancel := context.WithTimeout(ctx, idpTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, l.httpc)
	opts := []oauth2.AuthCodeOption{oauth2.VerifierOption(verifier)}
	if l.resource != "" {
		opts = append(opts, oauth2.SetAuthURLParam("resource", l.resource))
	}
	tok, err := d.oauth.Exchange(ctx, code, opts...)
	if err != nil {
		return nil, nil, "", fmt.Errorf("redeeming the identity provider's code: %s", describeOAuthErr(err))
	}
	if tok.AccessToken == "" {
		return nil, nil, "", errors.New("the identity provider's token response has no access_token")
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, nil, "", errors.New("the identity provider's token response has no id_token (is openid among authorization_server.idp.scopes?)")
	}
	idt, err := d.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, nil, "", fmt.Errorf("the identity provider's ID token is not valid: %v", err)
	}
	if idt.Nonce != nonce {
		return nil, nil, "", errors.New("the identity provider's ID token does not carry this sign-in's nonce")
	}
	return tok, idt, raw, nil
}

// refresh redeems an IdP refresh token at the IdP's token endpoint (x/oauth2,
// Mandate's client credentials). A refusal (invalid_grant: user disabled,
// session revoked) returns an error wrapping ErrSessionEnded.
func (l *idpLogin) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	if refreshToken == "" {
		return nil, fmt.Errorf("%w: the identity provider issued no refresh token (add offline_access to authorization_server.idp.scopes)", ErrSessionEnded)
	}
	d, err := l.provider(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, idpTimeout)
	defer cancel()
	ctx = context.WithValue(ctx, oauth2.HTTPClient, l.refreshClient())
	tok, err := d.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		// Refusals that retrying cannot change end the session;
		// invalid_client (Mandate's own credentials) and transport
		// failures do not.
		if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || re.ErrorCode == "unauthorized_client" ||
			re.ErrorCode == "unsupported_grant_type") {
			return nil, fmt.Errorf("%w: refresh refused: %s", ErrSessionEnded, describeOAuthErr(err))
		}
		return nil, fmt.Errorf("refreshing at the identity provider: %s", describeOAuthErr(err))
	}
	return tok, nil
}

// refreshClient is the IdP client with the scope added to refresh_token
// grants. x/oauth2 sends none, which RFC 6749 §6 allows (the original
// scope), but Entra ID v2 wants the scope of the token it refreshes
// (scope "Required" on the refresh request of its authorization code flow
// page; without it a single-app setup gets AADSTS90009). Sending the
// scopes of the sign-in is valid everywhere.
func (l *idpLogin) refreshClient() *http.Client {
	c := *l.httpc
	next := c.Transport
	if next == nil {
		next = http.DefaultTransport
	}
	c.Transport = refreshScope{next: next, scope: strings.Join(l.scopes, " ")}
	return &c
}

// refreshScope adds scope to refresh_token requests that have none.
type refreshScope struct {
	next  http.RoundTripper
	scope string
}

func (t refreshScope) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method != http.MethodPost || r.Body == nil {
		return t.next.RoundTrip(r)
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	_ = r.Body.Close()
	if err != nil {
		return nil, err
	}
	form, err := url.ParseQuery(string(b))
	if err == nil && form.Get("grant_type") == "refresh_token" && form.Get("scope") == "" {
		form.Set("scope", t.scope)
		b = []byte(form.Encode())
	}
	r2 := r.Clone(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(b))
	r2.ContentLength = int64(len(b))
	r2.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
	return t.next.RoundTrip(r2)
}

// describeOAuthErr shortens an x/oauth2 error to its OAuth error code and
// description (never the response body, which an IdP may fill with
// anything).
func describeOAuthErr(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		msg := "an error response"
		if re.Response != nil {
			msg = "HTTP " + re.Response.Status
		}
		if re.ErrorCode != "" {
			msg = re.ErrorCode
			if re.ErrorDescription != "" {
				msg += ": " + re.ErrorDescription
			}
		}
		return msg
	}
	return err.Error()
}
