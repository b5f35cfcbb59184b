package clients

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/mandate-gw/mandate/internal/secret"
)

// RegistrationConfig is dynamic client registration.
type RegistrationConfig struct {
	// Policy: open (anyone may register), token (an initial access token
	// is required), off. Default open.
	Policy string `yaml:"policy"`
	// InitialAccessToken is required with policy token (${ENV}).
	InitialAccessToken secret.String `yaml:"initial_access_token"`
	// UnusedTTL deletes registrations unused for this long. Default 720h.
	UnusedTTL time.Duration `yaml:"unused_ttl"`
	// PerMinute bounds registrations per client address (policy open or
	// token): at most this many a minute, in bursts of as many. Default 10;
	// -1 turns the bound off.
	PerMinute int `yaml:"per_minute"`
}

// MetadataDocumentsConfig is client ID metadata documents (CIMD).
type MetadataDocumentsConfig struct {
	// Disabled turns CIMD support off (metadata then says
	// client_id_metadata_document_supported: false).
	Disabled bool `yaml:"disabled"`
	// AllowLoopbackHTTP lets client_id be an http://127.0.0.1 URL (the demo
	// and tests). Elsewhere client ids must be https and resolve to public
	// addresses.
	AllowLoopbackHTTP bool `yaml:"allow_loopback_http"`
	// AllowedHosts, if set, restricts metadata documents to these hosts
	// (exact, or *.example.com).
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// ClientConfig is a pre-registered client.
type ClientConfig struct {
	ClientID     string   `yaml:"client_id"`
	ClientName   string   `yaml:"client_name"`
	RedirectURIs []string `yaml:"redirect_uris"`
	// ClientSecret makes it a confidential client (client_secret_basic or
	// client_secret_post); without it the client is public (PKCE only).
	ClientSecret     secret.String `yaml:"client_secret"`
	ClientSecretFile string        `yaml:"client_secret_file"`
	// SkipConsent: the organisation approved this client for everyone.
	SkipConsent bool `yaml:"skip_consent"`
}

// Registration policies (RegistrationConfig.Policy).
const (
	PolicyOpen  = "open"
	PolicyToken = "token"
	PolicyOff   = "off"
)

// Defaults.
const (
	DefaultPolicy    = PolicyOpen
	DefaultUnusedTTL = 720 * time.Hour
	// DefaultRegistrationsPerMinute bounds registrations per client
	// address.
	DefaultRegistrationsPerMinute = 10
	// MinInitialAccessToken is the shortest initial access token accepted.
	MinInitialAccessToken = 16
)

// WithDefaults returns c with its defaults filled in.
func (c RegistrationConfig) WithDefaults() RegistrationConfig {
	if c.Policy == "" {
		c.Policy = DefaultPolicy
	}
	if c.UnusedTTL == 0 {
		c.UnusedTTL = DefaultUnusedTTL
	}
	if c.PerMinute == 0 {
		c.PerMinute = DefaultRegistrationsPerMinute
	}
	return c
}

// Validate returns every problem of c, each prefixed with its key path
// (prefix is like "authorization_server.registration"), joined with
// errors.Join. It never prints the initial access token.
func (c RegistrationConfig) Validate(prefix string) error {
	var errs []error
	bad := badFunc(prefix, &errs)
	switch c.Policy {
	case "", PolicyOpen, PolicyOff:
		if !c.InitialAccessToken.IsZero() {
			bad("initial_access_token", "has no effect unless policy is token")
		}
	case PolicyToken:
		checkSecret(bad, "initial_access_token", c.InitialAccessToken, true)
	default:
		bad("policy", "must be open, token or off, got %q", c.Policy)
	}
	if c.UnusedTTL < 0 {
		bad("unused_ttl", "must not be negative")
	}
	if c.PerMinute < -1 || c.PerMinute > 10000 {
		bad("per_minute", "must be between 1 and 10000 (or -1: no bound), got %d", c.PerMinute)
	}
	return errors.Join(errs...)
}

// WithDefaults returns c with its defaults filled in (allowed hosts in
// lower case).
func (c MetadataDocumentsConfig) WithDefaults() MetadataDocumentsConfig {
	if len(c.AllowedHosts) > 0 {
		hosts := make([]string, len(c.AllowedHosts))
		for i, h := range c.AllowedHosts {
			hosts[i] = strings.ToLower(h)
		}
		c.AllowedHosts = hosts
	}
	return c
}

// Validate returns every problem of c, each prefixed with its key path
// (prefix is like "authorization_server.metadata_documents").
func (c MetadataDocumentsConfig) Validate(prefix string) error {
	var errs []error
	bad := badFunc(prefix, &errs)
	for i, h := range c.AllowedHosts {
		name := strings.TrimPrefix(h, "*.")
		if !hostnameRE.MatchString(name) {
			bad(fmt.Sprintf("allowed_hosts[%d]", i), "%q is not a host name (example.com or *.example.com; no scheme, port or path)", h)
		}
	}
	return errors.Join(errs...)
}

var hostnameRE = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,62}[a-z0-9])?)*$`)

// WithDefaults returns c with its defaults filled in: client_name defaults
// to client_id.
func (c ClientConfig) WithDefaults() ClientConfig {
	if c.ClientName == "" {
		c.ClientName = c.ClientID
	}
	return c
}

// Validate returns every problem of c, each prefixed with its key path
// (prefix is like "authorization_server.clients[cursor]"). It stats
// client_secret_file and never prints the secret.
func (c ClientConfig) Validate(prefix string) error {
	var errs []error
	bad := badFunc(prefix, &errs)
	switch {
	case c.ClientID == "":
		bad("client_id", "required")
	case len(c.ClientID) > maxClientIDLen:
		bad("client_id", "longer than %d characters", maxClientIDLen)
	case strings.IndexFunc(c.ClientID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		bad("client_id", "%q contains white space or control characters", c.ClientID)
	}
	if strings.IndexFunc(c.ClientName, unicode.IsControl) >= 0 {
		bad("client_name", "contains control characters")
	}
	if len(c.RedirectURIs) == 0 {
		bad("redirect_uris", "required: at least one redirect URI")
	}
	for i, u := range c.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			bad(fmt.Sprintf("redirect_uris[%d]", i), "%v", err)
		}
	}
	if !c.ClientSecret.IsZero() && c.ClientSecretFile != "" {
		bad("client_secret_file", "set client_secret or client_secret_file, not both")
	}
	if !c.ClientSecret.IsZero() {
		checkSecret(bad, "client_secret", c.ClientSecret, false)
	}
	if c.ClientSecretFile != "" {
		fi, err := os.Stat(c.ClientSecretFile)
		switch {
		case err != nil:
			bad("client_secret_file", "%v", err)
		case fi.IsDir():
			bad("client_secret_file", "%s is a directory", c.ClientSecretFile)
		}
	}
	return errors.Join(errs...)
}

// ValidateClients validates a list of pre-registered clients (prefix is
// like "authorization_server.clients"): each client, named by its
// client_id in key paths (by index when the id is unusable), and that no
// client_id appears twice.
func ValidateClients(prefix string, cs []ClientConfig) error {
	var errs []error
	seen := map[string]bool{}
	for i, c := range cs {
		p := fmt.Sprintf("%s[%d]", prefix, i)
		if clientKeyRE.MatchString(c.ClientID) {
			p = fmt.Sprintf("%s[%s]", prefix, c.ClientID)
		}
		if err := c.Validate(p); err != nil {
			errs = append(errs, err)
		}
		if c.ClientID != "" {
			if seen[c.ClientID] {
				errs = append(errs, fmt.Errorf("%s.client_id: %q is listed twice", p, c.ClientID))
			}
			seen[c.ClientID] = true
		}
	}
	return errors.Join(errs...)
}

var clientKeyRE = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,100}$`)

// maxClientIDLen bounds every client_id Mandate accepts (a metadata
// document URL included).
const maxClientIDLen = 2048

func badFunc(prefix string, errs *[]error) func(key, format string, args ...any) {
	return func(key, format string, args ...any) {
		p := prefix
		if key != "" {
			p += "." + key
		}
		*errs = append(*errs, fmt.Errorf("%s: %s", p, fmt.Sprintf(format, args...)))
	}
}

// checkSecret reports an unexpanded ${VAR} and (when long) a secret shorter
// than MinInitialAccessToken, without printing it.
func checkSecret(bad func(key, format string, args ...any), key string, s secret.String, long bool) {
	v := s.Reveal()
	switch {
	case v == "":
		bad(key, "required")
	case strings.HasPrefix(v, "${"):
		bad(key, "environment variable reference was not expanded (is the variable set?)")
	case long && len(v) < MinInitialAccessToken:
		bad(key, "must be at least %d characters", MinInitialAccessToken)
	}
}
