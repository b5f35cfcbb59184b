package credentials

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/mandate-gw/mandate/internal/secret"
)

// Client authentication methods (Config.ClientAuth).
const (
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Token type URNs (RFC 8693 §3).
const (
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	TokenTypeJWT         = "urn:ietf:params:oauth:token-type:jwt"
)

// Defaults applied when the corresponding Config field is zero.
const (
	DefaultRequestedTokenType = TokenTypeAccessToken
	DefaultAlgorithm          = "RS256"
	DefaultAssertionLifetime  = 2 * time.Minute
	DefaultSubject            = "{{ .Subject }}"
	DefaultCacheSkew          = 30 * time.Second
	DefaultTimeout            = 10 * time.Second
	// DefaultTokenLifetime is how long a token whose response carries no
	// expires_in (Salesforce never sends one) is cached.
	DefaultTokenLifetime = 10 * time.Minute
	// MaxAssertionLifetime bounds assertion_lifetime.
	MaxAssertionLifetime = time.Hour
	// EntraTokenURLFormat builds token_url from tenant for entra_obo.
	EntraTokenURLFormat = "https://login.microsoftonline.com/%s/oauth2/v2.0/token"
)

// Config is upstreams[].credentials: how Mandate obtains a token for the
// calling user on one upstream. Durations decode from YAML strings such as
// "30s" (yaml.v3 decodes time.Duration natively and reports the line of a bad
// value).
type Config struct {
	// Flow is token_exchange | entra_obo | jwt_bearer | client_credentials |
	// authorization_code | cross_app_access | none. There is no passthrough flow: the MCP authorization spec forbids
	// sending the user's inbound token to an upstream.
	Flow string `yaml:"flow"`
	// TokenURL is the authorization server's token endpoint (https, or http
	// to a loopback host). For entra_obo it may be left empty and built from
	// Tenant.
	TokenURL string `yaml:"token_url"`
	// ClientID is Mandate's client at the token endpoint; for jwt_bearer also
	// the assertion's iss (Salesforce: the connected app's consumer key).
	ClientID string `yaml:"client_id"`
	// ClientSecret authenticates Mandate to the token endpoint. Write it as
	// ${ENV_VAR}; the config loader expands it before decoding.
	ClientSecret secret.String `yaml:"client_secret"`
	// ClientSecretFile is a file holding the client secret (surrounding
	// whitespace trimmed), read when the source is built (at each reload).
	ClientSecretFile string `yaml:"client_secret_file"`
	// ClientAuth is client_secret_basic (default when a secret is set; for
	// entra_obo, and jwt_bearer on a servicenow upstream, the default is
	// client_secret_post, as Microsoft and ServiceNow document) |
	// client_secret_post | private_key_jwt (RFC 7523 client assertion signed
	// with PrivateKeyFile, aud = token URL). With none of these and no secret,
	// jwt_bearer sends no client authentication (Salesforce).
	ClientAuth string `yaml:"client_auth"`
	// PrivateKeyFile is a PEM private key (PKCS#1 or PKCS#8 RSA, SEC1 or
	// PKCS#8 EC P-256) that signs jwt_bearer assertions and private_key_jwt
	// client assertions.
	PrivateKeyFile string `yaml:"private_key_file"`
	// CertificateFile is the PEM certificate of PrivateKeyFile. When set,
	// client assertions carry its SHA-1 thumbprint as x5t, which Entra ID
	// requires for certificate credentials.
	CertificateFile string `yaml:"certificate_file"`
	// KeyID is the kid header of signed assertions (optional).
	KeyID string `yaml:"key_id"`
	// Algorithm signs assertions: RS256 (default; the only one Salesforce
	// accepts) | ES256.
	Algorithm string `yaml:"algorithm"`
	// Audience is the RFC 8693 audience (token_exchange) or the audience
	// parameter some servers take for client_credentials.
	Audience string `yaml:"audience"`
	// Resource lists RFC 8707 resource indicators sent with the request.
	Resource []string `yaml:"resource"`
	// Scopes requested, space-joined into scope. entra_obo needs one
	// resource's scopes, e.g. api://crm/.default.
	Scopes []string `yaml:"scopes"`
	// RequestedTokenType is the RFC 8693 requested_token_type (token_exchange
	// only); default urn:ietf:params:oauth:token-type:access_token.
	RequestedTokenType string `yaml:"requested_token_type"`
	// ActorToken (token_exchange only) sends Mandate's own client_credentials
	// token as actor_token, so servers that support delegation record an
	// act claim naming Mandate.
	ActorToken bool `yaml:"actor_token"`
	// AssertionAudience is the aud of jwt_bearer assertions, a URL or any
	// other string. Default: on a servicenow upstream the client id
	// (ServiceNow requires aud = Client ID); on a salesforce upstream
	// https://login.salesforce.com, or https://test.salesforce.com when
	// token_url is a sandbox org's login host (test.salesforce.com,
	// *.sandbox.my.salesforce.com, *.scratch.my.salesforce.com); otherwise
	// TokenURL.
	AssertionAudience string `yaml:"assertion_audience"`
	// ScopesInAssertion (jwt_bearer only) puts Scopes into the assertion's
	// scope claim instead of the token request's scope parameter, as
	// Google's domain-wide delegation requires.
	ScopesInAssertion bool `yaml:"scopes_in_assertion"`
	// AssertionLifetime is how long a signed assertion is valid; default 2m,
	// at most 1h (on a salesforce upstream at most 3m, as Salesforce
	// requires).
	AssertionLifetime time.Duration `yaml:"assertion_lifetime"`
	// Subject (jwt_bearer only) is a Go text/template over the identity that
	// yields the platform username: fields .Issuer .Subject .Email .Roles
	// .Groups .Claims (e.g. {{ .Claims.employee_id }}) and the functions
	// lower, upper, trim, trimPrefix, trimSuffix, replace, split, join,
	// first, last, default. Default "{{ .Subject }}". A missing claim is an
	// error, never an empty username. Values print only as strings and
	// integers (exactly: 1234567); null, objects, lists, booleans and
	// fractions are errors. A template that reads .Email or another
	// email-like claim (identity.EmailLikeClaim) works only for identities
	// whose email is trusted (email_verified, or
	// identity.trust_unverified_email); others get ErrUnverifiedEmail.
	Subject string `yaml:"subject"`
	// SubjectMapFile (jwt_bearer only) is a YAML or JSON object mapping the
	// rendered Subject (by default the IdP subject) to the platform username.
	// A user with no entry is refused with an error naming user and upstream.
	SubjectMapFile string `yaml:"subject_map_file"`
	// Tenant (entra_obo only) is the Entra tenant id or domain; it builds
	// token_url https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token.
	// Set tenant or token_url, not both.
	Tenant string `yaml:"tenant"`
	// AuthorizationURL (authorization_code only) is the platform's
	// authorization endpoint, where each user consents once (authorization
	// code + PKCE S256). Required unless discover.
	AuthorizationURL string `yaml:"authorization_url"`
	// RevocationURL (authorization_code only) is the platform's RFC 7009
	// revocation endpoint: a disconnect revokes the user's grant there.
	// Optional; with discover the authorization server's
	// revocation_endpoint.
	RevocationURL string `yaml:"revocation_url"`
	// Discover (authorization_code on kind mcp only) finds the
	// authorization server as an MCP client does: the upstream's RFC 9728
	// protected resource metadata (from its 401 WWW-Authenticate
	// resource_metadata, else the well-known paths), then the server's RFC
	// 8414 / OpenID metadata; authorization_url and token_url come from
	// there. Mandate is then the client configured by client_id, else the
	// client ID metadata document Mandate publishes (where the server
	// supports them), else a dynamic registration (RFC 7591) shared by the
	// replicas.
	Discover bool `yaml:"discover"`
	// SubjectTokenType (cross_app_access only) is the type of the user's
	// IdP token sent as subject_token for the ID-JAG:
	// urn:ietf:params:oauth:token-type:access_token (default) |
	// urn:ietf:params:oauth:token-type:id_token.
	SubjectTokenType string `yaml:"subject_token_type"`
	// PlatformTokenURL (cross_app_access only) is the platform
	// authorization server's token endpoint, where the ID-JAG is redeemed
	// with the JWT bearer grant (token_url is the IdP's). Required.
	PlatformTokenURL string `yaml:"platform_token_url"`
	// PlatformClientID (cross_app_access only) is Mandate's client at the
	// platform's authorization server; the IdP must know it as the ID-JAG's
	// client_id for Mandate. Required.
	PlatformClientID string `yaml:"platform_client_id"`
	// PlatformClientSecret (cross_app_access only) authenticates Mandate at
	// the platform (client_secret_basic). Write it as ${ENV_VAR}. This or
	// PlatformClientSecretFile is required.
	PlatformClientSecret secret.String `yaml:"platform_client_secret"`
	// PlatformClientSecretFile (cross_app_access only) is a file holding
	// the platform client secret.
	PlatformClientSecretFile string `yaml:"platform_client_secret_file"`
	// CacheSkew is subtracted from a token's lifetime when caching; default 30s.
	CacheSkew time.Duration `yaml:"cache_skew"`
	// Timeout bounds one exchange at the token endpoint; default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// DefaultLifetime is how long to cache a token whose response carries no
	// expires_in (Salesforce); default 10m. Still capped by the user's token.
	DefaultLifetime time.Duration `yaml:"default_lifetime"`

	// Platform is not a YAML key: package upstreams sets it to the
	// upstream's kind, and jwt_bearer applies that platform's defaults,
	// limits and error explanations (PlatformSalesforce,
	// PlatformServiceNow; other values change nothing).
	Platform string `yaml:"-"`
	// UpstreamURL is not a YAML key: package upstreams sets it to the
	// upstream's url. authorization_code on kind mcp sends it as the RFC
	// 8707 resource when resource is not set, and discover starts there.
	UpstreamURL string `yaml:"-"`
}

// forbiddenFlows are names people reach for when they want the user's own
// token sent upstream.
var forbiddenFlows = map[string]bool{
	"passthrough": true, "pass_through": true, "pass-through": true,
	"forward": true, "forward_token": true, "user_token": true,
	"bearer": true, "inbound": true, "inbound_token": true, "relay": true,
	"impersonate": true, "password": true,
}

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]{0,253}$`)

// Validate checks c and returns every problem, each prefixed with its key
// path (path is like "upstreams[crm].credentials"), joined with errors.Join.
// It has no side effects besides stat-ing the files it names.
func (c *Config) Validate(path string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		p := path
		if key != "" {
			p += "." + key
		}
		errs = append(errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
	}
	flow := c.Flow
	ft := lookupFlow(flow)
	switch {
	case flow == "":
		bad("flow", "required; one of %s", flowNames())
		return errors.Join(errs...)
	case forbiddenFlows[strings.ToLower(flow)]:
		if strings.ToLower(flow) == "password" {
			bad("flow", "%q is not supported: Mandate never handles user passwords; use token_exchange, entra_obo or jwt_bearer to act as the user", flow)
		} else {
			bad("flow", "%q is not supported: the MCP authorization spec forbids passing the user's inbound token to an upstream (token passthrough makes the gateway a confused deputy: the upstream cannot tell who the token was meant for, and audience checks break). Use token_exchange (RFC 8693), entra_obo, or jwt_bearer so the upstream receives a token issued for it", flow)
		}
		return errors.Join(errs...)
	case ft == nil:
		bad("flow", "unknown flow %q; one of %s", flow, flowNames())
		return errors.Join(errs...)
	}

	if ft.Bare {
		for _, f := range c.setKeys() {
			bad(f, "has no effect with flow %s; remove it", flow)
		}
		return errors.Join(errs...)
	}

	// token_url (a flow with DefaultTokenURL checks its own alternative)
	optional := ft.EndpointOptional != nil && ft.EndpointOptional(c)
	switch {
	case c.TokenURL == "":
		if ft.DefaultTokenURL == nil && !optional {
			bad("token_url", "required for flow %s", flow)
		}
	case ft.DefaultTokenURL == nil || ft.DefaultTokenURL(c) == "":
		if err := checkEndpoint(c.TokenURL); err != nil {
			bad("token_url", "%v", err)
		}
	}
	if c.ClientID == "" {
		if !optional {
			bad("client_id", "required for flow %s", flow)
		}
	} else if strings.ContainsAny(c.ClientID, "\r\n") {
		bad("client_id", "contains a line break")
	}

	// client authentication
	hasSecret := !c.ClientSecret.IsZero() || c.ClientSecretFile != ""
	if !c.ClientSecret.IsZero() && c.ClientSecretFile != "" {
		bad("client_secret_file", "set client_secret or client_secret_file, not both")
	}
	if strings.HasPrefix(c.ClientSecret.Reveal(), "${") {
		bad("client_secret", "environment variable reference was not expanded (is the variable set?)")
	}
	if c.ClientSecretFile != "" {
		statFile(bad, "client_secret_file", c.ClientSecretFile)
	}
	switch c.ClientAuth {
	case "":
		if !hasSecret && !ft.ClientAuthOptional {
			bad("client_secret", "flow %s needs client authentication: set client_secret (or client_secret_file), or client_auth: private_key_jwt with private_key_file", flow)
		}
	case AuthClientSecretBasic, AuthClientSecretPost:
		if !hasSecret {
			bad("client_auth", "%s needs client_secret or client_secret_file", c.ClientAuth)
		}
	case AuthPrivateKeyJWT:
		if c.PrivateKeyFile == "" {
			bad("client_auth", "private_key_jwt needs private_key_file")
		}
		if hasSecret {
			bad("client_auth", "private_key_jwt is set together with a client secret; remove one")
		}
	default:
		bad("client_auth", "unknown method %q; one of client_secret_basic, client_secret_post, private_key_jwt", c.ClientAuth)
	}

	// keys
	if c.PrivateKeyFile != "" {
		if !ft.SignsAssertions && c.ClientAuth != AuthPrivateKeyJWT {
			bad("private_key_file", "is used only by %s or client_auth private_key_jwt", flowsReading(func(t *FlowType) bool { return t.SignsAssertions }))
		}
		statFile(bad, "private_key_file", c.PrivateKeyFile)
	}
	if c.CertificateFile != "" {
		if c.PrivateKeyFile == "" {
			bad("certificate_file", "needs private_key_file")
		}
		statFile(bad, "certificate_file", c.CertificateFile)
	}
	switch c.Algorithm {
	case "", "RS256", "ES256":
	default:
		bad("algorithm", "unsupported %q; RS256 or ES256", c.Algorithm)
	}
	if c.Algorithm != "" && c.PrivateKeyFile == "" {
		bad("algorithm", "has no effect without private_key_file")
	}
	if c.KeyID != "" && c.PrivateKeyFile == "" {
		bad("key_id", "has no effect without private_key_file")
	}

	// flow-specific keys: set only for a flow that reads them
	for _, k := range c.setKeys() {
		hint, specific := flowSpecificKeys[k]
		if specific && !ft.reads(k) {
			bad(k, "applies only to %s%s", flowsReading(func(t *FlowType) bool { return t.reads(k) }), hint)
		}
	}
	if ft.ServiceAccount && (c.Subject != "" || c.SubjectMapFile != "") {
		bad("flow", "%s is a service account; it does not act as the user", flow)
	}
	if c.RequestedTokenType != "" && ft.reads("requested_token_type") && !strings.HasPrefix(c.RequestedTokenType, "urn:") {
		bad("requested_token_type", "%q is not a token type URN (e.g. %s)", c.RequestedTokenType, TokenTypeAccessToken)
	}
	if c.ScopesInAssertion && len(c.Scopes) == 0 {
		bad("scopes_in_assertion", "needs scopes (they go into the assertion's scope claim)")
	}
	// aud is a StringOrURI (RFC 7519 §4.1.3): ServiceNow wants its client
	// id there, Salesforce a URL.
	if strings.TrimSpace(c.AssertionAudience) != c.AssertionAudience || strings.IndexFunc(c.AssertionAudience, unicode.IsControl) >= 0 {
		bad("assertion_audience", "%q has surrounding white space or control characters", c.AssertionAudience)
	}
	if c.AssertionLifetime < 0 || c.AssertionLifetime > MaxAssertionLifetime {
		bad("assertion_lifetime", "%s is out of range (0 < lifetime ≤ %s; Salesforce accepts at most 3m)", c.AssertionLifetime, MaxAssertionLifetime)
	}
	if c.AssertionLifetime != 0 && c.PrivateKeyFile == "" {
		bad("assertion_lifetime", "has no effect without private_key_file")
	}
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\r\n\"\\") {
			bad(fmt.Sprintf("scopes[%d]", i), "%q is not a valid scope token", s)
		}
	}
	for i, r := range c.Resource {
		if u, err := url.Parse(r); err != nil || u.Scheme == "" || u.Fragment != "" {
			bad(fmt.Sprintf("resource[%d]", i), "%q is not an absolute URI without fragment (RFC 8707)", r)
		}
	}
	if c.Subject != "" {
		if t, err := parseSubjectTemplate(c.Subject); err != nil {
			bad("subject", "%v", err)
		} else if err := checkSubjectFields(t); err != nil {
			bad("subject", "%v", err)
		}
	}
	if c.SubjectMapFile != "" {
		statFile(bad, "subject_map_file", c.SubjectMapFile)
	}
	if ft.Validate != nil {
		ft.Validate(c, bad)
	}

	// durations
	if c.CacheSkew < 0 {
		bad("cache_skew", "must not be negative")
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	if c.DefaultLifetime < 0 {
		bad("default_lifetime", "must not be negative")
	}
	return errors.Join(errs...)
}

// EmailRefs lists where the subject template (jwt_bearer) reads an
// email-like value (".Email", ".Claims.upn"): such a template maps only
// users whose email the IdP verified. Nil when there is none or the
// template does not parse (Validate reports that).
func (c *Config) EmailRefs() []string {
	if ft := lookupFlow(c.Flow); ft == nil || !ft.reads("subject") || c.Subject == "" {
		return nil
	}
	t, err := parseSubjectTemplate(c.Subject)
	if err != nil {
		return nil
	}
	return emailRefs(t)
}

// setKeys lists the yaml keys of c that are set (not zero), apart from
// flow, in field order. It walks the fields, so a key added to Config is
// covered.
func (c *Config) setKeys() []string {
	var ks []string
	v := reflect.ValueOf(c).Elem()
	for i := range v.NumField() {
		k := strings.Split(v.Type().Field(i).Tag.Get("yaml"), ",")[0]
		f := v.Field(i)
		empty := f.IsZero() || (f.Kind() == reflect.Slice && f.Len() == 0)
		if k != "flow" && k != "" && k != "-" && !empty {
			ks = append(ks, k)
		}
	}
	return ks
}

func statFile(bad func(key, format string, args ...any), key, name string) {
	fi, err := os.Stat(name)
	switch {
	case err != nil:
		bad(key, "%v", err)
	case fi.IsDir():
		bad(key, "%s is a directory", name)
	}
}

// checkEndpoint requires an absolute https URL, or http to a loopback host.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	if u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return fmt.Errorf("%q is not an absolute http(s) URL", raw)
	}
	if u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must have no fragment and no user info", raw)
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("%q: credentials travel to the token endpoint; use https (plain http is allowed only for loopback hosts)", raw)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func orDuration(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

func orString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// tokenURL returns the effective token endpoint: token_url, or the one the
// flow builds when it is empty (entra_obo from tenant).
func (c *Config) tokenURL() string {
	if ft := lookupFlow(c.Flow); c.TokenURL == "" && ft != nil && ft.DefaultTokenURL != nil {
		return ft.DefaultTokenURL(c)
	}
	return c.TokenURL
}
