package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
)

// FlowAuthorizationCode is the credentials.flow value of this flow.
const FlowAuthorizationCode = "authorization_code"

// PlatformMCP is Config.Platform for kind mcp upstreams: authorization_code
// may discover their authorization server and defaults resource to their
// URL.
const PlatformMCP = "mcp"

// AuthorizationCodeConfig is the configuration of flow authorization_code:
// per-user grants. Each user consents once at the platform's authorization
// server (authorization code + PKCE, through Mandate's connect pages, see
// Connector); Mandate keeps the user's grant in a GrantStore and refreshes
// it.
type AuthorizationCodeConfig struct {
	ClientConfig
	CacheConfig
	AuthorizationURL string
	RevocationURL    string
	Scopes           []string
	Resource         []string
	Discover         bool
	UpstreamURL      string
}

var authorizationCodeType = &FlowType{
	Name: FlowAuthorizationCode,
	Keys: []string{"authorization_url", "revocation_url", "discover"},
	// A public client (PKCE, no secret) is allowed: client ID metadata
	// documents and some registrations have no secret.
	ClientAuthOptional: true,
	EndpointOptional:   func(c *Config) bool { return c.Discover },
	Validate: func(c *Config, bad Problems) {
		if c.Discover {
			if c.Platform != "" && c.Platform != PlatformMCP {
				bad("discover", "applies only to kind mcp upstreams (their protected resource metadata names the authorization server); set authorization_url, token_url and client_id instead")
			}
			if c.AuthorizationURL != "" {
				bad("authorization_url", "discover finds the authorization endpoint; set one or the other")
			}
			if c.TokenURL != "" {
				bad("token_url", "discover finds the token endpoint; set one or the other")
			}
			if c.ClientID == "" && (!c.ClientSecret.IsZero() || c.ClientSecretFile != "" || c.ClientAuth != "") {
				bad("client_id", "required with a client secret or client_auth")
			}
		} else {
			switch {
			case c.AuthorizationURL == "":
				bad("authorization_url", "required for flow %s (or discover: true on a kind mcp upstream)", FlowAuthorizationCode)
			default:
				if err := checkEndpoint(c.AuthorizationURL); err != nil {
					bad("authorization_url", "%v", err)
				}
			}
		}
		if c.RevocationURL != "" {
			if err := checkEndpoint(c.RevocationURL); err != nil {
				bad("revocation_url", "%v", err)
			}
		}
	},
	Parse: func(ft *FlowType, c *Config) FlowConfig {
		cc, cache := parseClient(ft, c)
		ac := &AuthorizationCodeConfig{
			ClientConfig: cc, CacheConfig: cache,
			AuthorizationURL: c.AuthorizationURL, RevocationURL: c.RevocationURL,
			Scopes: c.Scopes, Resource: c.Resource, Discover: c.Discover,
		}
		if c.Platform == PlatformMCP {
			ac.UpstreamURL = c.UpstreamURL
		}
		return ac
	},
}

func (*AuthorizationCodeConfig) FlowName() string { return FlowAuthorizationCode }

func (c *AuthorizationCodeConfig) newFlow(env *flowEnv) (Flow, error) {
	base, _, err := env.endpoint(&c.ClientConfig)
	if err != nil {
		return nil, err
	}
	f := &authCodeFlow{b: env.b, upstream: env.upstream, cfg: c, base: base, digest: grantDigest(env.upstream, c)}
	if !c.Discover {
		res := c.Resource
		if len(res) == 0 && c.UpstreamURL != "" {
			res = []string{canonicalResource(c.UpstreamURL)}
		}
		f.res.Store(&resolved{authURL: c.AuthorizationURL, revokeURL: c.RevocationURL, ep: base, scopes: c.Scopes, resource: res})
	}
	return f, nil
}

