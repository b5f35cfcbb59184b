package gateway

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mandate-gw/mandate/gateway/dispatch"
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
				benchCachedCalls(b, env.gw.mcpURL, env.aliceTk, sessions)
			})
		}
	}
}

// benchCachedCalls measures b.N cached crm_echo calls spread over sessions
// sessions authenticated with token (warmed first), and checks that most
// took the forwarding path.
func benchCachedCalls(b *testing.B, mcpURL, token string, sessions int) {
	clients := make([]*mcp.ClientSession, sessions)
	for i := range clients {
		clients[i] = connect(b, mcpURL, token)
		if _, err := callJSON(b, clients[i], "crm_echo", map[string]any{"text": "warm"}); err != nil {
			b.Fatal(err)
		}
	}
	fast := dispatch.ForwardedCalls()
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
	if got := dispatch.ForwardedCalls() - fast; got < uint64(b.N)/2 {
		b.Fatalf("only %d of %d calls took the fast path", got, b.N)
	}
}
