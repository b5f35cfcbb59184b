package devidp

import (
	"log/slog"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// client is the op.Client of every client of the IdP: the internal login
// client that Token uses, and the clients added with RegisterClient/AddClient.
// It always issues JWT access tokens.
type client struct {
	id           string
	secret       string // empty for public clients
	redirectURIs []string
	audience     []string // ClientConfig.Audience; nil: the request's resources
	loginURL     func(id string) string
}

var _ op.Client = (*client)(nil)

func (c *client) GetID() string                        { return c.id }
func (c *client) RedirectURIs() []string               { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string     { return nil }
func (c *client) LoginURL(id string) string            { return c.loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(string) bool           { return true }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }

func (c *client) ApplicationType() op.ApplicationType {
	if c.secret == "" {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}

func (c *client) AuthMethod() oidc.AuthMethod {
	if c.secret == "" {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}

func (c *client) GrantTypes() []oidc.GrantType {
	if c.secret == "" {
		return []oidc.GrantType{oidc.GrantTypeCode}
	}
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken, oidc.GrantTypeClientCredentials, oidc.GrantTypeTokenExchange}
}

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// authRequest is the op.AuthRequest kept between /authorize, the login page,
// the callback and the code exchange.
type authRequest struct {
	id            string
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge *oidc.CodeChallenge
	audience      []string
	lifetime      time.Duration // of the access token; 0 = default
	created       time.Time
	loginHint     string // OIDC login_hint: a passwordless user named here skips the picker

	// ticket binds the request to a programmatic login started by Token:
	// only the holder of the ticket secret may complete it, as ticketUser.
	ticketSecret string
	ticketUser   string

	// consentToken, set once the user signed in at an IdP with
	// Options.Consent, must come back with the consent form's decision.
	consentToken string

	userID   string
	done     bool
	authTime time.Time
}

var _ op.AuthRequest = (*authRequest)(nil)

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAudience() []string                 { return a.audience }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }

func (a *authRequest) GetAMR() []string {
	if a.done {
		return []string{"pwd"}
	}
	return nil
}

// LogValue keeps state, nonce and ticket out of zitadel's logs.
func (a *authRequest) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", a.id),
		slog.String("client_id", a.clientID),
		slog.Any("scopes", a.scopes),
	)
}

// refreshRecord is a refresh token: issued with the authorization code
// grant when offline_access was granted to a confidential client, rotated
// on every use. It is also the op.RefreshTokenRequest of the refresh grant.
type refreshRecord struct {
	token    string
	userID   string
	clientID string
	scopes   []string // granted at sign-in
	current  []string // requested for this refresh (a subset); nil: scopes
	audience []string
	amr      []string
	authTime time.Time
	expiry   time.Time
}

var _ op.RefreshTokenRequest = (*refreshRecord)(nil)

func (r *refreshRecord) GetAMR() []string                 { return r.amr }
func (r *refreshRecord) GetAudience() []string            { return r.audience }
func (r *refreshRecord) GetAuthTime() time.Time           { return r.authTime }
func (r *refreshRecord) GetClientID() string              { return r.clientID }
func (r *refreshRecord) GetSubject() string               { return r.userID }
func (r *refreshRecord) SetCurrentScopes(scopes []string) { r.current = slices.Clone(scopes) }

func (r *refreshRecord) GetScopes() []string {
	if r.current != nil {
		return r.current
	}
	return r.scopes
}

// clientTokenRequest is the op.TokenRequest of the client_credentials grant.
type clientTokenRequest struct {
	clientID string
	scopes   []string
}

func (r *clientTokenRequest) GetSubject() string    { return r.clientID }
func (r *clientTokenRequest) GetAudience() []string { return []string{r.clientID} }
func (r *clientTokenRequest) GetScopes() []string   { return r.scopes }

// tokenRecord is what the IdP remembers of an issued access token, for the
// userinfo, introspection and revocation endpoints.
type tokenRecord struct {
	id       string
	subject  string
	clientID string
	audience []string
	scopes   []string
	expiry   time.Time
}

func cloneStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return slices.Clone(s)
}
