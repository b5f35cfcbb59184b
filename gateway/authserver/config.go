package authserver

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
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

// Defaults.
const (
	DefaultAccessTokenTTL  = 10 * time.Minute
	MaxAccessTokenTTL      = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultConsentTTL      = 90 * 24 * time.Hour
	DefaultKeyRotation     = 30 * 24 * time.Hour
)

// WithDefaults fills the defaults in.
func (c Config) WithDefaults() Config {
	if c.AccessTokenTTL == 0 {
		c.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if c.RefreshTokenTTL == 0 {
		c.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if c.ConsentTTL == 0 {
		c.ConsentTTL = DefaultConsentTTL
	}
	if c.KeyRotation == 0 {
		c.KeyRotation = DefaultKeyRotation
	}
	if len(c.Scopes) == 0 {
		c.Scopes = []string{"mcp"}
	}
	if len(c.IdP.Scopes) == 0 {
		c.IdP.Scopes = slices.Clone(DefaultIdPScopes)
	}
	return c
}

// Validate reports every problem with its key path (authorization_server.…).
// It checks nothing when the section is off.
func (c Config) Validate() error {
	if !c.Enabled {
		return nil
	}
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("authorization_server.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.IdP.ClientID == "" {
		bad("idp.client_id", "required: Mandate's client id at the company IdP (identity.issuer), with redirect URI <server.public_url>%s", PathCallback)
	}
	switch {
	case c.IdP.ClientSecret.IsZero() && c.IdP.ClientSecretFile == "":
		bad("idp.client_secret", "required (or client_secret_file): Mandate is a confidential client of the IdP")
	case !c.IdP.ClientSecret.IsZero() && c.IdP.ClientSecretFile != "":
		bad("idp.client_secret_file", "set client_secret or client_secret_file, not both")
	}
	if !slices.Contains(c.IdP.Scopes, "openid") {
		bad("idp.scopes", "must contain openid (Mandate signs users in with OpenID Connect), got %q", c.IdP.Scopes)
	}
	if c.IdP.Resource != "" {
		if u, err := url.Parse(c.IdP.Resource); err != nil || !u.IsAbs() || u.Fragment != "" {
			bad("idp.resource", "must be an absolute URI without fragment (RFC 8707), got %q; leave it empty for Entra ID", c.IdP.Resource)
		}
	}
	for k := range c.IdP.ExtraParams {
		switch k {
		case "client_id", "redirect_uri", "state", "nonce", "code_challenge", "code_challenge_method", "response_type", "scope":
			bad("idp.extra_params."+k, "Mandate sets %s itself", k)
		}
	}
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			bad(fmt.Sprintf("scopes[%d]", i), "invalid scope %q", s)
		}
	}
	if c.AccessTokenTTL < time.Minute || c.AccessTokenTTL > MaxAccessTokenTTL {
		bad("access_token_ttl", "must be between 1m and %s, got %s", MaxAccessTokenTTL, c.AccessTokenTTL)
	}
	if c.RefreshTokenTTL < time.Hour {
		bad("refresh_token_ttl", "must be at least 1h, got %s", c.RefreshTokenTTL)
	}
	if c.ConsentTTL < time.Hour {
		bad("consent_ttl", "must be at least 1h, got %s", c.ConsentTTL)
	}
	if c.KeyRotation < time.Hour {
		bad("key_rotation", "must be at least 1h, got %s", c.KeyRotation)
	}
	if e := c.EnterpriseManaged; e.Enabled {
		for key, v := range map[string]string{"issuer": e.Issuer, "jwks_url": e.JWKSURL} {
			if v == "" {
				continue
			}
			if u, err := url.Parse(v); err != nil || (u.Scheme != "https" && !(u.Scheme == "http" && isLoopbackHost(u.Hostname()))) || u.Host == "" {
				bad("enterprise_managed."+key, "must be an https URL (http only on loopback), got %q", v)
			}
		}
	}
	return errors.Join(errs...)
}

func isLoopbackHost(h string) bool { return h == "localhost" || h == "127.0.0.1" || h == "::1" }
