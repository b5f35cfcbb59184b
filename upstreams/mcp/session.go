package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// MCP notification methods relayed to OpenOptions.Events.
const (
	MethodProgress            = "notifications/progress"
	MethodLoggingMessage      = "notifications/message"
	MethodToolListChanged     = "notifications/tools/list_changed"
	MethodPromptListChanged   = "notifications/prompts/list_changed"
	MethodResourceListChanged = "notifications/resources/list_changed"
	MethodResourceUpdated     = "notifications/resources/updated"
)

const methodElicit = "elicitation/create"

// session is one user's session on the upstream. The go-sdk client session
// behind it is created on first use, shared by concurrent first calls, and
// replaced when it breaks (the next call reconnects).
type session struct {
	a       *Adapter
	events  upstreams.EventHandler
	version string
	userKey string // identity.Key() of the user the session is bound to; "" anonymous

	id      atomic.Pointer[identity.Identity] // latest identity seen on a call
	notes   noteTracker
	logging atomic.Bool // the upstream may send log messages: wait for them

	client *sdk.Client
	http   *http.Client

	mu        sync.Mutex
	cs        *sdk.ClientSession
	attempt   *attempt // connection attempt in flight, or nil
	connected bool     // a connection succeeded before (replay state on reconnect)
	closed    bool
	level     sdk.LoggingLevel
	subs      map[string]struct{}
	bg        sync.WaitGroup // dials, watchers, async closes
}

type attempt struct {
	done   chan struct{}
	err    error
	cancel context.CancelFunc
}

func newSession(a *Adapter, id *identity.Identity, opts upstreams.OpenOptions) *session {
	s := &session{a: a, events: opts.Events, version: opts.ProtocolVersion, subs: map[string]struct{}{}}
	if s.version == "" {
		s.version = DefaultProtocolVersion
	}
	if id != nil {
		s.userKey = id.Key()
		s.id.Store(id)
	}
	// sessionTransport refuses redirects; the policy only backs it up.
	s.http = &http.Client{Transport: &sessionTransport{s: s, next: a.next}, CheckRedirect: noRedirects}

	co := &sdk.ClientOptions{
		Logger: a.log,
		// No roots: Mandate does not relay them. Sampling and elicitation
		// are inferred below from the handlers.
		Capabilities: &sdk.ClientCapabilities{},
		ToolListChangedHandler: func(ctx context.Context, r *sdk.ToolListChangedRequest) {
			s.notify(ctx, MethodToolListChanged, r.Params)
		},
		PromptListChangedHandler: func(ctx context.Context, r *sdk.PromptListChangedRequest) {
			s.notify(ctx, MethodPromptListChanged, r.Params)
		},
		ResourceListChangedHandler: func(ctx context.Context, r *sdk.ResourceListChangedRequest) {
			s.notify(ctx, MethodResourceListChanged, r.Params)
		},
		ResourceUpdatedHandler: func(ctx context.Context, r *sdk.ResourceUpdatedNotificationRequest) {
			s.notify(ctx, MethodResourceUpdated, r.Params)
		},
		LoggingMessageHandler: func(ctx context.Context, r *sdk.LoggingMessageRequest) {
			s.logging.Store(true)
			s.notify(ctx, MethodLoggingMessage, r.Params)
		},
		ProgressNotificationHandler: func(ctx context.Context, r *sdk.ProgressNotificationClientRequest) {
			s.notify(ctx, MethodProgress, r.Params)
		},
	}
	if ev := s.events; ev != nil {
		co.CreateMessageHandler = func(ctx context.Context, r *sdk.CreateMessageRequest) (*sdk.CreateMessageResult, error) {
			res, err := ev.CreateMessage(s.eventCtx(ctx), r.Params)
			if err != nil {
				return nil, asRPCError(err)
			}
			return res, nil
		}
		// Elicitation requests are relayed by the receiving middleware (it
		// skips go-sdk's schema checks, which reject valid SEP-1330
		// schemas); this handler advertises the capability and serves the
		// 2026-07-28 input_required path, which bypasses middleware.
		co.ElicitationHandler = func(ctx context.Context, r *sdk.ElicitRequest) (*sdk.ElicitResult, error) {
			res, err := ev.Elicit(s.eventCtx(ctx), r.Params)
			if err != nil {
				return nil, asRPCError(err)
			}
			return res, nil
		}
	}
	s.client = sdk.NewClient(&sdk.Implementation{Name: "mandate", Title: "Mandate MCP gateway", Version: "1"}, co)
	s.client.AddReceivingMiddleware(s.receiving)
	return s
}

