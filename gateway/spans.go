package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/policy"
)

// startSpan opens the server span of one MCP operation, continuing the
// client's trace from the HTTP traceparent header or params._meta (OTel MCP
// semantic conventions). With traces off it does nothing.
func (g *Gateway) startSpan(ctx context.Context, o *op, req mcp.Request) context.Context {
	if g.tel.tp == nil {
		return ctx
	}
	if ex := req.GetExtra(); ex != nil && ex.Header != nil {
		ctx = g.tel.prop.Extract(ctx, propagation.HeaderCarrier(ex.Header))
	}
	// Absent params arrive as a typed nil pointer: GetMeta would panic.
	if mp, ok := req.GetParams().(interface{ GetMeta() map[string]any }); ok && !reflect.ValueOf(mp).IsNil() {
		if meta := mp.GetMeta(); meta != nil {
			if tp, ok := meta["traceparent"].(string); ok {
				carrier := propagation.MapCarrier{"traceparent": tp}
				if ts, ok := meta["tracestate"].(string); ok {
					carrier["tracestate"] = ts
				}
				ctx = g.tel.prop.Extract(ctx, carrier)
			}
		}
	}
	attrs := []attribute.KeyValue{
		attribute.String("mcp.method.name", o.method),
		attribute.String("user.id", o.id.Subject),
		attribute.String("mandate.user.issuer", o.id.Issuer),
	}
	if o.ss != nil {
		if sid := o.ss.ID(); sid != "" {
			attrs = append(attrs, attribute.String("mcp.session.id", sid))
		}
		if ip := o.ss.InitializeParams(); ip != nil && ip.ProtocolVersion != "" {
			attrs = append(attrs, attribute.String("mcp.protocol.version", ip.ProtocolVersion))
		}
	}
	if ex := req.GetExtra(); ex != nil && ex.Header != nil {
		if id := ex.Header.Get(rpcIDHeader); id != "" {
			attrs = append(attrs, attribute.String("jsonrpc.request.id", id))
		}
	}
	if o.requestID != "" {
		attrs = append(attrs, attribute.String("http.request.header.x-request-id", o.requestID))
	}
	ctx, o.span = g.tel.tracer.Start(ctx, o.method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	return ctx
}

// rpcIDHeader carries the JSON-RPC id of a POST from passRPCID to
// startSpan: go-sdk gives its handlers the HTTP headers, not the id.
const rpcIDHeader = "Mandate-Internal-Jsonrpc-Id"

// passRPCID removes any client-sent rpcIDHeader and, with tracing on,
// sets it to the id of the JSON-RPC request in the body (one message per
// POST since protocol 2025-06-18; batches and odd ids get none).
func (g *Gateway) passRPCID(c *gin.Context) {
	c.Request.Header.Del(rpcIDHeader)
	if g.tel.tp == nil || c.Request.Method != http.MethodPost {
		return
	}
	body, ok := readBody(c)
	if !ok {
		return
	}
	var env struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &env) == nil && plainID(env.ID) {
		c.Request.Header.Set(rpcIDHeader, strings.Trim(string(env.ID), `"`))
	}
}

// reqCtxHeader links a go-sdk handler to the HTTP request that carried
// its message (bindRequest); clients cannot set it.
const reqCtxHeader = "Mandate-Internal-Request"

var reqSeq atomic.Uint64

// bindRequest makes the HTTP request's context findable from the go-sdk
// handler of its message. In stateful mode go-sdk does not cancel a
// handler when the client's POST goes away (it keeps the stream for
// resumption, which needs an event store Mandate does not keep), so the
// router cancels the routed call itself, and the upstream is told
// (notifications/cancelled) instead of running on for nobody.
func (g *Gateway) bindRequest(c *gin.Context) {
	c.Request.Header.Del(reqCtxHeader)
	if c.Request.Method != http.MethodPost {
		return
	}
	key := strconv.FormatUint(reqSeq.Add(1), 36)
	c.Request.Header.Set(reqCtxHeader, key)
	g.requests.Store(key, c.Request.Context())
	defer g.requests.Delete(key)
	c.Next()
}

