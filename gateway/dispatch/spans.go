package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/policy"
)

// traceMeta is the trace context a client put in params._meta (OTel MCP
// semantic conventions).
type traceMeta struct{ parent, state string }

// metaTrace reads the trace context from typed params.
func metaTrace(p mcp.Params) traceMeta {
	// Absent params arrive as a typed nil pointer: GetMeta would panic.
	mp, ok := p.(interface{ GetMeta() map[string]any })
	if !ok || reflect.ValueOf(mp).IsNil() {
		return traceMeta{}
	}
	meta := mp.GetMeta()
	tp, _ := meta["traceparent"].(string)
	ts, _ := meta["tracestate"].(string)
	return traceMeta{tp, ts}
}

// rawMetaTrace reads the trace context from _meta as sent.
func rawMetaTrace(meta json.RawMessage) traceMeta {
	if len(meta) == 0 || !bytes.Contains(meta, []byte("traceparent")) {
		return traceMeta{}
	}
	var m struct {
		Parent string `json:"traceparent"`
		State  string `json:"tracestate"`
	}
	_ = json.Unmarshal(meta, &m)
	return traceMeta{m.Parent, m.State}
}

// startSpan opens the server span of one MCP operation, continuing the
// client's trace from the HTTP traceparent header or params._meta. With
// traces off it does nothing.
func (g *Dispatcher) startSpan(ctx context.Context, o *call, hdr http.Header, tm traceMeta) context.Context {
	if g.Tel.TP == nil {
		return ctx
	}
	if hdr != nil {
		ctx = g.Tel.Prop.Extract(ctx, propagation.HeaderCarrier(hdr))
	}
	if tm.parent != "" {
		carrier := propagation.MapCarrier{"traceparent": tm.parent}
		if tm.state != "" {
			carrier["tracestate"] = tm.state
		}
		ctx = g.Tel.Prop.Extract(ctx, carrier)
	}
	attrs := make([]attribute.KeyValue, 0, 8)
	attrs = append(attrs,
		attribute.String("mcp.method.name", o.method),
		attribute.String("user.id", o.id.Subject),
		attribute.String("mandate.user.issuer", o.id.Issuer))
	attrs = withString(attrs, "mcp.session.id", o.sessionID)
	attrs = withString(attrs, "mcp.protocol.version", o.proto)
	attrs = withString(attrs, "jsonrpc.request.id", o.rpcID)
	attrs = withString(attrs, "http.request.header.x-request-id", o.requestID)
	if o.fast {
		attrs = append(attrs, attribute.String("mandate.path", "fast"))
	}
	ctx, o.span = g.Tel.Tracer.Start(ctx, o.method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...),
		trace.WithTimestamp(o.start))
	return ctx
}

// evaluate runs the policy, inside a child span when tracing is on.
func (g *Dispatcher) evaluate(ctx context.Context, o *call, st *catalog.State, in policy.Input) policy.Decision {
	if o.span == nil {
		return st.Policy.Evaluate(ctx, in)
	}
	_, span := g.Tel.Tracer.Start(trace.ContextWithSpan(ctx, o.span), "policy.evaluate", trace.WithAttributes(
		attribute.String("mandate.upstream", in.Upstream)))
	d := st.Policy.Evaluate(ctx, in)
	span.SetAttributes(attribute.Bool("mandate.policy.allow", d.Allow), attribute.String("mandate.policy.rule", d.Rule),
		attribute.String("mandate.policy.reason", d.Reason))
	span.End()
	return d
}

// endSpan completes the server span and records metrics for o.
func (g *Dispatcher) observe(ctx context.Context, o *call, err error) {
	target := o.exposed
	if target == "" {
		target = o.resource
	}
	dur := time.Since(o.start).Seconds()
	mattrs := []attribute.KeyValue{attribute.String("mcp.method.name", o.method)}
	if o.upstream != "" {
		mattrs = append(mattrs, attribute.String("mandate.upstream", o.upstream))
	}
	if o.errClass != "" {
		mattrs = append(mattrs, attribute.String("error.type", errorTypeLabel(o.errClass)))
	}
	g.Tel.ServerDur.Record(ctx, dur, metric.WithAttributes(mattrs...))
	if o.outcome == "denied" {
		g.Tel.Denials.Add(ctx, 1, metric.WithAttributes(attribute.String("mandate.upstream", o.upstream), attribute.String("reason", errorTypeLabel(o.errClass))))
	}
	if o.span == nil {
		return
	}
	if target != "" {
		o.span.SetName(o.method + " " + target)
	}
	var attrs []attribute.KeyValue
	attrs = withString(attrs, "mandate.upstream", o.upstream)
	attrs = withString(attrs, "gen_ai.tool.name", o.tool)
	attrs = withString(attrs, "gen_ai.prompt.name", o.prompt)
	attrs = withString(attrs, "mcp.resource.uri", o.resource)
	if o.decision != nil {
		attrs = append(attrs, attribute.Bool("mandate.policy.allow", o.decision.Allow), attribute.String("mandate.policy.rule", o.decision.Rule))
	}
	if s := o.info.Snapshot(); s.Flow != "" {
		attrs = append(attrs, attribute.String("mandate.credentials.flow", s.Flow),
			attribute.String("mandate.platform.subject", s.PlatformSubject),
			attribute.Bool("mandate.credentials.service_account", s.ServiceAccount),
			attribute.Bool("mandate.credentials.cache_hit", s.CacheHit))
	}
	if o.errClass != "" {
		attrs = append(attrs, attribute.String("error.type", o.errClass))
		o.span.SetStatus(codes.Error, o.errMsg)
	} else if err != nil {
		attrs = append(attrs, attribute.String("error.type", fmt.Sprintf("%T", err)))
		o.span.SetStatus(codes.Error, err.Error())
	}
	o.span.SetAttributes(attrs...)
	o.span.End()
}

// upstreamCall wraps one call to an upstream: a client span for adapters
// that make none themselves (native kinds; the mcp adapter makes its own
// and propagates trace context), and the mcp.client.operation.duration
// metric for all.
func (g *Dispatcher) upstreamCall(ctx context.Context, o *call, u *catalog.Upstream, method, target string) (context.Context, func(error)) {
	start := time.Now()
	var span trace.Span
	if o.span != nil && (u.Cfg.Kind != "mcp" || o.fast) {
		name := method
		if target != "" {
			name += " " + target
		}
		ctx, span = g.Tel.Tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("mcp.method.name", method), attribute.String("mandate.upstream", u.Name),
			attribute.String("server.address", u.Cfg.URL)))
	}
	return ctx, func(err error) {
		attrs := []attribute.KeyValue{attribute.String("mcp.method.name", method), attribute.String("mandate.upstream", u.Name)}
		if err != nil {
			attrs = append(attrs, attribute.String("error.type", "upstream_error"))
		}
		g.Tel.ClientDur.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
		if span != nil {
			if s := o.info.Snapshot(); s.Flow != "" {
				span.SetAttributes(attribute.String("mandate.platform.subject", s.PlatformSubject))
			}
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// withString appends the attribute key=val when val is set.
func withString(attrs []attribute.KeyValue, key, val string) []attribute.KeyValue {
	if val == "" {
		return attrs
	}
	return append(attrs, attribute.String(key, val))
}
