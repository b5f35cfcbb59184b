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
}
