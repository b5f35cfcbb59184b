package authn

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
)

// Defaults for the identity section.
const (
	DefaultClockSkew  = 30 * time.Second
	DefaultClaimSub   = "sub"
	DefaultClaimEmail = "email"
	DefaultClaimRoles = "roles"
	DefaultClaimGroup = "groups"
	// MaxTokenBytes bounds the size of a bearer token we are willing to parse.
	MaxTokenBytes = 16 << 10
)

// DefaultAlgorithms is the signature algorithm allowlist when none is configured.
var DefaultAlgorithms = []string{"RS256", "ES256"}

// supportedAlgorithms are the asymmetric JWS algorithms Mandate accepts in an
// allowlist. Symmetric (HS*) and "none" are never accepted: a resource server
// cannot hold the IdP's shared secret safely, and HS256 signed with a public
// key is a classic forgery.
var supportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Config is the `identity` section: how Mandate authenticates the end user
// from the OIDC/OAuth access token an MCP client presents.
type Config struct {
	// Issuer is the IdP's issuer URL; the token's iss must match it exactly
	// (a trailing slash matters).
	Issuer string `yaml:"issuer"`
	// Audience must be contained in the token's aud. Default: the MCP
	// endpoint URL (server.public_url + "/mcp").
	Audience string `yaml:"audience"`
	// JWKSURL, if set, is used instead of the jwks_uri from OIDC discovery.
	JWKSURL string `yaml:"jwks_url"`
	// Algorithms is the JWS algorithm allowlist. Default [RS256, ES256].
	Algorithms []string `yaml:"algorithms"`
	// ClockSkew is the tolerance applied to exp and nbf. Default 30s.
	ClockSkew time.Duration `yaml:"clock_skew"`
	// RequiredScopes must all be present in the token's scope (or scp) claim.
	// Missing ones get 403 insufficient_scope.
	RequiredScopes []string `yaml:"required_scopes"`
	// Claims maps identity fields to token claims (dotted paths allowed).
	Claims ClaimsConfig `yaml:"claims"`
	// TrustUnverifiedEmail accepts email-like claims (email,
	// preferred_username, upn, unique_name, ...) as identifiers although the
	// token does not carry email_verified: true. By default such a claim
	// identifies a user only when email_verified is true: as the subject
	// claim (else 401) and in subject templates (else the call fails). Set
	// it only for an IdP that issues nothing but verified values in those
	// claims (e.g. Entra ID upn in a tenant with verified domains only).
	TrustUnverifiedEmail bool `yaml:"trust_unverified_email"`
	// RequireTyp, when set, must match the token's JOSE typ header (RFC 9068
	// access tokens: at+jwt), compared case-insensitively with an optional
	// "application/" prefix. It keeps ID tokens and other JWTs the IdP signs
	// from being used as access tokens. Default "" (no check).
	RequireTyp string `yaml:"require_typ"`
}

// ClaimsConfig names the claims that carry each identity field. Dotted paths
// (realm_access.roles) walk nested objects. Values may be a string or a list.
type ClaimsConfig struct {
	// Subject claim. Default "sub".
	Subject string `yaml:"subject"`
	// Email claim. Default "email".
	Email string `yaml:"email"`
	// Roles claim. Default "roles".
	Roles string `yaml:"roles"`
	// Groups claim. Default "groups".
	Groups string `yaml:"groups"`
}

// WithDefaults returns c with every unset field at its default; audience
// defaults to defaultAudience.
func (c Config) WithDefaults(defaultAudience string) Config {
	if c.Audience == "" {
		c.Audience = defaultAudience
	}
	if len(c.Algorithms) == 0 {
		c.Algorithms = slices.Clone(DefaultAlgorithms)
	}
	if c.ClockSkew == 0 {
		c.ClockSkew = DefaultClockSkew
	}
	if c.Claims.Subject == "" {
		c.Claims.Subject = DefaultClaimSub
	}
	if c.Claims.Email == "" {
		c.Claims.Email = DefaultClaimEmail
	}
	if c.Claims.Roles == "" {
		c.Claims.Roles = DefaultClaimRoles
	}
	if c.Claims.Groups == "" {
		c.Claims.Groups = DefaultClaimGroup
	}
	return c
}

// SubjectIsEmailLike reports whether the subject claim holds an email
// address or another user-editable name (identity.EmailLikeClaim, or the
// same claim as the email), which identifies a user only when verified.
func (c Config) SubjectIsEmailLike() bool {
	return identity.EmailLikeClaim(c.Claims.Subject) || (c.Claims.Subject != "" && c.Claims.Subject == c.Claims.Email)
}

// Validate reports every problem with its key path. It has no side effects.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("identity.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	if c.Issuer == "" {
		bad("issuer", "required: the issuer URL of your IdP (exact, as in its tokens' iss claim)")
	} else if err := checkURL(c.Issuer); err != nil {
		bad("issuer", "%v", err)
	}
	if c.JWKSURL != "" {
		if err := checkURL(c.JWKSURL); err != nil {
			bad("jwks_url", "%v", err)
		}
	}
	for i, a := range c.Algorithms {
		if !slices.Contains(supportedAlgorithms, a) {
			if strings.HasPrefix(strings.ToUpper(a), "HS") || strings.EqualFold(a, "none") {
				bad(fmt.Sprintf("algorithms[%d]", i), "%q is not allowed: only asymmetric signatures can be verified safely by a resource server", a)
			} else {
				bad(fmt.Sprintf("algorithms[%d]", i), "unknown algorithm %q (supported: %s)", a, strings.Join(supportedAlgorithms, ", "))
			}
		}
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		bad("clock_skew", "must be between 0 and 5m, got %s", c.ClockSkew)
	}
	if t := c.RequireTyp; t != "" && (strings.ContainsAny(t, " \t\r\n\"") || strings.TrimPrefix(strings.ToLower(t), "application/") == "") {
		bad("require_typ", "%q is not a media type such as at+jwt", t)
	}
	for i, s := range c.RequiredScopes {
		if s == "" || strings.ContainsAny(s, " \t\"\\") {
			bad(fmt.Sprintf("required_scopes[%d]", i), "invalid scope %q", s)
		}
	}
	return errors.Join(errs...)
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http(s) URL", s)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%q must use https (http is allowed only on loopback)", s)
	}
	return nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}
