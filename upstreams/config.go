package upstreams

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Upstream kinds.
const (
	KindMCP        = "mcp"
	KindSalesforce = "salesforce"
	KindServiceNow = "servicenow"
)

// Prefix modes.
const (
	PrefixAlways = "always"
	PrefixNever  = "never"
)

// Defaults for an upstream.
const (
	DefaultTimeout        = 30 * time.Second
	DefaultMaxResultBytes = 8 << 20
	DefaultCatalogTTL     = 5 * time.Minute
)

// NameRE is what an upstream name must match; it is also the namespace of
// its tools and prompts.
var NameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// Config is one entry of `upstreams`.
type Config struct {
	// Name identifies the upstream ([a-z0-9-]+); its tools and prompts are
	// exposed as <name><separator><tool>. Required, unique.
	Name string `yaml:"name"`
	// Kind is mcp (a remote MCP server over streamable HTTP), salesforce or
	// servicenow. Required.
	Kind string `yaml:"kind"`
	// URL is the upstream's endpoint: the MCP endpoint for kind mcp, the
	// instance URL for salesforce (overridden by the token's instance_url)
	// and servicenow. Required.
	URL string `yaml:"url"`
	// Timeout bounds every call to the upstream. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
	// Prefix is always (default: names are namespaced with the upstream
	// name) or never (names pass through unchanged; for single-upstream
	// deployments — a name collision is reported, never silently resolved).
	Prefix string `yaml:"prefix"`
	// MaxResultBytes bounds one upstream response. Default 8 MiB.
	MaxResultBytes int64 `yaml:"max_result_bytes"`
	// CatalogTTL is how long a user's listing of this upstream is cached
	// when the upstream sends no list_changed. Default 5m.
	CatalogTTL time.Duration `yaml:"catalog_ttl"`
	// Credentials say how Mandate obtains a token for the calling user.
	Credentials credentials.Config `yaml:"credentials"`
	// AuditArguments opts this upstream's tool-call arguments into the
	// audit record (off by default: arguments may hold personal data).
	AuditArguments bool `yaml:"audit_arguments"`
	// AuditRedact lists argument fields (dotted paths, * wildcard) replaced
	// by "[redacted]" in the audit record when audit_arguments is on.
	AuditRedact []string `yaml:"audit_redact"`
	// Salesforce holds options for kind salesforce.
	Salesforce SalesforceOptions `yaml:"salesforce"`
	// ServiceNow holds options for kind servicenow.
	ServiceNow ServiceNowOptions `yaml:"servicenow"`
}

// SalesforceOptions are the options of a salesforce upstream.
type SalesforceOptions struct {
	// APIVersion is the REST API version, e.g. "v62.0". Default: DefaultSalesforceAPIVersion.
	APIVersion string `yaml:"api_version"`
	// MaxRecords bounds the records one tool call returns across pages. Default 2000.
	MaxRecords int `yaml:"max_records"`
}

// ServiceNowOptions are the options of a servicenow upstream.
type ServiceNowOptions struct {
	// MaxRecords bounds the records one tool call returns. Default 100.
	MaxRecords int `yaml:"max_records"`
}

// DefaultSalesforceAPIVersion is the REST API version used when none is configured.
const DefaultSalesforceAPIVersion = "v62.0"

// WithDefaults returns c with unset fields at their defaults.
func (c Config) WithDefaults() Config {
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Prefix == "" {
		c.Prefix = PrefixAlways
	}
	if c.MaxResultBytes == 0 {
		c.MaxResultBytes = DefaultMaxResultBytes
	}
	if c.CatalogTTL == 0 {
		c.CatalogTTL = DefaultCatalogTTL
	}
	if c.Salesforce.APIVersion == "" {
		c.Salesforce.APIVersion = DefaultSalesforceAPIVersion
	}
	if c.Salesforce.MaxRecords == 0 {
		c.Salesforce.MaxRecords = 2000
	}
	if c.ServiceNow.MaxRecords == 0 {
		c.ServiceNow.MaxRecords = 100
	}
	return c
}

// Validate reports every problem of one upstream, with key paths under
// path (e.g. "upstreams[crm]"). No side effects beyond stat-ing files.
func (c *Config) Validate(path string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	if !NameRE.MatchString(c.Name) {
		bad("name", "must match %s (lowercase letters, digits, dashes), got %q", NameRE, c.Name)
	}
	if !slices.Contains([]string{KindMCP, KindSalesforce, KindServiceNow}, c.Kind) {
		bad("kind", "must be mcp, salesforce or servicenow, got %q", c.Kind)
	}
	if u, err := url.Parse(c.URL); c.URL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		bad("url", "must be an absolute http(s) URL, got %q", c.URL)
	}
	if c.Timeout < 0 {
		bad("timeout", "must not be negative")
	}
	if !slices.Contains([]string{PrefixAlways, PrefixNever}, c.Prefix) {
		bad("prefix", "must be always or never, got %q", c.Prefix)
	}
	if c.MaxResultBytes < 1024 {
		bad("max_result_bytes", "must be at least 1024")
	}
	if err := c.ValidateKind(path); err != nil {
		errs = append(errs, err)
	}
	if err := c.Credentials.Validate(path + ".credentials"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// WithKind returns a copy of c of the given kind.
func (c Config) WithKind(kind string) *Config {
	c.Kind = kind
	return &c
}

// salesforceAPIVersion is the shape of a Salesforce REST API version.
var salesforceAPIVersion = regexp.MustCompile(`^v[0-9]{2,3}\.[0-9]$`)

// ValidateKind reports the problems specific to the upstream's kind (the
// instance URL and options of the native adapters), with key paths under
// path. Validate includes it; the native adapters call it too.
func (c *Config) ValidateKind(path string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", path, key, fmt.Sprintf(format, args...)))
	}
	u, err := url.Parse(c.URL)
	instance := err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.RawQuery == "" && u.Fragment == ""
	switch c.Kind {
	case KindSalesforce:
		if !instance {
			bad("url", "must be the Salesforce instance URL (https://…my.salesforce.com), got %q", c.URL)
		}
		if !salesforceAPIVersion.MatchString(c.Salesforce.APIVersion) {
			bad("salesforce.api_version", "must look like v62.0, got %q", c.Salesforce.APIVersion)
		}
		if c.Salesforce.MaxRecords < 1 || c.Salesforce.MaxRecords > 50000 {
			bad("salesforce.max_records", "must be 1..50000, got %d", c.Salesforce.MaxRecords)
		}
	case KindServiceNow:
		if !instance || (u.Path != "" && u.Path != "/") {
			bad("url", "must be the ServiceNow instance URL (https://<instance>.service-now.com), got %q", c.URL)
		}
		if c.ServiceNow.MaxRecords < 1 || c.ServiceNow.MaxRecords > 10000 {
			bad("servicenow.max_records", "must be 1..10000, got %d", c.ServiceNow.MaxRecords)
		}
	}
	return errors.Join(errs...)
}