func noRedirects(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

// receiving counts relayed progress/log notifications for noteTracker and
// relays elicitation requests without go-sdk's schema validation.
func (s *session) receiving(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		switch method {
		case MethodProgress, MethodLoggingMessage:
			defer s.notes.handled()
		case methodElicit:
			if r, ok := req.(*sdk.ElicitRequest); ok && s.events != nil {
				res, err := s.events.Elicit(s.eventCtx(ctx), r.Params)
				if err != nil {
					return nil, asRPCError(err)
				}
				return res, nil
			}
		}
		return next(ctx, method, req)
	}
}

func (s *session) notify(ctx context.Context, method string, p sdk.Params) {
	if s.events != nil {
		s.events.Notify(s.eventCtx(ctx), method, p)
	}
}

// eventCtx gives upstream-initiated work the session's user.
func (s *session) eventCtx(ctx context.Context) context.Context {
	if identity.FromContext(ctx) == nil {
		if id := s.id.Load(); id != nil {
			return identity.NewContext(ctx, id)
		}
	}
	return ctx
}

// asRPCError keeps a *jsonrpc.Error (the gateway chose the code) and turns
// anything else into an internal error rather than go-sdk's code 0.
func asRPCError(err error) error {
	var werr *jsonrpc.Error
	if errors.As(err, &werr) {
		return werr
	}
	return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: err.Error()}
}

// bind checks that ctx's user is the session's user and keeps the latest
// identity (a refreshed inbound token) for later exchanges.
func (s *session) bind(ctx context.Context) error {
	id := identity.FromContext(ctx)
	if id == nil {
		return nil
	}
	if id.Key() != s.userKey {
		return s.a.rpcError(CodeSessionClosed, nil, "this upstream session belongs to another user")
	}
	if s.id.Load() != id {
		s.id.Store(id)
	}
	return nil
}

// conn returns the live client session, connecting if there is none. One
// attempt runs at a time, detached from the callers (a cancelled first
// caller does not fail the others), bounded by the upstream's timeout. A
// failed attempt is not remembered: the next call tries again.
func (s *session) conn(ctx context.Context) (*sdk.ClientSession, error) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, s.a.rpcError(CodeSessionClosed, nil, "session is closed")
		}
		if s.cs != nil {
			cs := s.cs
			s.mu.Unlock()
			return cs, nil
		}
		att := s.attempt
		if att == nil {
			att = s.startDialLocked(ctx)
		}
		s.mu.Unlock()
		select {
		case <-att.done:
			if att.err != nil {
				return nil, att.err
			}
		case <-ctx.Done():
			return nil, s.a.ctxError(ctx)
		}
	}
}

// startDialLocked connects in the background, detached from the caller's
// cancellation (concurrent first calls share the attempt) but inside the
// first caller's trace, so the exchange and initialize spans join it.
func (s *session) startDialLocked(ctx context.Context) *attempt {
	base := trace.ContextWithSpanContext(context.Background(), trace.SpanContextFromContext(ctx))
	dctx, cancel := context.WithTimeoutCause(base, s.a.timeout, errTimeout)
	att := &attempt{done: make(chan struct{}), cancel: cancel}
	s.attempt = att
	replay := s.connected
	level := s.level
	var subs []string
	for u := range s.subs {
		subs = append(subs, u)
	}
	s.bg.Go(func() {
		defer cancel()
		cs, err := s.dial(dctx)
		if err == nil && replay {
			s.replay(dctx, cs, level, subs)
		}
		s.mu.Lock()
		s.attempt = nil
		if err == nil {
			if s.closed {
				s.mu.Unlock()
				_ = cs.Close()
				att.err = s.a.rpcError(CodeSessionClosed, nil, "session is closed")
				close(att.done)
				return
			}
			s.cs = cs
			s.connected = true
			s.bg.Go(func() { s.watch(cs) })
		}
		att.err = err
		s.mu.Unlock()
		close(att.done)
	})
	return att
}

