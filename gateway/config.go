package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/config"
	"github.com/mandate-gw/mandate/gateway/front"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
)

// Defaults for the server section.
const (
	DefaultListen      = "127.0.0.1:8080"
	DefaultSessionMode = SessionStateful
	DefaultIdleTimeout = 30 * time.Minute
	// DefaultMaxSessionsPerUser: a user's IDE windows, agents and tabs
	// stay well below it; one token opening thousands does not.
	DefaultMaxSessionsPerUser = 64
	// DefaultMaxSessions: ~100 KiB each idle (BENCHMARKS.md), ~1 GiB.
	DefaultMaxSessions    = 10_000
	DefaultMaxBodyBytes   = 4 << 20
	DefaultMaxHeaderBytes = 64 << 10
	DefaultShutdownGrace  = 20 * time.Second
	DefaultReadHeader     = 10 * time.Second
	DefaultReadBody       = 30 * time.Second
	DefaultKeepAlive      = 120 * time.Second
	DefaultServiceName    = "mandate"
	DefaultSeparator      = "_"
	DefaultWhoAmIName     = "whoami"

	SessionStateful  = "stateful"
	SessionStateless = "stateless"

	// MCPPath is the MCP endpoint's path under public_url.
	MCPPath = "/mcp"
)

// Config is the whole configuration file.
type Config struct {
	// Server is the HTTP listener and MCP session behaviour.
	Server ServerConfig `yaml:"server"`
	// Identity says how end users are authenticated.
	Identity authn.Config `yaml:"identity"`
	// Catalog configures how upstream names are exposed.
	Catalog CatalogConfig `yaml:"catalog"`
	// Upstreams are the MCP servers and platforms behind Mandate.
	Upstreams []upstreams.Config `yaml:"upstreams"`
	// Policy decides who may see and call what.
	Policy policy.Config `yaml:"policy"`
	// Audit configures the audit log.
	Audit audit.Config `yaml:"audit"`
	// Telemetry configures traces and metrics.
	Telemetry TelemetryConfig `yaml:"telemetry"`
	// Admin configures the administrative API.
	Admin AdminConfig `yaml:"admin"`
	// AuthorizationServer makes Mandate the authorization server of its
	// MCP clients, in front of the company IdP. Off by default.
	AuthorizationServer authserver.Config `yaml:"authorization_server"`
	// Storage is where state that outlives a process lives (the
	// authorization server's clients, codes, refresh tokens, consents and
	// IdP sessions): embedded SQLite, or PostgreSQL for several replicas.
	Storage store.Config `yaml:"storage"`
}

// CatalogConfig is the `catalog` section.
type CatalogConfig struct {
	// Separator joins an upstream's name and a tool or prompt name
	// (crm_get_account). Default "_". It must contain a character that
	// upstream names cannot (not a letter, digit or '-'), so that every
	// exposed name belongs to exactly one upstream.
	Separator string `yaml:"separator"`
	// WhoAmI configures Mandate's built-in whoami tool.
	WhoAmI WhoAmIConfig `yaml:"whoami"`
}

// WhoAmIConfig is `catalog.whoami`: Mandate's built-in tool that answers
// with the caller's identity as the gateway sees it (issuer, subject,
// email, roles, groups, scopes). It is listed unprefixed, for every user.
type WhoAmIConfig struct {
	// Name is the tool's name as clients see it. Default whoami.
	Name string `yaml:"name"`
	// Disabled leaves the tool out: it is neither listed nor served, and
	// its name routes like any other.
	Disabled bool `yaml:"disabled"`
}

// AdminConfig is the `admin` section: an API for operators on the same
// listener, under /admin/. Disabled when no token is set.
type AdminConfig struct {
	// Token is the bearer token of the admin API (${ENV} or token_file).
	Token secret.String `yaml:"token"`
	// TokenFile is a file holding the admin token.
	TokenFile string `yaml:"token_file"`
}

