package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/config"
)

// Defaults for the server section.
const (
	DefaultListen         = "127.0.0.1:8080"
	DefaultSessionMode    = SessionStateful
	DefaultIdleTimeout    = 30 * time.Minute
	DefaultMaxBodyBytes   = 4 << 20
	DefaultMaxHeaderBytes = 64 << 10
	DefaultShutdownGrace  = 20 * time.Second
	DefaultServiceName    = "mandate"

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
	// Telemetry configures traces and metrics.
	Telemetry TelemetryConfig `yaml:"telemetry"`
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
}

// SessionConfig is `server.session`.
type SessionConfig struct {
	// Mode is stateful (Mcp-Session-Id sessions, protocol 2025-06-18 and
	// 2025-11-25) or stateless (no sessions; also protocol 2026-07-28).
	// Default stateful.
	Mode string `yaml:"mode"`
	// IdleTimeout closes sessions with no request for this long. Default 30m.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
}

// TelemetryConfig is the `telemetry` section.
type TelemetryConfig struct {
	// ServiceName is the OpenTelemetry service.name. Default mandate.
	ServiceName string `yaml:"service_name"`
	// Traces is none, stdout or otlp (configured by the standard
	// OTEL_EXPORTER_OTLP_* environment variables). Default none.
	Traces string `yaml:"traces"`
	// Metrics is prometheus (served at /metrics) or none. Default prometheus.
	Metrics string `yaml:"metrics"`
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
	if s.MaxBodyBytes == 0 {
		s.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if s.ShutdownGrace == 0 {
		s.ShutdownGrace = DefaultShutdownGrace
	}
	c.Identity = c.Identity.WithDefaults(c.MCPURL())
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
	for i, o := range s.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			bad(fmt.Sprintf("server.allowed_origins[%d]", i), "must be an origin like https://app.example.com, got %q", o)
		}
	}
	if !slices.Contains([]string{SessionStateful, SessionStateless}, s.Session.Mode) {
		bad("server.session.mode", "must be stateful or stateless, got %q", s.Session.Mode)
	}
	if s.Session.IdleTimeout < 0 {
		bad("server.session.idle_timeout", "must not be negative")
	}
	if s.MaxBodyBytes < 1024 {
		bad("server.max_body_bytes", "must be at least 1024")
	}
	if s.MaxHeaderBytes < 4096 {
		bad("server.max_header_bytes", "must be at least 4096")
	}
	if err := c.Identity.Validate(); err != nil {
		errs = append(errs, err)
	}
	if !slices.Contains([]string{"none", "stdout", "otlp"}, c.Telemetry.Traces) {
		bad("telemetry.traces", "must be none, stdout or otlp, got %q", c.Telemetry.Traces)
	}
	if !slices.Contains([]string{"none", "prometheus"}, c.Telemetry.Metrics) {
		bad("telemetry.metrics", "must be prometheus or none, got %q", c.Telemetry.Metrics)
	}
	return errors.Join(errs...)
}
