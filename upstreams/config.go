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

// The built-in upstream kinds (package upstreams/kinds links them all).
// Each kind's package registers its name with RegisterKind; the valid
// values of `kind:` are the registered ones (Kinds).
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
	// servicenow: one of the kinds registered in this build (Kinds). Required.
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
	// ToolsBeforeConnect are tools listed to a user who has not connected
	// their account yet (credentials.flow authorization_code): the
	// upstream cannot be listed as that user before their consent, so
	// without them it shows nothing until they connect. Calling one asks
	// the user to connect (a URL elicitation); after that the user's own
	// listing replaces them.
	ToolsBeforeConnect []ToolStub `yaml:"tools_before_connect"`
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
	// APIVersion is the REST API version, e.g. "v66.0". Default: DefaultSalesforceAPIVersion.
	APIVersion string `yaml:"api_version"`
	// MaxRecords bounds the records one tool call returns across pages. Default 2000.
	MaxRecords int `yaml:"max_records"`
	// Writable is the allow-list of the write tools: sObject → the fields
	// Mandate may set on it (Opportunity, Task, Contact, Lead). Nil (key
	// absent) means DefaultSalesforceWritable; an empty map turns the
	// write tools off. Salesforce's own sharing and field-level security
	// still apply on top.
	Writable map[string][]string `yaml:"writable"`
}

// DefaultSalesforceWritable returns the write allow-list used when
// salesforce.writable is absent: what a rep changes every day.
func DefaultSalesforceWritable() map[string][]string {
	return map[string][]string{
		"Opportunity": {"StageName", "CloseDate", "NextStep", "Amount"},
		"Task":        {"Subject", "Status", "TaskSubtype", "ActivityDate", "Description", "WhatId", "WhoId"},
		"Contact":     {"FirstName", "LastName", "Email", "Phone", "Title", "AccountId"},
		"Lead":        {"FirstName", "LastName", "Company", "Email", "Phone", "Title"},
	}
}

// ServiceNowOptions are the options of a servicenow upstream.
type ServiceNowOptions struct {
	// MaxRecords bounds the records one tool call returns. Default 100.
	MaxRecords int `yaml:"max_records"`
}

// DefaultSalesforceAPIVersion is the REST API version used when none is
// configured: Spring '26, the newest generally available release (REST API
// Developer Guide, "API versions"; an org answers /services/data/ with the
// versions it serves).
const DefaultSalesforceAPIVersion = "v66.0"

// WithDefaults returns c with unset fields at their defaults, and
// Credentials.Platform set to Kind (the platform's credential defaults:
// jwt_bearer's aud, client authentication and limits).
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
	if c.Salesforce.Writable == nil {
		c.Salesforce.Writable = DefaultSalesforceWritable()
	}
	if c.ServiceNow.MaxRecords == 0 {
		c.ServiceNow.MaxRecords = 100
	}
	c.Credentials.Platform = c.Kind
	c.Credentials.UpstreamURL = c.URL
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
	if _, ok := LookupKind(c.Kind); !ok {
		bad("kind", "must be %s, got %q", kindList(), c.Kind)
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
	if len(c.ToolsBeforeConnect) > 0 && c.Credentials.Flow != "authorization_code" {
		bad("tools_before_connect", "only for credentials.flow authorization_code (users who have not connected their account yet), not %q", c.Credentials.Flow)
	}
	seenStub := map[string]bool{}
	for i, t := range c.ToolsBeforeConnect {
		if err := ValidateName(t.Name); err != nil {
			bad(fmt.Sprintf("tools_before_connect[%d].name", i), "%v", err)
		} else if seenStub[t.Name] {
			bad(fmt.Sprintf("tools_before_connect[%d].name", i), "duplicate tool %q", t.Name)
		}
		seenStub[t.Name] = true
	}
	creds := c.Credentials
	creds.Platform = c.Kind // the kind's credential defaults and limits (WithDefaults sets it too)
	creds.UpstreamURL = c.URL
	if err := creds.Validate(path + ".credentials"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ToolStub is a tool as listed before the user connected: its name as the
// upstream knows it (Mandate prefixes it as usual) and a description. Its
// input schema is an open object; the real one comes with the user's own
// listing.
type ToolStub struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
}

// WithKind returns a copy of c of the given kind.
func (c Config) WithKind(kind string) *Config {
	c.Kind = kind
	return &c
}

// ValidateKind reports the problems specific to the upstream's kind (for
// the native adapters: the instance URL and their options), with key paths
// under path: the registered Kind's Validate hook, nothing for a kind
// without one or one not registered (Validate reports that). Validate
// includes it; the native adapters call it too.
func (c *Config) ValidateKind(path string) error {
	if k, ok := LookupKind(c.Kind); ok && k.Validate != nil {
		return k.Validate(c, path)
	}
	return nil
}
