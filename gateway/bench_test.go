package gateway

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/policy"
)

// BenchmarkRoute is catalog routing on a warm session: the exposed name
// is split into upstream and tool, and the tool is looked up in the
// user's cached listing (what every tools/call does before policy).
func BenchmarkRoute(b *testing.B) {
	env := startMux(b, nil)
	alice := connect(b, env.gw.mcpURL, env.aliceTk)
	if _, err := callJSON(b, alice, "crm_who", map[string]any{}); err != nil {
		b.Fatal(err)
	}
	g := env.gw.g
	d, _ := g.sessions.Lookup(alice.ID())
	if d == nil {
		b.Fatal("no downstream session")
	}
	st := g.state.Load()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		u, name, ok := st.Route("docs_t3")
		if has, err := g.catalog.HasTool(ctx, d, st.State, u, name); !ok || name != "t3" || !has || err != nil {
			b.Fatal("docs_t3 not routed")
		}
	}
}

// BenchmarkCachedCall is a whole tools/call on a warm session (cached
// platform token, cached listing, fast path) through Mandate over
// loopback HTTP, with the go-sdk client and upstream in the same process,
// with Mandate's optional work switched on one piece at a time:
//
//	bare     no policy rules (default allow), audit records to memory,
//	         traces none, metrics none
//	policy   + two CEL rules, default deny
//	audit    + audit to a file (fsync none)
//	tracing  + traces sampled (always) into a no-op exporter
//	all      all three, and Prometheus metrics
//
// Differences to bare are the cost of each piece per call; sessions=8
// runs eight sessions in parallel (throughput on both cores).
func BenchmarkCachedCall(b *testing.B) {
	type variant struct {
		name                   string
		policy, audit, tracing bool
	}
	for _, sessions := range []int{1, 8} {
		for _, v := range []variant{{"bare", false, false, false}, {"policy", true, false, false},
			{"audit", false, true, false}, {"tracing", false, false, true}, {"all", true, true, true}} {
			b.Run(fmt.Sprintf("%s/sessions=%d", v.name, sessions), func(b *testing.B) {
				dir := b.TempDir()
				opts := Options{}
				if v.tracing {
					opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
				}
				env := startMuxOpts(b, func(c *Config) {
					c.Telemetry.Metrics = "none"
					if v.policy && v.audit && v.tracing {
						c.Telemetry.Metrics = "prometheus"
					}
					if !v.policy {
						c.Policy = policy.Config{Default: "allow"}
					}
					if v.audit {
						c.Audit.Sink, c.Audit.Path = "file", filepath.Join(dir, "audit.jsonl")
					}
				}, opts)
				clients := make([]*mcp.ClientSession, sessions)
				for i := range clients {
					clients[i] = connect(b, env.gw.mcpURL, env.aliceTk)
					if _, err := callJSON(b, clients[i], "crm_echo", map[string]any{"text": "warm"}); err != nil {
						b.Fatal(err)
					}
				}
				fast := fastCalls.Load()
				args := map[string]any{"text": "hello"}
				b.ReportAllocs()
				b.ResetTimer()
				var wg sync.WaitGroup
				per := b.N / sessions
				for i, cs := range clients {
					n := per
					if i == 0 {
						n += b.N - per*sessions
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						for range n {
							if res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "crm_echo", Arguments: args}); err != nil || res.IsError {
								b.Error("call failed:", err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.StopTimer()
				if got := fastCalls.Load() - fast; got < uint64(b.N)/2 {
					b.Fatalf("only %d of %d calls took the fast path", got, b.N)
				}
			})
		}
	}
}

// BenchmarkHotPathPieces measures Mandate's optional per-call work on a
// cached tools/call, on the gateway's own objects (no HTTP, no upstream):
//
//	policy   the CEL decision the fast path makes (two rules, default deny)
//	none     finish() with metrics none, the audit record encoded and
//	         hash-chained but written to io.Discard: the floor
//	metrics  record() with Prometheus metrics (record to io.Discard)
//	audit-file  record() with the record written to a file (fsync none)
//	tracing  none + the server span with the policy child span and an
//	         upstream client span, sampled, into a no-op batch exporter
//
// Audit cannot be switched off in Mandate; the difference between
// audit-file and none is the cost of writing the record.
func BenchmarkHotPathPieces(b *testing.B) {
	run := func(b *testing.B, mutate func(*Config), opts Options, body func(g *Gateway, o *call, st *state)) {
		opts.AuditOutput = io.Discard
		env := startMuxOpts(b, mutate, opts)
		alice := connect(b, env.gw.mcpURL, env.aliceTk)
		if _, err := callJSON(b, alice, "crm_echo", map[string]any{"text": "warm"}); err != nil {
			b.Fatal(err)
		}
		g := env.gw.g
		st := g.state.Load()
		id, e := g.auth.Authenticate(context.Background(), []string{"Bearer " + env.aliceTk})
		if e != nil {
			b.Fatal(e)
		}
		_, info := callinfo.NewContext(context.Background())
		info.Credential("token_exchange", "user-alice", false, true)
		b.ReportAllocs()
		for b.Loop() {
			o := &call{start: time.Now(), method: "tools/call", id: id, upstream: "crm", tool: "echo", exposed: "crm_echo", info: info, fast: true}
			body(g, o, st)
		}
	}
	noMetrics := func(c *Config) { c.Telemetry.Metrics = "none" }
	fileAudit := func(b *testing.B) func(c *Config) {
		dir := b.TempDir()
		return func(c *Config) {
			c.Telemetry.Metrics = "none"
			c.Audit.Sink, c.Audit.Path = "file", filepath.Join(dir, "audit.jsonl")
		}
	}
	finish := func(g *Gateway, o *call, _ *state) {
		if err := g.record(context.Background(), o, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("policy", func(b *testing.B) {
		run(b, noMetrics, Options{}, func(g *Gateway, o *call, st *state) {
			if d := st.Policy.Evaluate(context.Background(), policy.Input{User: policy.UserFrom(o.id), Upstream: "crm", Method: "tools/call", Tool: "echo"}); !d.Allow {
				b.Fatal("denied")
			}
		})
	})
	b.Run("none", func(b *testing.B) { run(b, noMetrics, Options{}, finish) })
	b.Run("metrics", func(b *testing.B) { run(b, nil, Options{}, finish) })
	b.Run("audit-file", func(b *testing.B) { run(b, fileAudit(b), Options{}, finish) })
	b.Run("tracing", func(b *testing.B) {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		defer tp.Shutdown(context.Background())
		hdr := http.Header{}
		run(b, noMetrics, Options{TracerProvider: tp}, func(g *Gateway, o *call, st *state) {
			o.sessionID, o.proto, o.rpcID = "s1", "2025-11-25", "7"
			ctx := g.startSpan(context.Background(), o, hdr, traceMeta{})
			g.evaluate(ctx, o, st, policy.Input{User: policy.UserFrom(o.id), Upstream: "crm", Method: "tools/call", Tool: "echo"})
			_, cs := g.tel.tracer.Start(ctx, "tools/call echo", trace.WithSpanKind(trace.SpanKindClient))
			cs.End()
			g.observe(ctx, o, nil)
		})
	})
}