// requestScoped returns ctx, cancelled as well when the client's HTTP
// request for this message ends; stop releases it.
func (g *Gateway) requestScoped(ctx context.Context, req mcp.Request) (_ context.Context, stop func()) {
	ex := req.GetExtra()
	if ex == nil || ex.Header == nil {
		return ctx, func() {}
	}
	v, ok := g.requests.Load(ex.Header.Get(reqCtxHeader))
	if !ok {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(v.(context.Context), func() { cancel(errClientGone) })
	return ctx, func() { unhook(); cancel(nil) }
}

// errClientGone is the cause of a call cancelled because its client left.
var errClientGone = errors.New("the client closed the request")

// startFastSpan opens the server span of a fast-path tools/call (the
// same name and attributes as startSpan, plus jsonrpc.request.id, which
// the fast path knows) and records the policy decision, already made, as
// a child span with its real start and end times.
func (g *Gateway) startFastSpan(ctx context.Context, o *op, hdr http.Header, meta json.RawMessage, reqID json.RawMessage, dec policy.Decision, polStart, polEnd time.Time) context.Context {
	ctx = g.tel.prop.Extract(ctx, propagation.HeaderCarrier(hdr))
	if len(meta) > 0 && bytes.Contains(meta, []byte("traceparent")) {
		var m map[string]any
		if json.Unmarshal(meta, &m) == nil {
			carrier := propagation.MapCarrier{}
			for _, k := range []string{"traceparent", "tracestate"} {
				if v, ok := m[k].(string); ok {
					carrier[k] = v
				}
			}
			ctx = g.tel.prop.Extract(ctx, carrier)
		}
	}
	attrs := []attribute.KeyValue{
		attribute.String("mcp.method.name", o.method),
		attribute.String("user.id", o.id.Subject),
		attribute.String("mandate.user.issuer", o.id.Issuer),
		attribute.String("jsonrpc.request.id", strings.Trim(string(reqID), `"`)),
		attribute.String("mandate.path", "fast"),
	}
	if sid := hdr.Get("Mcp-Session-Id"); sid != "" {
		attrs = append(attrs, attribute.String("mcp.session.id", sid))
	}
	if v := hdr.Get("Mcp-Protocol-Version"); v != "" {
		attrs = append(attrs, attribute.String("mcp.protocol.version", v))
	}
	if o.requestID != "" {
		attrs = append(attrs, attribute.String("http.request.header.x-request-id", o.requestID))
	}
	ctx, o.span = g.tel.tracer.Start(ctx, o.method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...),
		trace.WithTimestamp(o.start))
	_, ps := g.tel.tracer.Start(ctx, "policy.evaluate", trace.WithTimestamp(polStart), trace.WithAttributes(
		attribute.String("mandate.upstream", o.upstream), attribute.Bool("mandate.policy.allow", dec.Allow),
		attribute.String("mandate.policy.rule", dec.Rule), attribute.String("mandate.policy.reason", dec.Reason)))
	ps.End(trace.WithTimestamp(polEnd))
	return ctx
}

// evaluate runs the policy, inside a child span when tracing is on.
func (g *Gateway) evaluate(ctx context.Context, o *op, st *state, in policy.Input) policy.Decision {
	if o.span == nil {
		return st.policy.Evaluate(ctx, in)
	}
	_, span := g.tel.tracer.Start(trace.ContextWithSpan(ctx, o.span), "policy.evaluate", trace.WithAttributes(
		attribute.String("mandate.upstream", in.Upstream)))
	d := st.policy.Evaluate(ctx, in)
	span.SetAttributes(attribute.Bool("mandate.policy.allow", d.Allow), attribute.String("mandate.policy.rule", d.Rule),
		attribute.String("mandate.policy.reason", d.Reason))
	span.End()
	return d
}

// endSpan completes the server span and records metrics for o.
func (g *Gateway) observe(ctx context.Context, o *op, err error) {
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
	g.tel.serverDur.Record(ctx, dur, metric.WithAttributes(mattrs...))
	if o.outcome == "denied" {
		g.tel.denials.Add(ctx, 1, metric.WithAttributes(attribute.String("mandate.upstream", o.upstream), attribute.String("reason", errorTypeLabel(o.errClass))))
	}
	if o.span == nil {
		return
	}
	if target != "" {
		o.span.SetName(o.method + " " + target)
	}
	var attrs []attribute.KeyValue
	if o.upstream != "" {
		attrs = append(attrs, attribute.String("mandate.upstream", o.upstream))
	}
	if o.tool != "" {
		attrs = append(attrs, attribute.String("gen_ai.tool.name", o.tool))
	}
	if o.prompt != "" {
		attrs = append(attrs, attribute.String("gen_ai.prompt.name", o.prompt))
	}
	if o.resource != "" {
		attrs = append(attrs, attribute.String("mcp.resource.uri", o.resource))
	}
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
func (g *Gateway) upstreamCall(ctx context.Context, o *op, u *upstream, method, target string) (context.Context, func(error)) {
	start := time.Now()
	var span trace.Span
	if o.span != nil && (u.cfg.Kind != "mcp" || o.fast) {
		name := method
		if target != "" {
			name += " " + target
		}
		ctx, span = g.tel.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
			attribute.String("mcp.method.name", method), attribute.String("mandate.upstream", u.name),
			attribute.String("server.address", u.cfg.URL)))
	}
	return ctx, func(err error) {
		attrs := []attribute.KeyValue{attribute.String("mcp.method.name", method), attribute.String("mandate.upstream", u.name)}
		if err != nil {
			attrs = append(attrs, attribute.String("error.type", "upstream_error"))
		}
		g.tel.clientDur.Record(ctx, time.Since(start).Seconds(), metric.WithAttributes(attrs...))
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
