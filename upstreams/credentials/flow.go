package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
)

// Flow is one OAuth grant that obtains platform tokens: the extension point
// of this package. The broker wraps every Flow in the same decorator stack
// (cache → single-flight → Flow), records its tokens for the audit record
// (Transport) and reports its name in spans and metrics. A Flow is built
// once per configuration (re)load and called concurrently by many requests:
// implementations must be safe for concurrent use and keep no per-call state.
type Flow interface {
	// Name is the flow's credentials.flow value (token_exchange, ...); audit
	// records, metrics, spans and Token.Flow carry it.
	Name() string
	// ServiceAccount reports that the flow obtains Mandate's own token, the
	// same for every user (client_credentials): Exchange then gets a nil
	// identity, one cached token serves all users, and the audit record says
	// the call did not run as the user.
	ServiceAccount() bool
	// Exchange obtains a fresh token for id (nil when ServiceAccount). It
	// must honour ctx (the broker bounds it by the upstream's timeout) and
	// return token endpoint failures as *Error, whose Upstream, Flow and
	// User the broker fills in; their text must never hold a token,
	// assertion or secret. Exchange sets Token.PlatformSubject and, for a
	// service account, Token.ServiceAccount.
	Exchange(ctx context.Context, id *identity.Identity) (*Token, error)
}

// FlowConfig is one flow's own configuration: the parts of the
// credentials section that flow reads, with defaults applied
// (FlowType.Parse builds it from a valid Config). The cache key of a
// Source is a digest of its JSON encoding — every field, so a field added
// later cannot be left out of the key; give secrets the tag json:"-" (a
// rotated secret keeps the users' cached tokens). Its unexported methods
// keep flows inside this package, next to the endpoint client they share.
type FlowConfig interface {
	// FlowName is the flow's credentials.flow value.
	FlowName() string
	// timing returns the cache and timeout settings.
	timing() *CacheConfig
	// newFlow builds the Flow: reads the files the configuration names and
	// may record what it read in the configuration (so the cache key covers
	// it). Errors are *keyError naming the key at fault.
	newFlow(env *flowEnv) (Flow, error)
}

// FlowType registers one flow: its name, which of the flow-specific keys
// it reads, what it requires, and how its FlowConfig is parsed. Adding a
// flow: a file flow_<name>.go with its name constant, FlowConfig, Flow and
// FlowType; one line in flowTypes; its cases in contractCases
// (contract_test.go); new keys, if any, in Config (with their doc comments)
// and docs/configuration.md.
type FlowType struct {
	// Name is the credentials.flow value.
	Name string
	// Keys lists the flow-specific keys (see flowSpecificKeys) this flow
	// reads. Setting one of them with a flow that does not list it is an
	// error naming the flows that do.
	Keys []string
	// Bare flows call no token endpoint: every key but flow is an error.
	Bare bool
	// ServiceAccount mirrors Flow.ServiceAccount for validation: a
	// service-account flow refuses subject and subject_map_file.
	ServiceAccount bool
	// SignsAssertions: the flow signs assertions with private_key_file
	// (which it may then read without client_auth private_key_jwt).
	SignsAssertions bool
	// ClientAuthOptional: the flow may send no client authentication (its
	// signed assertion stands for the client, as Salesforce accepts).
	ClientAuthOptional bool
	// DefaultTokenURL, when set, yields token_url when it is left empty
	// (entra_obo from tenant); "" means none could be built.
	DefaultTokenURL func(c *Config) string
	// EndpointOptional, when set and true for c, lets token_url and
	// client_id be left empty (authorization_code with discover finds them);
	// Validate then checks what the flow needs.
	EndpointOptional func(c *Config) bool
	// DefaultClientAuth is client_auth when a secret is set and client_auth
	// is not; default client_secret_basic.
	DefaultClientAuth string
	// Validate, when set, reports what only this flow requires. It runs
	// after the checks common to all flows; it has no side effects.
	Validate func(c *Config, bad Problems)
	// Parse returns the flow's configuration from a Config that passed
	// Validate, defaults applied; nil for a bare flow. ft is the FlowType
	// itself (for parseClient).
	Parse func(ft *FlowType, c *Config) FlowConfig
}

