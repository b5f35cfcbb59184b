package mcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// DefaultProtocolVersion is the MCP protocol version requested from the
// upstream when OpenOptions.ProtocolVersion is empty.
const DefaultProtocolVersion = "2025-11-25"

// DefaultNotificationGrace bounds how long a call that asked for progress
// (or a session that uses logging) waits for notifications that preceded its
// result to be relayed. The wait normally ends as soon as they are; the bound
// only matters for notifications go-sdk drops.
const DefaultNotificationGrace = 500 * time.Millisecond

// Deps are what an Adapter needs from the process. The zero value works for
// an upstream with credentials flow none.
type Deps struct {
	// Credentials obtains the calling user's platform token. Nil means no
	// Authorization header is sent; New refuses nil when the config names a
	// flow other than none.
	Credentials credentials.Source
	// HTTPClient supplies the base transport (its Transport, or
	// http.DefaultTransport when nil). Its CheckRedirect is ignored:
	// redirects are never followed (the user's platform token would go
	// along), a redirect is an upstream error. Its Timeout is ignored too:
	// it would cut the upstream's long-lived event stream; calls are
	// bounded by the upstream's timeout instead.
	HTTPClient *http.Client
	// Logger receives the adapter's logs (never tokens). Nil discards.
	Logger *slog.Logger
	// TracerProvider, when set, makes a client span per upstream operation
	// and turns on trace context propagation (W3C traceparent by default).
	TracerProvider trace.TracerProvider
	// Propagator injects trace context into upstream HTTP headers and into
	// params._meta. Default: propagation.TraceContext{} when TracerProvider
	// is set, none otherwise (zero cost).
	Propagator propagation.TextMapPropagator
	// NotificationGrace overrides DefaultNotificationGrace.
	NotificationGrace time.Duration
}

// Adapter is one upstream of kind mcp: a remote MCP server reached over
// streamable HTTP with go-sdk's client, one upstream session per
// (downstream session, upstream), each acting as its user. Safe for
// concurrent use.
type Adapter struct {
	name           string
	endpoint       string
	timeout        time.Duration
	maxBytes       int64
	grace          time.Duration
	src            credentials.Source // nil: no credentials
	hasCredentials bool
	next           http.RoundTripper // credentials transport over the base
	log            *slog.Logger
	tracer         trace.Tracer // nil: no spans
	prop           propagation.TextMapPropagator

	mu       sync.Mutex
	sessions map[*session]struct{}
	closed   bool

	hmu    sync.Mutex
	health Health
}

var (
	_ upstreams.Adapter        = (*Adapter)(nil)
	_ upstreams.HealthReporter = (*Adapter)(nil)
)

func init() {
	upstreams.RegisterKind(upstreams.KindMCP, upstreams.Kind{
		New: func(cfg upstreams.Config, deps upstreams.Deps) (upstreams.Adapter, error) {
			a, err := New(cfg, Deps{Credentials: deps.Credentials, HTTPClient: deps.HTTPClient, Logger: deps.Logger, TracerProvider: deps.TracerProvider})
			if err != nil {
				return nil, err
			}
			return a, nil
		},
	})
}

// New builds the adapter for cfg (kind mcp). It does not contact the
// upstream: sessions connect on first use.
func New(cfg upstreams.Config, deps Deps) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if cfg.Kind != "" && cfg.Kind != upstreams.KindMCP {
		return nil, fmt.Errorf("upstream %s: kind %q is not %q", cfg.Name, cfg.Kind, upstreams.KindMCP)
	}
	if u, err := url.Parse(cfg.URL); cfg.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("upstream %s: url must be an absolute http(s) URL", cfg.Name)
	}
	flow := cfg.Credentials.Flow
	if deps.Credentials == nil && flow != "" && flow != credentials.FlowNone {
		return nil, fmt.Errorf("upstream %s: credentials flow %q is configured but no credentials source was given", cfg.Name, flow)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Adapter{
		name:           cfg.Name,
		endpoint:       cfg.URL,
		timeout:        cfg.Timeout,
		maxBytes:       cfg.MaxResultBytes,
		grace:          deps.NotificationGrace,
		src:            deps.Credentials,
		hasCredentials: deps.Credentials != nil && flow != credentials.FlowNone,
		log:            log.With("upstream", cfg.Name),
		prop:           deps.Propagator,
		sessions:       map[*session]struct{}{},
	}
	if a.grace <= 0 {
		a.grace = DefaultNotificationGrace
	}
	var base http.RoundTripper = http.DefaultTransport
	if deps.HTTPClient != nil && deps.HTTPClient.Transport != nil {
		base = deps.HTTPClient.Transport
	}
	a.next = base
	if a.src != nil {
		a.next = credentials.Transport(a.src, base)
	}
	if deps.TracerProvider != nil {
		a.tracer = deps.TracerProvider.Tracer("github.com/mandate-gw/mandate/upstreams/mcp")
		if a.prop == nil {
			a.prop = propagation.TraceContext{}
		}
	}
	a.health.Upstream = a.name
	return a, nil
}

// Name implements upstreams.Adapter.
func (a *Adapter) Name() string { return a.name }

// Open implements upstreams.Adapter. The session is bound to the identity in
// ctx (nil for anonymous use of a flow-none upstream) and connects lazily on
// its first call. opts.Events receives notifications and server→client
// requests; when it is nil the upstream is not offered sampling or
// elicitation and its notifications are dropped.
func (a *Adapter) Open(ctx context.Context, opts upstreams.OpenOptions) (upstreams.Session, error) {
	s := newSession(a, identity.FromContext(ctx), opts)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, a.rpcError(CodeSessionClosed, nil, "adapter is closed")
	}
	a.sessions[s] = struct{}{}
	return s, nil
}

// Close implements upstreams.Adapter: it closes every open session (each
// sends its DELETE to the upstream) and refuses new ones.
func (a *Adapter) Close() error {
	a.mu.Lock()
	a.closed = true
	ss := make([]*session, 0, len(a.sessions))
	for s := range a.sessions {
		ss = append(ss, s)
	}
	a.mu.Unlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ss))
	for i, s := range ss {
		wg.Go(func() { errs[i] = s.Close() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (a *Adapter) forget(s *session) {
	a.mu.Lock()
	delete(a.sessions, s)
	a.mu.Unlock()
}

// Health is the upstream's recent health (upstreams.Health; the adapter
// implements upstreams.HealthReporter). A JSON-RPC error from the upstream
// is an answer and counts as success.
type Health = upstreams.Health

// Health returns a snapshot of the upstream's health
// (upstreams.HealthReporter).
func (a *Adapter) Health() Health {
	a.mu.Lock()
	n := len(a.sessions)
	a.mu.Unlock()
	a.hmu.Lock()
	h := a.health
	a.hmu.Unlock()
	h.OpenSessions = n
	return h
}

func (a *Adapter) record(o outcome, err error) {
	switch o {
	case outcomeOK:
		now := time.Now()
		a.hmu.Lock()
		a.health.LastSuccess = now
		a.health.ConsecutiveFailures = 0
		a.hmu.Unlock()
	case outcomeFailure:
		now := time.Now()
		a.hmu.Lock()
		a.health.LastFailure = now
		a.health.LastError = err.Error()
		a.health.ConsecutiveFailures++
		a.hmu.Unlock()
	}
}