// grantDigest is GrantKey.ConfigDigest: what a grant was obtained under
// (the authorization server, the client, the scopes and resources). The
// cache and timeout settings and the secrets are left out: changing them
// keeps the users' grants.
func grantDigest(upstream string, c *AuthorizationCodeConfig) string {
	j, err := json.Marshal(struct {
		AuthorizationURL, TokenURL, ClientID, UpstreamURL string
		Scopes, Resource                                  []string
		Discover                                          bool
	}{c.AuthorizationURL, c.TokenURL, c.ClientID, c.UpstreamURL, c.Scopes, c.Resource, c.Discover})
	if err != nil {
		panic("credentials: encoding the grant digest: " + err.Error())
	}
	h := sha256.New()
	for _, b := range [][]byte{[]byte("mandate-grant-v1"), []byte(upstream), j} {
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalResource is an MCP server's URL as an RFC 8707 resource: no
// fragment, no trailing slash.
func canonicalResource(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Fragment = ""
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath = ""
	return u.String()
}

// resolved is where the flow talks to the platform: configured, or found
// by discovery (once, then kept until the next reload).
type resolved struct {
	authURL   string
	revokeURL string
	ep        *endpoint // token endpoint with the client (configured, metadata document or registered)
	scopes    []string
	resource  []string
}

// authCodeFlow is authorization_code: the users' grants, kept in the
// broker's GrantStore. It is the upstream's Connector too.
type authCodeFlow struct {
	b        *Broker
	upstream string
	cfg      *AuthorizationCodeConfig
	base     *endpoint // the configured client (its token URL empty with discover)
	digest   string

	mu  sync.Mutex // serialises discovery
	res atomic.Pointer[resolved]
}

var (
	_ Flow      = (*authCodeFlow)(nil)
	_ Connector = (*authCodeFlow)(nil)
)

// errNoGrantStore: the gateway was built without grant storage.
var errNoGrantStore = errors.New("this upstream needs per-user grants (flow authorization_code), but the gateway has no grant storage configured (storage)")

func (*authCodeFlow) Name() string         { return FlowAuthorizationCode }
func (*authCodeFlow) ServiceAccount() bool { return false }

// Exchange returns the user's access token from their grant, refreshing it
// (once across replicas: GrantStore.Update) when it expired.
func (f *authCodeFlow) Exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	if f.b.grants == nil {
		return nil, &Error{Err: errNoGrantStore}
	}
	k := f.Key(id.Issuer, id.Subject)
	g, err := f.b.grants.Get(ctx, k)
	switch {
	case errors.Is(err, ErrNoGrant):
		return nil, f.consent("no_grant", "")
	case err != nil:
		return nil, f.storageErr("reading", err)
	case g.Broken:
		return nil, f.consent("broken", g.BrokenReason)
	case f.usable(g, f.b.now()):
		f.touch(ctx, k)
		return grantToken(g), nil
	case g.RefreshToken == "":
		return nil, f.consent("broken", "the platform's access token expired and it issued no refresh token")
	}
	r, err := f.resolve(ctx)
	if err != nil {
		return nil, err
	}
	refreshed, broke := false, false
	start := f.b.now()
	g, err = f.b.grants.Update(ctx, k, func(cur Grant) (Grant, error) {
		refreshed = false
		// Another request or replica may have refreshed (or broken) the
		// grant while this one waited for the lock: its refresh token is
		// spent, use what it stored.
		if cur.Broken || f.usable(cur, f.b.now()) || cur.RefreshToken == "" {
			return cur, nil
		}
		tr, err := f.post(ctx, r.ep, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {cur.RefreshToken}}, r.resource)
		if err != nil {
			var oe *Error
			if errors.As(err, &oe) && oe.Code == "invalid_grant" {
				cur.Broken = true
				cur.BrokenReason = "the platform refused to renew it (invalid_grant)"
				if oe.Description != "" {
					cur.BrokenReason += ": " + oe.Description
				}
				cur.AccessToken, cur.RefreshToken = "", ""
				broke = true
				return cur, nil
			}
			return Grant{}, err
		}
		refreshed = true
		return applyTokenResponse(cur, tr), nil
	})
	if err == nil && (refreshed || broke) && f.b.onRefresh != nil {
		f.b.onRefresh(ctx, GrantRefresh{Upstream: f.upstream, Issuer: id.Issuer, Subject: id.Subject,
			PlatformSubject: g.PlatformSubject, Broken: broke, Reason: g.BrokenReason, Duration: f.b.now().Sub(start)})
	}
	switch {
	case errors.Is(err, ErrNoGrant):
		return nil, f.consent("no_grant", "")
	case err != nil:
		var oe *Error
		if errors.As(err, &oe) {
			return nil, oe
		}
		return nil, f.storageErr("refreshing", err)
	case g.Broken:
		return nil, f.consent("broken", g.BrokenReason)
	case !refreshed && !f.usable(g, f.b.now()):
		return nil, f.consent("broken", "the platform's access token expired and it issued no refresh token")
	}
	f.touch(ctx, k)
	return grantToken(g), nil
}

// touch records that the grant was used. Exchange runs when the broker has
// no cached token, so "last used" is when Mandate last took a token from
// the grant (at most a token lifetime before the last call).
func (f *authCodeFlow) touch(ctx context.Context, k GrantKey) {
	if err := f.b.grants.Touch(ctx, k); err != nil && !errors.Is(err, ErrNoGrant) {
		f.b.log.Debug("recording a grant's use failed", "upstream", f.upstream, "error", err)
	}
}