func (s *session) dial(dctx context.Context) (*sdk.ClientSession, error) {
	st := &callState{}
	ctx, cancel := context.WithCancelCause(dctx)
	defer cancel(nil)
	st.cancel = cancel
	ctx = context.WithValue(ctx, callStateKey{}, st)
	t := &sdk.StreamableClientTransport{
		Endpoint:     s.a.endpoint,
		HTTPClient:   s.http,
		MaxEventSize: int(s.a.maxBytes),
	}
	cs, err := s.client.Connect(ctx, t, &sdk.ClientSessionOptions{ProtocolVersion: s.version})
	if err != nil {
		merr, o := s.a.mapError(ctx, ctx, err, st, true)
		s.a.record(o, merr)
		level := slog.LevelWarn // a user who has yet to connect their account is no problem of the upstream
		if cre := (*credentials.ConsentRequiredError)(nil); errors.As(merr, &cre) {
			level = slog.LevelInfo
		}
		s.a.log.Log(ctx, level, "connecting to upstream failed", "error", merr.Error())
		return nil, merr
	}
	return cs, nil
}

// replay restores the logging level and resource subscriptions after a
// reconnect (a new upstream session knows neither).
func (s *session) replay(ctx context.Context, cs *sdk.ClientSession, level sdk.LoggingLevel, subs []string) {
	if level != "" {
		if err := cs.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: level}); err != nil {
			s.a.log.Warn("restoring logging level after reconnect failed", "error", err)
		}
	}
	for _, u := range subs {
		if err := cs.Subscribe(ctx, &sdk.SubscribeParams{URI: u}); err != nil {
			s.a.log.Warn("restoring resource subscription after reconnect failed", "uri", u, "error", err)
		}
	}
}

// watch forgets cs when its connection ends (upstream went away, a fatal
// transport error), so that the next call reconnects.
func (s *session) watch(cs *sdk.ClientSession) {
	err := cs.Wait()
	s.mu.Lock()
	mine := s.cs == cs
	if mine {
		s.cs = nil
	}
	closed := s.closed
	s.mu.Unlock()
	if mine && !closed {
		s.a.log.Info("upstream session ended; the next call reconnects", "error", err)
	}
}

// drop discards a broken client session.
func (s *session) drop(cs *sdk.ClientSession) {
	s.mu.Lock()
	if s.cs == cs {
		s.cs = nil
	}
	s.mu.Unlock()
	s.bg.Go(func() { _ = cs.Close() })
}

// Close implements upstreams.Session: it ends the upstream session (DELETE)
// and waits for the session's goroutines.
func (s *session) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cs := s.cs
	s.cs = nil
	if s.attempt != nil {
		s.attempt.cancel()
	}
	s.mu.Unlock()
	s.a.forget(s)
	var err error
	if cs != nil {
		err = cs.Close()
		if errors.Is(err, sdk.ErrConnectionClosed) {
			err = nil
		}
	}
	s.bg.Wait()
	return err
}

func (s *session) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (a *Adapter) ctxError(ctx context.Context) error {
	if errors.Is(context.Cause(ctx), errTimeout) {
		return a.rpcError(CodeUpstreamTimeout, nil, "timed out after %s", a.timeout)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return a.rpcError(CodeUpstreamTimeout, nil, "the caller's deadline expired")
	}
	return errors.Join(errors.New("upstream "+a.name), context.Cause(ctx))
}

