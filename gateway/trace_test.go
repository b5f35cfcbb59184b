package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/dispatch"
)

func attr(s sdktrace.ReadOnlySpan, key string) (string, bool) {
	for _, a := range s.Attributes() {
		if string(a.Key) == key {
			return a.Value.Emit(), true
		}
	}
	return "", false
}

// TestTraceTiesIdentities: one trace for a tool call holds the server span
// (user.id = alice, platform identity), the policy span, the token
// exchange span and the upstream client span; the client's trace id is
// continued and reaches the upstream.
func TestTraceTiesIdentities(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	env := startMuxOpts(t, nil, Options{TracerProvider: tp})

	// The client starts a trace and sends traceparent.
	ctx, clientSpan, cs := tracedClient(t, env, env.aliceTk)
	traceID := clientSpan.SpanContext().TraceID()
	// With a progress token, go-sdk's path serves the call.
	fastBefore := dispatch.ForwardedCalls()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "crm_who", Arguments: map[string]any{}, Meta: mcp.Meta{"progressToken": "p1"}}); err != nil {
		t.Fatal(err)
	}
	if dispatch.ForwardedCalls() != fastBefore {
		t.Fatal("the first call took the forwarding path")
	}
	// A second call takes the forwarding path: it must make the same
	// spans in the same trace.
	fastBefore = dispatch.ForwardedCalls()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "crm_who", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	if dispatch.ForwardedCalls() == fastBefore {
		t.Fatal("the second call did not take the fast path")
	}
	clientSpan.End()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	var server, policySpan, exchange, upstreamClient, fastServer sdktrace.ReadOnlySpan
	policies := 0
	for _, s := range exp.GetSpans().Snapshots() {
		if s.SpanContext().TraceID() != traceID {
			continue
		}
		if s.Name() == "policy.evaluate" {
			policies++
		}
		if p, _ := attr(s, "mandate.path"); p == "fast" {
			fastServer = s
			continue
		}
		switch {
		case s.Name() == "tools/call crm_who" && s.SpanKind() == trace.SpanKindServer:
			server = s
		case s.Name() == "policy.evaluate":
			policySpan = s
		case strings.Contains(strings.ToLower(s.Name()), "exchange") || strings.Contains(strings.ToLower(s.Name()), "credential"):
			exchange = s
		case s.SpanKind() == trace.SpanKindClient:
			upstreamClient = s
		}
	}
	if server == nil {
		var names []string
		for _, s := range exp.GetSpans().Snapshots() {
			names = append(names, s.Name()+"/"+s.SpanKind().String())
		}
		t.Fatalf("no server span in the client's trace; spans: %v", names)
	}
	if v, _ := attr(server, "user.id"); v != "user-alice" {
		t.Errorf("server span user.id = %q", v)
	}
	if v, _ := attr(server, "mandate.platform.subject"); v != "user-alice" {
		t.Errorf("server span platform subject = %q", v)
	}
	if v, _ := attr(server, "gen_ai.tool.name"); v != "who" {
		t.Errorf("gen_ai.tool.name = %q", v)
	}
	if v, _ := attr(server, "mcp.method.name"); v != "tools/call" {
		t.Errorf("mcp.method.name = %q", v)
	}
	// The client also sent the internal id header: it must not win.
	if v, _ := attr(server, "jsonrpc.request.id"); v == "" || v == "spoofed" {
		t.Errorf("go-sdk path server span jsonrpc.request.id = %q, want the request's id", v)
	}
	if policySpan == nil || exchange == nil || upstreamClient == nil {
		for _, s := range exp.GetSpans().Snapshots() {
			t.Logf("%s %s parent=%s", s.SpanContext().TraceID(), s.Name(), s.Parent().SpanID())
		}
		t.Fatalf("missing child spans: policy %v, exchange %v, upstream client %v", policySpan != nil, exchange != nil, upstreamClient != nil)
	}
	for _, s := range []sdktrace.ReadOnlySpan{exchange} {
		for _, a := range s.Attributes() {
			if strings.Contains(a.Value.Emit(), env.aliceTk) {
				t.Fatalf("span %s carries the token in %s", s.Name(), a.Key)
			}
		}
	}
	if fastServer == nil || policies < 2 {
		t.Fatalf("fast path: server span %v, policy spans %d", fastServer != nil, policies)
	}
	for k, want := range map[string]string{"user.id": "user-alice", "gen_ai.tool.name": "who", "mandate.platform.subject": "user-alice", "jsonrpc.request.id": ""} {
		v, ok := attr(fastServer, k)
		if !ok || (want != "" && v != want) {
			t.Errorf("fast-path span %s = %q (present %v)", k, v, ok)
		}
	}
	if fastServer.Name() != "tools/call crm_who" {
		t.Errorf("fast-path span name %q", fastServer.Name())
	}
	fastChildren := 0
	for _, s := range exp.GetSpans().Snapshots() {
		if s.Parent().SpanID() == fastServer.SpanContext().SpanID() {
			fastChildren++
		}
	}
	if fastChildren < 2 { // policy.evaluate and the upstream client span
		t.Errorf("fast-path server span has %d children, want policy and upstream client spans", fastChildren)
	}
	// The upstream received the same trace id.
	env.crm.mu.Lock()
	defer env.crm.mu.Unlock()
	found := false
	for _, tp := range env.crm.traceparents {
		if strings.Contains(tp, traceID.String()) {
			found = true
		}
	}
	if !found {
		t.Errorf("upstream never saw trace %s; traceparents: %v", traceID, env.crm.traceparents)
	}
	_ = attribute.Key("")
}