// usable: g's access token is valid for at least the cache skew (so the
// broker caches it), or has no known expiry and cannot be refreshed.
func (f *authCodeFlow) usable(g Grant, now time.Time) bool {
	if g.AccessToken == "" {
		return false
	}
	if g.Expiry.IsZero() {
		return g.RefreshToken == ""
	}
	return now.Before(g.Expiry.Add(-f.cfg.CacheSkew))
}

// errGrantStorage is what the user hears when Mandate's own storage of
// their grant failed: not the platform's fault, and never the database's
// address or user (the operators' log has the error).
var errGrantStorage = errors.New("Mandate could not reach the storage of your connection")

// storageErr logs a grant storage failure for the operators and returns
// the user's error for it.
func (f *authCodeFlow) storageErr(op string, err error) error {
	f.b.log.Warn("per-user grant storage failed", "upstream", f.upstream, "operation", op, "error", err)
	return &Error{Err: errGrantStorage, Retryable: true,
		Hint: "Mandate's storage of your " + f.upstream + " connection is unavailable (a problem of the gateway, not of the platform or your account); retry later"}
}

func (f *authCodeFlow) consent(reason, detail string) error {
	return &ConsentRequiredError{Upstream: f.upstream, Reason: reason, Detail: detail, Scopes: f.Scopes()}
}

func grantToken(g Grant) *Token {
	return &Token{
		AccessToken: secret.String(g.AccessToken), TokenType: g.TokenType, Expiry: g.Expiry,
		Scope: g.Scope, PlatformSubject: g.PlatformSubject,
	}
}

// applyTokenResponse puts a token response into g: a rotated refresh token
// replaces the old one, an absent one keeps it.
func applyTokenResponse(g Grant, tr *tokenResponse) Grant {
	g.AccessToken, g.TokenType, g.Expiry = tr.AccessToken, tr.TokenType, tr.Expiry
	if tr.Scope != "" {
		g.Scope = tr.Scope
	}
	if tr.RefreshToken != "" {
		g.RefreshToken = tr.RefreshToken
	}
	// The platform identity, when the response says: the id_token's sub,
	// else the JWT access token's (labels only: the token came straight
	// from the token endpoint).
	if s := subjectOf(jwtClaims(tr.IDToken), "sub"); s != "" {
		g.PlatformSubject = s
	} else if s := subjectOf(jwtClaims(tr.AccessToken), "sub"); s != "" {
		g.PlatformSubject = s
	}
	return g
}

// post sends a token request with the client's authentication (a public
// client sends its client_id) and the resources.
func (f *authCodeFlow) post(ctx context.Context, ep *endpoint, form url.Values, resource []string) (*tokenResponse, error) {
	if ep.auth == "" {
		form.Set("client_id", ep.clientID)
	}
	for _, r := range resource {
		form.Add("resource", r)
	}
	return ep.post(ctx, form)
}