// do runs one upstream operation: identity binding, span, connection, the
// per-call timeout, notification settling and error mapping. A call that
// provably did not reach the upstream (dead connection, or the upstream
// forgot the session: HTTP 404) is retried once on a fresh connection.
func do[R any](s *session, ctx context.Context, method, target string, progress bool, f func(context.Context, *sdk.ClientSession) (R, error)) (R, error) {
	var zero R
	if err := s.bind(ctx); err != nil {
		return zero, err
	}
	var span trace.Span
	if s.a.tracer != nil {
		name := method
		if target != "" {
			name += " " + target
		}
		ctx, span = s.a.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.String("mcp.method.name", method), attribute.String("mandate.upstream", s.a.name)))
		defer span.End()
	}
	fail := func(err error) (R, error) {
		if span != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		return zero, err
	}
	for try := 0; ; try++ {
		cs, err := s.conn(ctx)
		if err != nil {
			return fail(err)
		}
		st := &callState{}
		tctx, cancelT := context.WithTimeoutCause(ctx, s.a.timeout, errTimeout)
		cctx, cancelC := context.WithCancelCause(tctx)
		st.cancel = cancelC
		cctx = context.WithValue(cctx, callStateKey{}, st)
		res, err := f(cctx, cs)
		if progress || s.logging.Load() {
			s.notes.settle(ctx, s.a.grace)
		}
		if err == nil {
			cancelC(nil)
			cancelT()
			s.a.record(outcomeOK, nil)
			return res, nil
		}
		snap := st.snapshot()
		if try == 0 && ctx.Err() == nil && (errors.Is(err, sdk.ErrSessionMissing) || snap.requests == 0) {
			cancelC(nil)
			cancelT()
			s.drop(cs)
			continue
		}
		merr, o := s.a.mapError(ctx, cctx, err, st, false)
		cancelC(nil)
		cancelT()
		if s.isClosed() && ctx.Err() == nil {
			merr, o = s.a.rpcError(CodeSessionClosed, nil, "the session was closed during the call"), outcomeNeutral
		}
		s.a.record(o, merr)
		if o == outcomeFailure {
			s.a.log.Warn("upstream call failed", "method", method, "error", merr.Error())
		}
		return fail(merr)
	}
}

// traceMeta returns m plus the trace context of ctx (traceparent,
// tracestate) when a propagator is configured and a span is active; else m.
func (s *session) traceMeta(ctx context.Context, m sdk.Meta) sdk.Meta {
	if s.a.prop == nil || !trace.SpanContextFromContext(ctx).IsValid() {
		return m
	}
	carrier := propagation.MapCarrier{}
	s.a.prop.Inject(ctx, carrier)
	if len(carrier) == 0 {
		return m
	}
	out := make(sdk.Meta, len(m)+len(carrier))
	for k, v := range m {
		out[k] = v
	}
	for k, v := range carrier {
		out[k] = v
	}
	return out
}

// withMeta runs f with params whose _meta carries trace context: a shallow
// copy of p, so the caller's params are never modified.
func withMeta[P any, PP interface {
	*P
	GetMeta() map[string]any
	SetMeta(map[string]any)
}](s *session, ctx context.Context, p PP) PP {
	if p == nil {
		p = new(P)
	} else {
		cp := *p
		p = &cp
	}
	if m := s.traceMeta(ctx, p.GetMeta()); m != nil {
		p.SetMeta(m)
	}
	return p
}

func hasProgress(m map[string]any) bool { return m["progressToken"] != nil }

func (s *session) ListTools(ctx context.Context, p *sdk.ListToolsParams) (*sdk.ListToolsResult, error) {
	return do(s, ctx, "tools/list", "", false, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ListToolsResult, error) {
		res, err := cs.ListTools(ctx, withMeta(s, ctx, p))
		if err != nil {
			return nil, err
		}
		res.Tools = s.validTools(res.Tools)
		return res, nil
	})
}

// CallTool calls the tool. p.Arguments may be a json.RawMessage, which is
// sent as is; p.Meta (progress token) passes through.
func (s *session) CallTool(ctx context.Context, p *sdk.CallToolParams) (*sdk.CallToolResult, error) {
	var name string
	var progress bool
	if p != nil {
		name, progress = p.Name, hasProgress(p.Meta)
		if !argumentsObject(p.Arguments) {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("tool %q: arguments must be a JSON object", name)}
		}
	}
	return do(s, ctx, "tools/call", name, progress, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.CallToolResult, error) {
		return cs.CallTool(ctx, withMeta(s, ctx, p))
	})
}

func (s *session) ListResources(ctx context.Context, p *sdk.ListResourcesParams) (*sdk.ListResourcesResult, error) {
	return do(s, ctx, "resources/list", "", false, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ListResourcesResult, error) {
		res, err := cs.ListResources(ctx, withMeta(s, ctx, p))
		if err != nil {
			return nil, err
		}
		res.Resources = s.validResources(res.Resources)
		return res, nil
	})
}

