package dispatch

import (
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// BenchmarkHotPathPieces measures Mandate's optional per-call work on a
// cached tools/call, on the dispatcher's own objects (no HTTP, no
// upstream):
//
//	policy   the CEL decision (two rules, default deny)
//	none     record() with metrics off, the audit record encoded and
//	         hash-chained but written to io.Discard: the floor
//	metrics  record() with an SDK meter provider
//	audit-file  record() with the record written to a file (fsync none)
//	tracing  none + the server span with the policy child span and an
//	         upstream client span, sampled, into a no-op batch exporter
//
// Audit cannot be switched off in Mandate; the difference between
// audit-file and none is the cost of writing the record.
func BenchmarkHotPathPieces(b *testing.B) {
	type opts struct {
		metrics   bool
		auditFile bool
		tp        trace.TracerProvider
	}
	run := func(b *testing.B, o opts, body func(g *Dispatcher, c *call)) {
		acfg := audit.Config{Sink: audit.SinkStdout}
		if o.auditFile {
			acfg = audit.Config{Sink: audit.SinkFile, Path: filepath.Join(b.TempDir(), "audit.jsonl")}
		}
		al, err := audit.New(acfg, audit.Options{Stdout: io.Discard})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = al.Close() })
		st, err := catalog.NewState(catalog.Build{Gen: 1, Policy: policy.Config{Default: "deny", Rules: []policy.Rule{
			{Name: "bob-no-docs-echo", Effect: "deny", When: `user.subject == "user-bob" && upstream == "docs" && tool == "echo"`},
			{Name: "employees", Effect: "allow", When: `user.subject.startsWith("user-")`},
		}}, Open: func(upstreams.Config) (upstreams.Adapter, credentials.Source, error) { return nil, nil, nil }})
		if err != nil {
			b.Fatal(err)
		}
		var mp metric.MeterProvider = metricnoop.NewMeterProvider()
		if o.metrics {
			p := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			b.Cleanup(func() { _ = p.Shutdown(context.Background()) })
			mp = p
		}
		m := mp.Meter("bench")
		tel := Telemetry{TP: o.tp, Prop: propagation.TraceContext{}}
		tel.ServerDur, _ = m.Float64Histogram("mcp.server.operation.duration")
		tel.ClientDur, _ = m.Float64Histogram("mcp.client.operation.duration")
		tel.Denials, _ = m.Int64Counter("mandate.policy.denials")
		if o.tp != nil {
			tel.Tracer = o.tp.Tracer("bench")
		}
		g := &Dispatcher{State: func() *catalog.State { return st }, Audit: al, Tel: tel}
		id := &identity.Identity{Issuer: "https://idp.example", Subject: "user-alice", Roles: []string{"sales"}}
		_, info := callinfo.NewContext(context.Background())
		info.Credential("token_exchange", "user-alice", false, true)
		b.ReportAllocs()
		for b.Loop() {
			c := &call{start: time.Now(), method: "tools/call", id: id, st: st, upstream: "crm", tool: "echo", exposed: "crm_echo", info: info, fast: true}
			body(g, c)
		}
	}
	in := func(c *call) policy.Input {
		return policy.Input{User: policy.UserFrom(c.id), Upstream: "crm", Method: "tools/call", Tool: "echo"}
	}
	record := func(g *Dispatcher, c *call) {
		if err := g.record(context.Background(), c, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("policy", func(b *testing.B) {
		run(b, opts{}, func(g *Dispatcher, c *call) {
			if d := c.st.Policy.Evaluate(context.Background(), in(c)); !d.Allow {
				b.Fatal("denied")
			}
		})
	})
	b.Run("none", func(b *testing.B) { run(b, opts{}, record) })
	b.Run("metrics", func(b *testing.B) { run(b, opts{metrics: true}, record) })
	b.Run("audit-file", func(b *testing.B) { run(b, opts{auditFile: true}, record) })
	b.Run("tracing", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer tp.Shutdown(context.Background())
		run(b, opts{tp: tp}, func(g *Dispatcher, c *call) {
			c.sessionID, c.proto, c.rpcID = "s1", "2025-11-25", "7"
			ctx := g.startSpan(context.Background(), c, nil, traceMeta{})
			g.evaluate(ctx, c, c.st, in(c))
			_, cs := g.Tel.Tracer.Start(ctx, "tools/call echo", trace.WithSpanKind(trace.SpanKindClient))
			cs.End()
			record(g, c)
		})
	})
}