// Problems reports one configuration problem at key (relative to the
// credentials section; "" for the section itself).
type Problems func(key, format string, args ...any)

// flowTypes is the registry, in the order error messages list the flows.
var flowTypes = []*FlowType{
	tokenExchangeType,
	entraOBOType,
	jwtBearerType,
	clientCredentialsType,
	authorizationCodeType,
	crossAppAccessType,
	noneType,
}

// FlowTypes returns the registered flows, in registry order.
func FlowTypes() []FlowType {
	out := make([]FlowType, len(flowTypes))
	for i, ft := range flowTypes {
		out[i] = *ft
	}
	return out
}

// lookupFlow returns the registered flow called name, or nil.
func lookupFlow(name string) *FlowType {
	for _, ft := range flowTypes {
		if ft.Name == name {
			return ft
		}
	}
	return nil
}

func (ft *FlowType) reads(key string) bool { return slices.Contains(ft.Keys, key) }

// flowNames lists the registered flows: "a, b, c".
func flowNames() string {
	names := make([]string, len(flowTypes))
	for i, ft := range flowTypes {
		names[i] = ft.Name
	}
	return strings.Join(names, ", ")
}

// flowsReading lists the flows that read key, and those that sign
// assertions when key is "" ("flow a", "flows a and b", "flows a, b and c").
func flowsReading(pred func(*FlowType) bool) string {
	var names []string
	for _, ft := range flowTypes {
		if pred(ft) {
			names = append(names, ft.Name)
		}
	}
	switch len(names) {
	case 0:
		return "no flow"
	case 1:
		return "flow " + names[0]
	default:
		return "flows " + strings.Join(names[:len(names)-1], ", ") + " and " + names[len(names)-1]
	}
}

// flowSpecificKeys are the keys only some flows read, with what to say when
// one is set for another flow (after "applies only to flows ...").
var flowSpecificKeys = map[string]string{
	"tenant":                      "",
	"requested_token_type":        "",
	"actor_token":                 "",
	"audience":                    " (entra_obo takes the resource in scopes, jwt_bearer uses assertion_audience)",
	"assertion_audience":          "",
	"scopes_in_assertion":         "",
	"subject":                     " (other flows take the user from the token server)",
	"subject_map_file":            "",
	"authorization_url":           "",
	"revocation_url":              "",
	"discover":                    "",
	"subject_token_type":          "",
	"platform_token_url":          "",
	"platform_client_id":          "",
	"platform_client_secret":      "",
	"platform_client_secret_file": "",
}

// ClientConfig is how Mandate authenticates at a token endpoint; every flow
// that calls one embeds it. Fields carry the effective values (defaults
// applied).
type ClientConfig struct {
	TokenURL          string
	ClientID          string
	ClientSecret      secret.String `json:"-"` // left out of the cache key
	ClientSecretFile  string
	ClientAuth        string
	PrivateKeyFile    string
	CertificateFile   string
	KeyID             string
	Algorithm         string
	AssertionLifetime time.Duration
}

// CacheConfig is how a flow's tokens are cached and how long one exchange
// may take; every flow that calls a token endpoint embeds it.
type CacheConfig struct {
	CacheSkew       time.Duration
	Timeout         time.Duration
	DefaultLifetime time.Duration
}

func (c *CacheConfig) timing() *CacheConfig { return c }

// parseClient returns the ClientConfig and CacheConfig of a valid c for ft.
func parseClient(ft *FlowType, c *Config) (ClientConfig, CacheConfig) {
	tokenURL := c.TokenURL
	if tokenURL == "" && ft.DefaultTokenURL != nil {
		tokenURL = ft.DefaultTokenURL(c)
	}
	auth := c.ClientAuth
	if auth == "" && (!c.ClientSecret.IsZero() || c.ClientSecretFile != "") {
		auth = orString(ft.DefaultClientAuth, AuthClientSecretBasic)
	}
	cc := ClientConfig{
		TokenURL: tokenURL, ClientID: c.ClientID, ClientSecret: c.ClientSecret, ClientSecretFile: c.ClientSecretFile,
		ClientAuth: auth, PrivateKeyFile: c.PrivateKeyFile, CertificateFile: c.CertificateFile, KeyID: c.KeyID,
	}
	if c.PrivateKeyFile != "" {
		cc.Algorithm = orString(c.Algorithm, DefaultAlgorithm)
		cc.AssertionLifetime = orDuration(c.AssertionLifetime, DefaultAssertionLifetime)
	}
	return cc, CacheConfig{
		CacheSkew:       orDuration(c.CacheSkew, DefaultCacheSkew),
		Timeout:         orDuration(c.Timeout, DefaultTimeout),
		DefaultLifetime: orDuration(c.DefaultLifetime, DefaultTokenLifetime),
	}
}