// tracedClient starts a client-side span and connects a client session
// that sends its traceparent on every request (closed at cleanup).
func tracedClient(t *testing.T, env *muxEnv, token string) (context.Context, trace.Span, *mcp.ClientSession) {
	t.Helper()
	ctx, span := sdktrace.NewTracerProvider().Tracer("client").Start(context.Background(), "client op")
	hdr := http.Header{}
	propagation.TraceContext{}.Inject(ctx, propagation.HeaderCarrier(hdr))
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(ctx, &mcp.StreamableClientTransport{Endpoint: env.gw.mcpURL,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, base: traceTransport{hdr.Get("Traceparent")}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	return ctx, span, cs
}

// traceTransport adds a fixed traceparent header to every request.
type traceTransport struct{ tp string }

func (t traceTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Traceparent", t.tp)
	r.Header.Set("Mandate-Internal-Jsonrpc-Id", "spoofed") // the header an older Mandate used internally
	return http.DefaultTransport.RoundTrip(r)
}

// TestTraceSampleRatio: with telemetry.sample_ratio tiny, Mandate records
// no trace of its own choosing, but follows a client's sampled parent.
func TestTraceSampleRatio(t *testing.T) {
	out := &syncBuffer{}
	env := startMuxOpts(t, func(c *Config) {
		c.Telemetry.Traces = "stdout"
		c.Telemetry.SampleRatio = 1e-12
	}, Options{TraceOutput: out})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
		t.Fatal(err)
	}

	ctx, clientSpan, cs := tracedClient(t, env, env.aliceTk)
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "crm_who", Arguments: map[string]any{}}); err != nil {
		t.Fatal(err)
	}
	clientSpan.End()
	env.gw.g.Close() // flushes the batcher
	spans := out.String()
	if !strings.Contains(spans, clientSpan.SpanContext().TraceID().String()) {
		t.Fatalf("the client's sampled trace was not followed; output %d bytes", len(spans))
	}
	if n := strings.Count(spans, `"TraceID"`); n == 0 || strings.Count(spans, clientSpan.SpanContext().TraceID().String()) < n {
		t.Errorf("spans outside the client's trace were recorded at ratio 1e-12: %d spans, %d in the client's trace", n, strings.Count(spans, clientSpan.SpanContext().TraceID().String()))
	}
}
