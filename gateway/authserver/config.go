package authserver

import (
	"time"

	"github.com/mandate-gw/mandate/gateway/authserver/clients"

	"github.com/mandate-gw/mandate/internal/secret"
)

// Config is the `authorization_server` section. When Enabled is false
// (the default) Mandate is a resource server only, as before: its
// protected resource metadata names the company IdP, and clients bring IdP
// tokens.
//
// When it is on, Mandate is the authorization server of its MCP clients:
// its metadata names Mandate itself; clients register (client ID metadata
// documents, dynamic registration, or pre-registered here), the user signs
// in at the company IdP (identity.issuer) through Mandate — Mandate being
// one confidential client of the IdP — and clients get Mandate-issued
// tokens. IdP tokens stay server-side (sealed in storage) and are the
// subject tokens of every credential flow, as before. IdP access tokens
// presented directly are still accepted.
type Config struct {
	Enabled bool `yaml:"enabled"`
	// IdP is Mandate's registration as a client of the company IdP.
	IdP IdPClientConfig `yaml:"idp"`
	// Scopes are the scopes Mandate advertises (scopes_supported) and
	// grants. Default [mcp].
	Scopes []string `yaml:"scopes"`
	// AccessTokenTTL is the lifetime of Mandate-issued access tokens.
	// Default 10m, at most 1h.
	AccessTokenTTL time.Duration `yaml:"access_token_ttl"`
	// RefreshTokenTTL is how long a refresh-token family lives without
	// use. Default 720h (30 days).
	RefreshTokenTTL time.Duration `yaml:"refresh_token_ttl"`
	// ConsentTTL is how long a user's consent for a client lasts. Default
	// 2160h (90 days).
	ConsentTTL time.Duration `yaml:"consent_ttl"`
	// KeyRotation is how often the signing key is replaced. Default 720h.
	KeyRotation time.Duration `yaml:"key_rotation"`
	// Registration configures dynamic client registration (RFC 7591).
	Registration clients.RegistrationConfig `yaml:"registration"`
	// MetadataDocuments configures client ID metadata documents.
	MetadataDocuments clients.MetadataDocumentsConfig `yaml:"metadata_documents"`
	// Clients are pre-registered clients.
	Clients []clients.ClientConfig `yaml:"clients"`
	// EnterpriseManaged accepts Identity Assertion JWT Authorization Grants
	// (ID-JAG, the MCP Enterprise-Managed Authorization extension) from the
	// company IdP at the token endpoint.
	EnterpriseManaged EnterpriseConfig `yaml:"enterprise_managed"`
}

// IdPClientConfig is Mandate as an OIDC client of identity.issuer.
type IdPClientConfig struct {
	ClientID         string        `yaml:"client_id"`
	ClientSecret     secret.String `yaml:"client_secret"`
	ClientSecretFile string        `yaml:"client_secret_file"`
	// Scopes requested at the IdP. Default [openid, profile, email,
	// offline_access]. Entra ID: [openid, profile, email, offline_access,
	// api://<app id>/.default] — the .default scope makes the access token
	// one for Mandate's API (identity.audience).
	Scopes []string `yaml:"scopes"`
	// Resource, when set, is sent as the RFC 8707 resource parameter to the
	// IdP. Never set it for Entra ID (v2 endpoints reject it).
	Resource string `yaml:"resource"`
	// ExtraParams are added to the IdP's authorization request (e.g.
	// audience for Auth0, prompt).
	ExtraParams map[string]string `yaml:"extra_params"`
}

// EnterpriseConfig is the ID-JAG grant.
type EnterpriseConfig struct {
	Enabled bool `yaml:"enabled"`
	// Issuer of ID-JAGs. Default identity.issuer.
	Issuer string `yaml:"issuer"`
	// JWKSURL overrides the issuer's discovered jwks_uri.
	JWKSURL string `yaml:"jwks_url"`
}