// keyError is a failure to build a flow, at one key of the section.
type keyError struct {
	key string
	err error
}

func (e *keyError) Error() string { return e.key + ": " + e.err.Error() }
func (e *keyError) Unwrap() error { return e.err }

// flowEnv is what building a flow may use.
type flowEnv struct {
	b        *Broker
	upstream string
	src      *source // the Source being built (its timing is set)
}

// endpoint reads the client secret file and the signing key of cc and
// returns the token endpoint client, and the signer (nil without a key).
func (env *flowEnv) endpoint(cc *ClientConfig) (*endpoint, *assertionSigner, error) {
	sec := cc.ClientSecret
	if cc.ClientSecretFile != "" {
		data, err := secret.ReadFile(cc.ClientSecretFile)
		if err != nil {
			return nil, nil, &keyError{"client_secret_file", err}
		}
		sec = secret.String(strings.TrimSpace(string(data)))
		if sec.IsZero() {
			return nil, nil, &keyError{"client_secret_file", errors.New("file is empty")}
		}
	}
	var signer *assertionSigner
	if cc.PrivateKeyFile != "" {
		key, err := loadPrivateKey(cc.PrivateKeyFile)
		if err != nil {
			return nil, nil, &keyError{"private_key_file", err}
		}
		var cert []byte
		if cc.CertificateFile != "" {
			if cert, err = secret.ReadFile(cc.CertificateFile); err != nil {
				return nil, nil, &keyError{"certificate_file", err}
			}
		}
		signer, err = newAssertionSigner(key, cc.Algorithm, cc.KeyID, cert, cc.AssertionLifetime)
		if err != nil {
			return nil, nil, &keyError{"private_key_file", err}
		}
	}
	ep := &endpoint{url: cc.TokenURL, clientID: cc.ClientID, auth: cc.ClientAuth, secret: sec, signer: signer, client: env.b.client, now: env.b.now}
	return ep, signer, nil
}

// serviceSource returns a Source for a service-account flow f used by the
// flow being built (token_exchange's actor token): the upstream's timing,
// the broker's cache under a key derived from name and cfg.
func (env *flowEnv) serviceSource(name string, f Flow, cfg FlowConfig) *source {
	s := *env.src
	s.flowName, s.perUser, s.fl = f.Name(), !f.ServiceAccount(), f
	s.prefix = cacheKey(env.upstream+"#"+name, cfg)
	return &s
}

// Helpers shared by the flows.

// errNoRawToken: the identity was built without the inbound token.
var errNoRawToken = errors.New("the request's identity carries no inbound token to exchange")

func newToken(tr *tokenResponse) *Token {
	return &Token{
		AccessToken:     secret.String(tr.AccessToken),
		TokenType:       tr.TokenType,
		IssuedTokenType: tr.IssuedTokenType,
		Expiry:          tr.Expiry,
		Scope:           tr.Scope,
		Extra:           tr.Extra,
	}
}

// addTarget adds audience, resource and scope to form.
func addTarget(form url.Values, audience string, resource, scopes []string) {
	if audience != "" {
		form.Set("audience", audience)
	}
	for _, r := range resource {
		form.Add("resource", r)
	}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
}

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// buildError wraps a failure to build the flow of the section at path.
func buildError(path string, err error) error {
	var ke *keyError
	if errors.As(err, &ke) {
		return fmt.Errorf("%s.%s: %w", path, ke.key, ke.err)
	}
	return fmt.Errorf("%s: %w", path, err)
}
