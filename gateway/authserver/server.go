// Package authserver is Mandate as the OAuth 2.1 authorization server of
// its MCP clients, in front of the company IdP (authorization_server in the
// config). See Config for what it does and docs/connect-clients.md for the
// endpoints.
//
// Files and what they own:
//   - server.go: Server, Options, routes, shared helpers (errors, audit).
//   - metadata.go: RFC 8414 metadata (both well-known paths).
//   - clients.go, cimd.go, register.go: resolving a client_id
//     (pre-registered, client ID metadata document, dynamic registration),
//     redirect URI matching, client authentication at the token endpoint.
//   - keys.go, tokens.go, token.go, revoke.go, idjag.go: signing keys and
//     JWKS; Mandate access tokens (mint, verify on the hot path); the token
//     endpoint (authorization_code, refresh_token, jwt-bearer ID-JAG);
//     revocation.
//   - authorize.go, login.go, consent.go, sessions.go, pages.go: the
//     authorization endpoint, signing in at the IdP (OIDC code flow),
//     the consent page, IdP sessions (sealed tokens, refresh).
package authserver

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

// Endpoint paths, relative to the public URL's path prefix.
const (
	PathMetadata     = "/.well-known/oauth-authorization-server"
	PathOIDCMetadata = "/.well-known/openid-configuration"
	PathAuthorize    = "/oauth/authorize"
	PathCallback     = "/oauth/callback" // the IdP redirects here
	PathConsent      = "/oauth/consent"
	PathToken        = "/oauth/token"
	PathRegister     = "/oauth/register"
	PathRevoke       = "/oauth/revoke"
	PathJWKS         = "/oauth/jwks"
)

// Options are what the gateway hands the authorization server.
type Options struct {
	// Issuer is Mandate's issuer identifier: server.public_url (its origin
	// plus path prefix, no trailing slash). It is authorization_servers[0]
	// in the protected resource metadata.
	Issuer string
	// Resource is the MCP endpoint URL (the only valid `resource`, and
	// the audience of Mandate's access tokens).
	Resource string
	// IdP is identity.issuer and its authenticator: Mandate verifies the
	// IdP access tokens it obtains at sign-in with it, exactly as it
	// verifies IdP tokens that clients present, so identity is built the
	// same way (claims mapping, audience, email_verified rules).
	IdPIssuer string
	Auth      *authn.Authenticator
	Identity  authn.Config
	Store     store.Store
	// Audit records logins, consents, token issuance, refresh reuse,
	// revocations and registrations (nil: not recorded).
	Audit  func(ctx context.Context, r *audit.Record)
	Logger *slog.Logger
	// HTTPClient talks to the IdP (discovery, token endpoint).
	HTTPClient *http.Client
	// MetadataClient fetches client ID metadata documents; nil builds the
	// SSRF-safe default (cimd.go).
	MetadataClient *http.Client
	// StateKey (32 bytes) seals what Mandate round-trips through browsers
	// and the IdP (the pending authorization request, CSRF tokens): any
	// replica can open what another sealed. The gateway derives it from
	// the storage encryption key (HKDF).
	StateKey []byte
	Now      func() time.Time
}

// Server is the authorization server. Build it with New; mount Routes.
type Server struct {
	cfg  Config
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// Parts, each owned by its files (see the package comment).
	clients  *clients.Registry
	keys     *keyRing
	sessions *sessionCache
	login    *idpLogin
}

// Route is one endpoint to mount.
type Route struct {
	Method  string
	Path    string
	Handler http.Handler
}

// VerifyAccessToken verifies a Mandate-issued access token (the hot path:
// in-memory keys and session cache, no database on a warm call) and
// returns the identity of its IdP session: built from the IdP access token
// exactly as if the client had presented that token, and carrying it as
// the raw token for token exchange. ok is false when raw is not a
// Mandate-issued token (iss differs), so the caller falls back to the IdP
// verifier.
func (s *Server) VerifyAccessToken(ctx context.Context, raw string) (id *identity.Identity, ok bool, err *authn.Error) {
	return s.verifyAccessToken(ctx, raw)
}

// New builds the authorization server: it loads (or creates) the signing
// keys from the store and checks the configuration it was given.
func New(ctx context.Context, cfg Config, opts Options) (*Server, error) {
	s := &Server{cfg: cfg, opts: opts, log: opts.Logger, now: opts.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	var err error
	if s.clients, err = clients.New(clients.Options{
		Preregistered:     cfg.Clients,
		Registration:      cfg.Registration,
		MetadataDocuments: cfg.MetadataDocuments,
		Store:             opts.Store,
		HTTPClient:        opts.MetadataClient,
		Logger:            s.log,
		Now:               s.now,
		Audit:             opts.Audit,
	}); err != nil {
		return nil, err
	}
	if s.keys, err = newKeyRing(ctx, opts.Store, cfg.KeyRotation, s.now); err != nil {
		return nil, err
	}
	s.sessions = newSessionCache(s)
	if s.login, err = newIDPLogin(ctx, s); err != nil {
		return nil, err
	}
	return s, nil
}

// Routes are the endpoints to mount on the main listener (paths relative
// to the public URL's path prefix).
func (s *Server) Routes() []Route {
	return []Route{
		{http.MethodGet, PathMetadata, http.HandlerFunc(s.handleMetadata)},
		{http.MethodGet, PathOIDCMetadata, http.HandlerFunc(s.handleMetadata)},
		{http.MethodGet, PathJWKS, http.HandlerFunc(s.handleJWKS)},
		{http.MethodGet, PathAuthorize, http.HandlerFunc(s.handleAuthorize)},
		{http.MethodPost, PathAuthorize, http.HandlerFunc(s.handleAuthorize)},
		{http.MethodGet, PathCallback, http.HandlerFunc(s.handleCallback)},
		{http.MethodPost, PathConsent, http.HandlerFunc(s.handleConsent)},
		{http.MethodPost, PathToken, http.HandlerFunc(s.handleToken)},
		{http.MethodPost, PathRevoke, http.HandlerFunc(s.handleRevoke)},
		{http.MethodPost, PathRegister, s.clients.RegisterHandler()},
	}
}

// Scopes are the scopes Mandate advertises (default [mcp]).
func (s *Server) Scopes() []string {
	if len(s.cfg.Scopes) == 0 {
		return []string{"mcp"}
	}
	return s.cfg.Scopes
}

// Run does the background work until ctx ends: key rotation, sweeping
// expired rows and unused registrations, syncing revocations from other
// replicas.
func (s *Server) Run(ctx context.Context) {
	s.run(ctx)
}

// RevokeUser ends every sign-in of a user (DELETE /admin/users/{subject}):
// their IdP sessions, refresh-token families and consents in the store,
// and what this replica holds in memory. Other replicas refuse the user's
// Mandate access tokens once they synced the revocation.
func (s *Server) RevokeUser(ctx context.Context, issuer, subject string) error {
	if err := s.opts.Store.RevokeUser(ctx, issuer, subject); err != nil {
		return err
	}
	s.forgetUser(issuer, subject)
	return nil
}