func (s *session) ListResourceTemplates(ctx context.Context, p *sdk.ListResourceTemplatesParams) (*sdk.ListResourceTemplatesResult, error) {
	return do(s, ctx, "resources/templates/list", "", false, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ListResourceTemplatesResult, error) {
		res, err := cs.ListResourceTemplates(ctx, withMeta(s, ctx, p))
		if err != nil {
			return nil, err
		}
		res.ResourceTemplates = s.validTemplates(res.ResourceTemplates)
		return res, nil
	})
}

func (s *session) ReadResource(ctx context.Context, p *sdk.ReadResourceParams) (*sdk.ReadResourceResult, error) {
	var uri string
	var progress bool
	if p != nil {
		uri, progress = p.URI, hasProgress(p.Meta)
	}
	return do(s, ctx, "resources/read", uri, progress, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ReadResourceResult, error) {
		return cs.ReadResource(ctx, withMeta(s, ctx, p))
	})
}

func (s *session) ListPrompts(ctx context.Context, p *sdk.ListPromptsParams) (*sdk.ListPromptsResult, error) {
	return do(s, ctx, "prompts/list", "", false, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.ListPromptsResult, error) {
		res, err := cs.ListPrompts(ctx, withMeta(s, ctx, p))
		if err != nil {
			return nil, err
		}
		res.Prompts = s.validPrompts(res.Prompts)
		return res, nil
	})
}

func (s *session) GetPrompt(ctx context.Context, p *sdk.GetPromptParams) (*sdk.GetPromptResult, error) {
	var name string
	var progress bool
	if p != nil {
		name, progress = p.Name, hasProgress(p.Meta)
	}
	return do(s, ctx, "prompts/get", name, progress, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.GetPromptResult, error) {
		return cs.GetPrompt(ctx, withMeta(s, ctx, p))
	})
}

func (s *session) Complete(ctx context.Context, p *sdk.CompleteParams) (*sdk.CompleteResult, error) {
	return do(s, ctx, "completion/complete", "", false, func(ctx context.Context, cs *sdk.ClientSession) (*sdk.CompleteResult, error) {
		return cs.Complete(ctx, withMeta(s, ctx, p))
	})
}

// Subscribe subscribes to a resource; the subscription is restored if the
// upstream session has to be re-established.
func (s *session) Subscribe(ctx context.Context, p *sdk.SubscribeParams) error {
	_, err := do(s, ctx, "resources/subscribe", "", false, func(ctx context.Context, cs *sdk.ClientSession) (struct{}, error) {
		return struct{}{}, cs.Subscribe(ctx, withMeta(s, ctx, p))
	})
	if err == nil && p != nil {
		s.mu.Lock()
		s.subs[p.URI] = struct{}{}
		s.mu.Unlock()
	}
	return err
}

func (s *session) Unsubscribe(ctx context.Context, p *sdk.UnsubscribeParams) error {
	if p != nil {
		s.mu.Lock()
		delete(s.subs, p.URI)
		s.mu.Unlock()
	}
	_, err := do(s, ctx, "resources/unsubscribe", "", false, func(ctx context.Context, cs *sdk.ClientSession) (struct{}, error) {
		return struct{}{}, cs.Unsubscribe(ctx, withMeta(s, ctx, p))
	})
	return err
}

// SetLoggingLevel sets the upstream's log level (restored on reconnect) and
// makes calls wait for log messages that precede their results.
func (s *session) SetLoggingLevel(ctx context.Context, p *sdk.SetLoggingLevelParams) error {
	s.logging.Store(true)
	_, err := do(s, ctx, "logging/setLevel", "", false, func(ctx context.Context, cs *sdk.ClientSession) (struct{}, error) {
		return struct{}{}, cs.SetLoggingLevel(ctx, withMeta(s, ctx, p))
	})
	if err == nil && p != nil {
		s.mu.Lock()
		s.level = p.Level
		s.mu.Unlock()
	}
	return err
}

// argumentsObject reports whether tool-call arguments are a JSON object
// (or absent), as MCP requires; raw bytes are checked without decoding.
func argumentsObject(a any) bool {
	var raw []byte
	switch v := a.(type) {
	case nil:
		return true
	case json.RawMessage:
		raw = v
	case map[string]any:
		return true
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return false
		}
		raw = b
	}
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || raw[0] == '{' || string(raw) == "null"
}