// resolve returns the endpoints and client, discovering them on first use.
func (f *authCodeFlow) resolve(ctx context.Context) (*resolved, error) {
	if r := f.res.Load(); r != nil {
		return r, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.res.Load(); r != nil {
		return r, nil
	}
	r, err := f.discover(ctx)
	if err != nil {
		var oe *Error
		if errors.As(err, &oe) {
			return nil, oe
		}
		return nil, &Error{Err: fmt.Errorf("discovering the authorization server of %s: %w", f.cfg.UpstreamURL, err), Retryable: true,
			Hint: "Mandate could not find where to connect your account for this upstream (discovery of its authorization server failed; the upstream may be down or misconfigured): retry later, or report it to the Mandate administrators"}
	}
	f.res.Store(r)
	return r, nil
}

// Connector.

// Key implements Connector.
func (f *authCodeFlow) Key(issuer, subject string) GrantKey {
	return GrantKey{Issuer: issuer, Subject: subject, Upstream: f.upstream, ConfigDigest: f.digest}
}

// Scopes implements Connector: the configured scopes, or those the
// upstream's protected resource metadata lists (once discovered).
func (f *authCodeFlow) Scopes() []string {
	if r := f.res.Load(); r != nil {
		return r.scopes
	}
	return f.cfg.Scopes
}

// AuthCodeURL implements Connector.
func (f *authCodeFlow) AuthCodeURL(ctx context.Context, state, codeChallenge, redirectURI, loginHint string) (string, error) {
	if state == "" || codeChallenge == "" || redirectURI == "" {
		return "", errors.New("credentials: AuthCodeURL needs state, a PKCE challenge and the redirect URI")
	}
	r, err := f.resolve(ctx)
	if err != nil {
		return "", f.fill(err)
	}
	u, err := url.Parse(r.authURL)
	if err != nil {
		return "", fmt.Errorf("authorization endpoint of %s: %w", f.upstream, err)
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", r.ep.clientID)
	q.Set("redirect_uri", redirectURI)
	q.Set("state", state)
	q.Set("code_challenge", codeChallenge)
	q.Set("code_challenge_method", "S256")
	if len(r.scopes) > 0 {
		q.Set("scope", strings.Join(r.scopes, " "))
	}
	for _, res := range r.resource {
		q.Add("resource", res)
	}
	if loginHint != "" {
		q.Set("login_hint", loginHint)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Redeem implements Connector.
func (f *authCodeFlow) Redeem(ctx context.Context, k GrantKey, code, verifier, redirectURI string) (Grant, error) {
	if f.b.grants == nil {
		return Grant{}, f.fill(&Error{Err: errNoGrantStore})
	}
	if k.Upstream != f.upstream || k.ConfigDigest != f.digest || k.Subject == "" {
		return Grant{}, fmt.Errorf("credentials: grant key for %q/%q does not belong to upstream %s in this configuration", k.Upstream, k.Subject, f.upstream)
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
	defer cancel()
	r, err := f.resolve(ctx)
	if err != nil {
		return Grant{}, f.fill(err)
	}
	tr, err := f.post(ctx, r.ep, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier},
	}, r.resource)
	if err != nil {
		return Grant{}, f.fill(err)
	}
	g := applyTokenResponse(Grant{ClientID: r.ep.clientID}, tr)
	if err := f.b.grants.Put(ctx, k, g); err != nil {
		return Grant{}, fmt.Errorf("storing your grant at %s: %w", f.upstream, err)
	}
	f.b.PurgeUpstream(k.Issuer, k.Subject, f.upstream)
	return g, nil
}

// Disconnect implements Connector. The grant is deleted even when the
// platform could not revoke it; the error then says so.
func (f *authCodeFlow) Disconnect(ctx context.Context, k GrantKey) error {
	if f.b.grants == nil {
		return f.fill(&Error{Err: errNoGrantStore})
	}
	defer f.b.PurgeUpstream(k.Issuer, k.Subject, f.upstream)
	g, err := f.b.grants.Get(ctx, k)
	if errors.Is(err, ErrNoGrant) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading your grant at %s: %w", f.upstream, err)
	}
	var revokeErr error
	if !g.Broken {
		rctx, cancel := context.WithTimeout(ctx, f.cfg.Timeout)
		revokeErr = f.revoke(rctx, g)
		cancel()
	}
	if err := f.b.grants.Delete(ctx, k); err != nil && !errors.Is(err, ErrNoGrant) {
		return fmt.Errorf("deleting your grant at %s: %w", f.upstream, err)
	}
	if revokeErr != nil {
		return fmt.Errorf("your grant at %s was deleted, but the platform did not confirm its revocation: %w", f.upstream, revokeErr)
	}
	return nil
}

// revoke revokes g's refresh token, then its access token, at the
// revocation endpoint (RFC 7009); nothing without one.
func (f *authCodeFlow) revoke(ctx context.Context, g Grant) error {
	r, err := f.resolve(ctx)
	if err != nil {
		return f.fill(err)
	}
	if r.revokeURL == "" {
		return nil
	}
	ep := *r.ep
	ep.url = r.revokeURL
	for _, t := range []struct{ tok, hint string }{{g.RefreshToken, "refresh_token"}, {g.AccessToken, "access_token"}} {
		if t.tok == "" {
			continue
		}
		if err := f.revokeOne(ctx, &ep, t.tok, t.hint); err != nil {
			return f.fill(err)
		}
	}
	return nil
}

func (f *authCodeFlow) revokeOne(ctx context.Context, ep *endpoint, tok, hint string) error {
	form := url.Values{"token": {tok}, "token_type_hint": {hint}}
	if ep.auth == "" {
		form.Set("client_id", ep.clientID)
	}
	req, err := ep.request(ctx, form)
	if err != nil {
		return &Error{Err: err}
	}
	resp, err := ep.client.Do(req)
	if err != nil {
		return &Error{Err: redactURLError(err), Retryable: ctx.Err() == nil}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	body = []byte(scrub(string(body), form, ep.secret.Reveal()))
	return parseErrorResponse(resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Location"), body)
}

// fill names the upstream and flow in an *Error.
func (f *authCodeFlow) fill(err error) error {
	var oe *Error
	if errors.As(err, &oe) {
		oe.Upstream, oe.Flow = f.upstream, FlowAuthorizationCode
	}
	return err
}