// ServerConfig is the `server` section.
type ServerConfig struct {
	// Listen is the TCP address to serve on. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// PublicURL is the canonical external URL of Mandate (scheme, host,
	// optional path prefix). The MCP endpoint is PublicURL + "/mcp"; it is the
	// `resource` of the protected-resource metadata and the default token
	// audience. Required.
	PublicURL string `yaml:"public_url"`
	// AdminListen, when set, is a second TCP address that alone serves
	// /admin/ and /metrics (and /healthz, /readyz); the main listener then
	// answers 404 for them, so a network policy can fence them by port.
	AdminListen string `yaml:"admin_listen"`
	// TrustedProxies are the IPs and CIDRs of reverse proxies whose
	// X-Forwarded-For is believed when taking a request's client IP (logs,
	// audit). Default none: the client IP is the connection's peer.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AllowedOrigins lists browser Origins allowed to call /mcp. Requests
	// with any other Origin header get 403. Requests without Origin (non-browser
	// clients) are allowed.
	AllowedOrigins []string `yaml:"allowed_origins"`
	// Session configures MCP sessions.
	Session SessionConfig `yaml:"session"`
	// MaxBodyBytes bounds a request body. Default 4 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// MaxHeaderBytes bounds request headers. Default 64 KiB.
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ShutdownGrace is how long in-flight requests may run after SIGTERM. Default 20s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// ReadHeaderTimeout bounds reading a request's headers (slowloris).
	// Default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadBodyTimeout bounds reading a POST body on /mcp. Default 30s.
	ReadBodyTimeout time.Duration `yaml:"read_body_timeout"`
	// KeepAliveTimeout closes idle keep-alive connections. Default 120s.
	KeepAliveTimeout time.Duration `yaml:"keepalive_timeout"`
}

// SessionConfig is `server.session`.
type SessionConfig struct {
	// Mode is stateful (Mcp-Session-Id sessions, protocol 2025-06-18 and
	// 2025-11-25) or stateless (no sessions; also protocol 2026-07-28).
	// Default stateful.
	Mode string `yaml:"mode"`
	// IdleTimeout closes sessions with no request for this long. Default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// PeerURL (stateful mode) is this replica's URL as the other replicas
	// reach it (e.g. http://${POD_IP}:8080). Set, session ids name their
	// replica and any replica forwards a session's requests to it, so
	// several replicas need no session affinity.
	PeerURL string `yaml:"peer_url"`
	// PeerSecret seals session ids; the same on every replica (${ENV}).
	PeerSecret secret.String `yaml:"peer_secret"`
	// MaxPerUser (stateful mode) bounds one user's open sessions; opening
	// one more closes that user's least recently used session. Default 64.
	MaxPerUser int `yaml:"max_per_user"`
	// MaxTotal (stateful mode) bounds the open sessions of this replica;
	// beyond it a new session is refused with 503 and Retry-After.
	// Default 10000.
	MaxTotal int `yaml:"max_total"`
}

// TelemetryConfig is the `telemetry` section.
type TelemetryConfig struct {
	// ServiceName is the OpenTelemetry service.name. Default mandate.
	ServiceName string `yaml:"service_name"`
	// Traces is none, stdout or otlp (configured by the standard
	// OTEL_EXPORTER_OTLP_* environment variables). Default none.
	Traces string `yaml:"traces"`
	// Metrics is prometheus (served at /metrics), otlp (pushed over OTLP
	// HTTP, configured by OTEL_EXPORTER_OTLP_* and OTEL_METRIC_EXPORT_*),
	// both, or none. Default prometheus.
	Metrics string `yaml:"metrics"`
	// SampleRatio is the share of new traces recorded (parent-based: a
	// sampled parent from the client is always followed). 0 leaves the
	// choice to OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG, whose
	// default records every trace.
	SampleRatio float64 `yaml:"sample_ratio"`
}

// LoadConfig reads, decodes, defaults and validates a configuration file.
// Errors are config.Problems with file, line and key path.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, data, os.LookupEnv)
}

// ParseConfig is LoadConfig on bytes, with an explicit environment.
func ParseConfig(name string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	idx, err := config.Decode(name, data, &c, lookup)
	if err != nil {
		return nil, err
	}
	c.applyDefaults()
	if err := idx.Annotate(c.Validate()); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) applyDefaults() {
	s := &c.Server
	if s.Listen == "" {
		s.Listen = DefaultListen
	}
	s.PublicURL = strings.TrimSuffix(s.PublicURL, "/")
	if s.Session.Mode == "" {
		s.Session.Mode = DefaultSessionMode
	}
	if s.Session.IdleTimeout == 0 {
		s.Session.IdleTimeout = DefaultIdleTimeout
	}
	if s.Session.MaxPerUser == 0 {
		s.Session.MaxPerUser = DefaultMaxSessionsPerUser
	}
	if s.Session.MaxTotal == 0 {
		s.Session.MaxTotal = DefaultMaxSessions
	}
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if s.ShutdownGrace == 0 {
		s.ShutdownGrace = DefaultShutdownGrace
	}
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = DefaultReadHeader
	}
	if s.ReadBodyTimeout == 0 {
		s.ReadBodyTimeout = DefaultReadBody
	}
	if s.KeepAliveTimeout == 0 {
		s.KeepAliveTimeout = DefaultKeepAlive
	}
	c.Identity = c.Identity.WithDefaults(c.MCPURL())
	c.AuthorizationServer = c.AuthorizationServer.WithDefaults()
	if c.Storage.Path == "" && c.Audit.Sink == audit.SinkFile && c.Audit.Path != "" && (c.Storage.Driver == "" || c.Storage.Driver == store.DriverSQLite) {
		c.Storage.Path = filepath.Join(filepath.Dir(c.Audit.Path), store.DefaultSQLitePath)
	}
	c.Storage = c.Storage.WithDefaults()
	if c.Catalog.Separator == "" {
		c.Catalog.Separator = DefaultSeparator
	}
	if c.Catalog.WhoAmI.Name == "" {
		c.Catalog.WhoAmI.Name = DefaultWhoAmIName
	}
	for i := range c.Upstreams {
		c.Upstreams[i] = c.Upstreams[i].WithDefaults()
	}
	t := &c.Telemetry
	if t.ServiceName == "" {
		t.ServiceName = DefaultServiceName
	}
	if t.Traces == "" {
		t.Traces = "none"
	}
	if t.Metrics == "" {
		t.Metrics = "prometheus"
	}
}

