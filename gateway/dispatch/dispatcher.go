// Package dispatch serves MCP operations: every routed call — whatever path
// it arrived on, go-sdk's handler (Middleware) or the forwarding path for
// tools/call (Forward) — goes through one pipeline of named steps
// (pipeline.go) and is recorded once: audit record, span and metrics.
package dispatch

import (
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/gateway/sessions"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
)

// Telemetry is what dispatch records spans and metrics with.
type Telemetry struct {
	TP        trace.TracerProvider // nil when traces are off
	Tracer    trace.Tracer
	Prop      propagation.TextMapPropagator
	ServerDur metric.Float64Histogram
	ClientDur metric.Float64Histogram
	Denials   metric.Int64Counter
}

// Dispatcher serves the routed MCP methods of one gateway.
type Dispatcher struct {
	// State is the configuration in force (swapped on reload).
	State    func() *catalog.State
	Catalog  *catalog.Cache
	Sessions *sessions.Store
	Audit    *audit.Logger
	Limiter  *policy.Limiter
	Tel      Telemetry
	Log      *slog.Logger
	// Stateless is server.session.mode stateless.
	Stateless bool
	// IdleTimeout is server.session.idle_timeout.
	IdleTimeout time.Duration

	// ConnectLink returns the page where the user connects their account
	// at upstream (the connect service's Link: an absolute URL on
	// Mandate's origin, bound to id) and the elicitation id it carries;
	// reason is the ConsentRequiredError's ("no_grant", "broken",
	// "insufficient_scope"). A call that needs a grant the user lacks is
	// answered with it (consent.go). nil: per-user connections are not
	// configured, and such calls say so.
	ConnectLink func(id *identity.Identity, upstream, reason string) (url, elicitationID string, err error)
	// StateKey (32 bytes) seals the requestState of input_required results
	// (2026-07-28); every replica must have the same one, so that any of
	// them takes the retry. Empty: a random key (one replica).
	StateKey []byte
	// Now is the clock of request states (tests). Default time.Now.
	Now func() time.Time

	consent consentRuntime
}