// unambiguousSeparator reports whether sep has a character that upstream
// names ([a-z0-9-]) cannot: then <name><sep><tool> splits at the first
// such character's occurrence past the name, so no exposed name belongs to
// two upstreams. Letters of either case are refused for readability.
func unambiguousSeparator(sep string) bool {
	return strings.ContainsFunc(sep, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-')
	})
}

// MCPURL is the canonical URL of the MCP endpoint.
func (c *Config) MCPURL() string { return c.Server.PublicURL + MCPPath }

// Validate reports every problem with its key path. No side effects.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}
	s := c.Server
	if _, _, err := net.SplitHostPort(s.Listen); err != nil {
		bad("server.listen", "not host:port: %v", err)
	}
	if s.PublicURL == "" {
		bad("server.public_url", "required: the URL clients use to reach Mandate (e.g. https://mcp.example.com)")
	} else if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		bad("server.public_url", "must be an absolute http(s) URL without query or fragment, got %q", s.PublicURL)
	}
	if s.AdminListen != "" {
		if _, _, err := net.SplitHostPort(s.AdminListen); err != nil {
			bad("server.admin_listen", "not host:port: %v", err)
		} else if s.AdminListen == s.Listen {
			bad("server.admin_listen", "must differ from server.listen (%s): it takes /admin/ and /metrics off the main listener", s.Listen)
		}
	}
	for i, p := range s.TrustedProxies {
		if !validProxy(p) {
			bad(fmt.Sprintf("server.trusted_proxies[%d]", i), "must be an IP address or CIDR (10.0.0.0/8, 2001:db8::/32), got %q", p)
		}
	}
	for i, o := range s.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("server.allowed_origins[%d]", i), "must be an origin like https://app.example.com, got %q", o)
		}
	}
	if p := s.Session.PeerURL; p != "" {
		u, err := url.Parse(p)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" {
			bad("server.session.peer_url", "must be scheme://host:port (no path), got %q", p)
		}
		if len(p) > front.MaxPeerURLLen { // session ids carry it, and they are bounded
			bad("server.session.peer_url", "at most %d characters, got %d", front.MaxPeerURLLen, len(p))
		}
		if s.Session.Mode == SessionStateless {
			bad("server.session.peer_url", "applies only to stateful mode (stateless needs no routing)")
		}
		if len(s.Session.PeerSecret.Reveal()) < 32 {
			bad("server.session.peer_secret", "required with peer_url: at least 32 characters, the same on every replica")
		}
	} else if !s.Session.PeerSecret.IsZero() {
		bad("server.session.peer_secret", "has no effect without peer_url")
	}
	if !slices.Contains([]string{SessionStateful, SessionStateless}, s.Session.Mode) {
		bad("server.session.mode", "must be stateful or stateless, got %q", s.Session.Mode)
	}
	if s.Session.IdleTimeout < 0 {
		bad("server.session.idle_timeout", "must not be negative")
	}
	if s.Session.MaxPerUser < 1 {
		bad("server.session.max_per_user", "must be at least 1, got %d", s.Session.MaxPerUser)
	}
	if s.Session.MaxTotal < s.Session.MaxPerUser {
		bad("server.session.max_total", "must be at least max_per_user (%d), got %d", s.Session.MaxPerUser, s.Session.MaxTotal)
	}
	if s.MaxBodyBytes < 1024 {
		bad("server.max_body_bytes", "must be at least 1024")
	}
	if s.MaxHeaderBytes < 4096 {
		bad("server.max_header_bytes", "must be at least 4096")
	}
	for key, d := range map[string]time.Duration{"read_header_timeout": s.ReadHeaderTimeout, "read_body_timeout": s.ReadBodyTimeout, "keepalive_timeout": s.KeepAliveTimeout} {
		if d < 0 {
			bad("server."+key, "must not be negative")
		}
	}
	if err := c.Identity.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.AuthorizationServer.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AuthorizationServer.Enabled {
		if u, err := url.Parse(s.PublicURL); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
			bad("server.public_url", "must be https when authorization_server is enabled (http only on loopback): tokens and codes cross it")
		}
		if len(c.Storage.EncryptionKeys) == 0 {
			bad("storage.encryption_keys", "required when authorization_server is enabled: the IdP tokens Mandate keeps for its users are sealed with it")
		}
	}
	if !c.AuthorizationServer.Enabled {
		for _, u := range c.Upstreams {
			if u.Credentials.Flow == FlowAuthorizationCode {
				bad("upstreams["+u.Name+"].credentials.flow", "authorization_code needs authorization_server.enabled: users connect their accounts on Mandate's pages, signed in through it, and their grants live in storage")
			}
		}
	}
	if c.AuthorizationServer.Enabled || c.Storage.Driver != store.DriverSQLite || len(c.Storage.EncryptionKeys) > 0 {
		if err := c.Storage.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	if sep := c.Catalog.Separator; len(sep) > 3 || strings.ContainsAny(sep, " \t/") {
		bad("catalog.separator", "must be 1-3 characters without spaces or slashes, got %q", sep)
	} else if !unambiguousSeparator(sep) {
		bad("catalog.separator", "must contain a character upstream names cannot contain (not a letter, digit or '-'; e.g. _ . :), got %q: "+
			"with %q, upstream crm's tool eu%sdelete becomes crm%seu%sdelete, which is also upstream crm-eu's tool delete", sep, sep, sep, sep, sep)
	}
	seen := map[string]bool{}
	never := 0
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		path := fmt.Sprintf("upstreams[%d]", i)
		if upstreams.NameRE.MatchString(u.Name) {
			path = "upstreams[" + u.Name + "]"
			if seen[u.Name] {
				bad(path+".name", "duplicate upstream name %q", u.Name)
			}
			seen[u.Name] = true
		}
		if err := u.Validate(path); err != nil {
			errs = append(errs, err)
		}
		if u.Prefix == upstreams.PrefixNever {
			never++
		}
	}
	if w := c.Catalog.WhoAmI; !w.Disabled {
		if err := upstreams.ValidateName(w.Name); err != nil {
			bad("catalog.whoami.name", "must be 1-128 bytes without white space or control characters: %v", err)
		}
		for _, u := range c.Upstreams {
			if p := u.Name + c.Catalog.Separator; u.Prefix != upstreams.PrefixNever && strings.HasPrefix(w.Name, p) {
				bad("catalog.whoami.name", "%q is in the namespace of upstream %s (%s…): choose another name", w.Name, u.Name, p)
			}
		}
	}
	if never > 1 {
		errs = append(errs, fmt.Errorf("upstreams: %d upstreams use prefix: never; their tool and prompt names may collide — at most one upstream may be unprefixed", never))
	}
	for i, rl := range c.Policy.RateLimits {
		if rl.Upstream != "*" && rl.Upstream != "" && !seen[rl.Upstream] {
			bad(fmt.Sprintf("policy.rate_limits[%d].upstream", i), "no upstream is named %q", rl.Upstream)
		}
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Audit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !c.Admin.Token.IsZero() && c.Admin.TokenFile != "" {
		bad("admin.token_file", "set token or token_file, not both")
	}
	if t := c.Admin.Token.Reveal(); t != "" && len(t) < 16 {
		bad("admin.token", "must be at least 16 characters")
	}
	if !slices.Contains([]string{"none", "stdout", "otlp"}, c.Telemetry.Traces) {
		bad("telemetry.traces", "must be none, stdout or otlp, got %q", c.Telemetry.Traces)
	}
	if !slices.Contains([]string{"none", "prometheus", "otlp", "both"}, c.Telemetry.Metrics) {
		bad("telemetry.metrics", "must be prometheus, otlp, both or none, got %q", c.Telemetry.Metrics)
	}
	if r := c.Telemetry.SampleRatio; r < 0 || r > 1 {
		bad("telemetry.sample_ratio", "must be between 0 and 1, got %g", r)
	}
	return errors.Join(errs...)
}

// isLoopback reports whether host is a loopback name or address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// validProxy reports whether p is an IP address or a CIDR, as gin's
// SetTrustedProxies reads it.
func validProxy(p string) bool {
	if strings.Contains(p, "/") {
		_, _, err := net.ParseCIDR(p)
		return err == nil
	}
	return net.ParseIP(p) != nil
}
