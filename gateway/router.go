package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/yosida95/uritemplate/v3"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// JSON-RPC error codes Mandate returns (server-defined range; shared with
// the adapters in package upstreams).
const (
	// CodeRateLimited: the user exceeded a per-upstream rate limit.
	CodeRateLimited = upstreams.CodeRateLimited
	// CodeCredentials: no platform token could be obtained for the user.
	CodeCredentials = upstreams.CodeCredentialsUnavailable
	// CodeUpstream: the upstream failed (down, timeout, bad answer).
	CodeUpstream = upstreams.CodeUpstreamUnavailable
	// CodeResourceNotFound is the MCP spec's code for an unknown resource.
	CodeResourceNotFound = -32002
)

// routedMethods are the methods Mandate serves itself from its upstreams.
var routedMethods = map[string]bool{
	"tools/list": true, "tools/call": true,
	"resources/list": true, "resources/templates/list": true, "resources/read": true,
	"resources/subscribe": true, "resources/unsubscribe": true,
	"prompts/list": true, "prompts/get": true,
	"completion/complete": true, "logging/setLevel": true,
}

// op is one MCP operation being served: what the audit record, metrics and
// span are made from.
type op struct {
	start     time.Time
	method    string
	id        *identity.Identity
	d         *dsession
	ss        *mcp.ServerSession
	requestID string
	upstream  string
	tool      string
	resource  string
	prompt    string
	exposed   string         // the tool or prompt name as the client used it
	args      map[string]any // redacted arguments, when the upstream opted in
	decision  *policy.Decision
	info      *callinfo.Info
	outcome   string
	errClass  string
	errMsg    string
	span      trace.Span // nil when tracing is off
	fast      bool       // served by the fast path
}

// middleware is go-sdk receiving middleware: Mandate answers the catalog
// and routed methods for the calling user; everything else (initialize,
// ping, notifications) goes to go-sdk.
func (g *Gateway) middleware(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (res mcp.Result, err error) {
		if method == "initialize" {
			return g.initialize(ctx, method, req, next)
		}
		if !routedMethods[method] {
			return next(ctx, method, req)
		}
		// go-sdk runs handlers on its own goroutines: a panic here that is
		// not recovered ends the process, so this covers everything until
		// the audited recovery below takes over.
		defer func() {
			if rec := recover(); rec != nil {
				g.log.Error("panic serving MCP request", "method", method, "panic", rec, "stack", string(debug.Stack()))
				res, err = nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "internal error"}
			}
		}()
		ss, _ := req.GetSession().(*mcp.ServerSession)
		var id *identity.Identity
		if ex := req.GetExtra(); ex != nil {
			id = identityFrom(ex.TokenInfo)
		}
		if id == nil || ss == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated"}
		}
		st := g.state.Load()
		o := &op{start: time.Now(), method: method, id: id, ss: ss}
		if ex := req.GetExtra(); ex != nil && ex.Header != nil {
			o.requestID = ex.Header.Get(RequestIDHeader)
		}
		o.d = g.sessionFor(ctx, ss, id)
		ctx, stop := g.requestScoped(ctx, req)
		defer stop()
		ctx = identity.NewContext(ctx, id)
		ctx, o.info = callinfo.NewContext(ctx)
		ctx = g.startSpan(ctx, o, req)
		defer func() {
			// A bug must cost one request, never the process.
			if rec := recover(); rec != nil {
				g.log.Error("panic serving MCP request", "method", method, "panic", rec, "stack", string(debug.Stack()))
				res, err = nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "internal error"}
				o.errClass = "internal_error"
			}
			if aerr := g.finish(ctx, o, err); aerr != nil {
				res, err = nil, aerr
			}
		}()
		proto := ""
		if ip := ss.InitializeParams(); ip != nil {
			proto = ip.ProtocolVersion
		}
		res, err = g.serve(ctx, st, o, method, req, next)
		if err == nil && res != nil {
			res = shapeResult(st, proto, res)
		}
		return res, err
	}
}

// initialize lets go-sdk answer, then counts the new session for its user
// at once (server.session.max_per_user holds for sessions that never make
// a call).
func (g *Gateway) initialize(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	res, err := next(ctx, method, req)
	if err != nil || g.stateless {
		return res, err
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	var id *identity.Identity
	if ex := req.GetExtra(); ex != nil {
		id = identityFrom(ex.TokenInfo)
	}
	if ss != nil && id != nil {
		g.sessionFor(ctx, ss, id)
	}
	return res, err
}

func (g *Gateway) serve(ctx context.Context, st *state, o *op, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	missing := func() (mcp.Result, error) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "missing params for " + method}
	}
	if err := g.admitAudit(o); err != nil {
		return nil, err
	}
	switch p := req.GetParams().(type) {
	case *mcp.ListToolsParams:
		return g.listTools(ctx, st, o, orNew(p))
	case *mcp.CallToolParamsRaw:
		if p == nil {
			return missing()
		}
		return g.callTool(ctx, st, o, p)
	case *mcp.ListResourcesParams:
		return g.listResources(ctx, st, o, orNew(p))
	case *mcp.ListResourceTemplatesParams:
		return g.listTemplates(ctx, st, o, orNew(p))
	case *mcp.ReadResourceParams:
		if p == nil {
			return missing()
		}
		return g.readResource(ctx, st, o, p)
	case *mcp.SubscribeParams:
		if p == nil {
			return missing()
		}
		if err := g.subscribe(ctx, st, o, p.URI, true, p, nil); err != nil {
			return nil, err
		}
		return next(ctx, method, req)
	case *mcp.UnsubscribeParams:
		if p == nil {
			return missing()
		}
		if err := g.subscribe(ctx, st, o, p.URI, false, nil, p); err != nil {
			return nil, err
		}
		return next(ctx, method, req)
	case *mcp.ListPromptsParams:
		return g.listPrompts(ctx, st, o, orNew(p))
	case *mcp.GetPromptParams:
		if p == nil {
			return missing()
		}
		return g.getPrompt(ctx, st, o, p)
	case *mcp.CompleteParams:
		if p == nil {
			return missing()
		}
		return g.complete(ctx, st, o, p)
	case *mcp.SetLoggingLevelParams:
		if p == nil {
			return missing()
		}
		return g.setLevel(ctx, st, o, p, method, req, next)
	}
	return missing()
}

// orNew returns p, or a zero value for absent (optional) list params.
func orNew[T any](p *T) *T {
	if p == nil {
		return new(T)
	}
	return p
}

// --- tools ---

func (g *Gateway) listTools(ctx context.Context, st *state, o *op, p *mcp.ListToolsParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	var builtin []*mcp.Tool
	taken := map[string]string{}
	if st.whoami != nil {
		builtin, taken[st.whoami.Name] = []*mcp.Tool{st.whoami}, "mandate"
	}
	tools := mergeListings(g, ctx, st, o, kindTools, builtin, taken,
		func(e *catalogEntry) []*mcp.Tool { return e.tools },
		func(u *upstream, t *mcp.Tool) (*mcp.Tool, string, bool) {
			name := u.exposedName(t.Name)
			if !st.visible(user, u, "tools/call", t.Name, "", "") || g.shadowed(st, u, "tool", t.Name, name) {
				return nil, "", false
			}
			c := *t
			c.Name = name
			return &c, name, true
		})
	return pageResult(tools, st.gen, p.Cursor, func(items []*mcp.Tool, next string) mcp.Result {
		return &mcp.ListToolsResult{Tools: items, NextCursor: next}
	})
}

func (g *Gateway) callTool(ctx context.Context, st *state, o *op, p *mcp.CallToolParamsRaw) (mcp.Result, error) {
	if st.isWhoAmI(p.Name) {
		o.upstream, o.tool, o.exposed = "mandate", whoamiTool.Name, p.Name
		return whoamiResult(o.id), nil
	}
	u, name, ok := st.route(p.Name)
	if !ok {
		return nil, unknownTool(p.Name)
	}
	o.upstream, o.tool, o.exposed = u.name, name, p.Name
	// Policy, audit and the upstream must read the same object: refuse
	// what parsers disagree on (repeated keys, keys equal ignoring case)
	// before anything looks at the arguments.
	if err := upstreams.CheckArguments(p.Arguments); err != nil {
		return nil, invalidArguments(o, err)
	}
	var args map[string]any
	if (st.usesArgs || u.cfg.AuditArguments) && len(p.Arguments) > 0 {
		if err := json.Unmarshal(p.Arguments, &args); err != nil {
			return nil, invalidArguments(o, err)
		}
	}
	if u.cfg.AuditArguments && args != nil {
		o.args = audit.Redact(args, u.cfg.AuditRedact)
	}
	if err := g.authorize(ctx, o, st, policy.Input{Upstream: u.name, Method: "tools/call", Tool: name, Arguments: args}); err != nil {
		// Same answer as for a tool that does not exist: no enumeration.
		return nil, unknownTool(p.Name)
	}
	has, lerr := g.hasTool(ctx, o.d, st, u, name)
	if !has && lerr != nil {
		// Fail closed: without the user's listing the call cannot be
		// checked against it. Credential failures become actionable tool
		// errors (the call would fail on the same credentials).
		if credentialsFailure(lerr) {
			return g.toolFailure(o, u, lerr)
		}
		uerr := g.upstreamError(o, u, lerr)
		msg := uerr.Error()
		if je := (*jsonrpc.Error)(nil); errors.As(uerr, &je) {
			msg = je.Message
		}
		o.errClass, o.errMsg = "listing_failed", msg+" (listing tools; the call was not made)"
		return nil, &jsonrpc.Error{Code: CodeUpstream, Message: o.errMsg}
	}
	if !has {
		o.outcome, o.errClass, o.errMsg = audit.OutcomeError, "unknown_tool", "not in the user's listing"
		return nil, unknownTool(p.Name)
	}
	if err := g.rateLimit(o, u); err != nil {
		return nil, err
	}
	sess, err := o.d.upstream(ctx, st, u)
	if err != nil {
		return g.toolFailure(o, u, err)
	}
	_, end := o.d.begin(ctx, o.ss, u.name, p.GetProgressToken())
	defer end()
	cctx, cancel := context.WithTimeoutCause(ctx, u.cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	cctx, done := g.upstreamCall(cctx, o, u, "tools/call", name)
	res, err := sess.CallTool(cctx, &mcp.CallToolParams{Meta: hopMeta(p.Meta), Name: name, Arguments: p.Arguments})
	done(err)
	if err != nil {
		return g.toolFailure(o, u, err)
	}
	if res.IsError {
		o.outcome, o.errClass = audit.OutcomeError, "tool_error"
	}
	return res, nil
}

// credentialsFailure reports whether err is a failure to get the user's
// platform credentials (from the broker, or an adapter's CodeCredentials).
func credentialsFailure(err error) bool {
	var ce *credentials.Error
	var je *jsonrpc.Error
	return errors.As(err, &ce) || (errors.As(err, &je) && je.Code == CodeCredentials)
}

// toolFailure turns a credentials failure into an actionable tool error
// (the user can act on it) and anything else into a JSON-RPC error.
func (g *Gateway) toolFailure(o *op, u *upstream, err error) (mcp.Result, error) {
	var ce *credentials.Error
	if errors.As(err, &ce) {
		o.outcome, o.errClass, o.errMsg = audit.OutcomeError, "credentials_"+orStr(ce.Code, "error"), ce.Error()
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: ce.Error()}}}, nil
	}
	// Adapters report credential failures as JSON-RPC errors with this
	// code; the user can act on them, so they become tool errors too.
	var je *jsonrpc.Error
	if errors.As(err, &je) && je.Code == CodeCredentials {
		o.outcome, o.errClass, o.errMsg = audit.OutcomeError, "credentials", je.Message
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: je.Message}}}, nil
	}
	return nil, g.upstreamError(o, u, err)
}

func orStr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// upstreamError classifies err for the audit record and returns a JSON-RPC
// error that names the upstream.
func (g *Gateway) upstreamError(o *op, u *upstream, err error) error {
	var ce *credentials.Error
	if errors.As(err, &ce) {
		o.errClass, o.errMsg = "credentials_"+orStr(ce.Code, "error"), ce.Error()
		return &jsonrpc.Error{Code: CodeCredentials, Message: ce.Error()}
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		o.errClass, o.errMsg = fmt.Sprintf("jsonrpc_%d", je.Code), je.Message
		if !strings.Contains(je.Message, u.name) && je.Code <= -32000 && je.Code >= -32099 {
			return &jsonrpc.Error{Code: je.Code, Message: "upstream " + u.name + ": " + je.Message, Data: je.Data}
		}
		return je
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		o.errClass = "upstream_timeout"
		o.errMsg = fmt.Sprintf("upstream %s: timed out after %s", u.name, u.cfg.Timeout)
	case errors.Is(err, context.Canceled):
		o.errClass, o.errMsg = "cancelled", "request cancelled"
	default:
		o.errClass = "upstream_error"
		o.errMsg = fmt.Sprintf("upstream %s: %s", u.name, upstreams.DescribeError(err)) // no URL, no address
	}
	return &jsonrpc.Error{Code: CodeUpstream, Message: o.errMsg}
}

// invalidArguments records and answers arguments refused before policy.
func invalidArguments(o *op, err error) error {
	o.outcome, o.errClass, o.errMsg = audit.OutcomeError, "invalid_arguments", err.Error()
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
}

func unknownTool(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
}

// authorize evaluates policy for one call; a denial is recorded on o.
func (g *Gateway) authorize(ctx context.Context, o *op, st *state, in policy.Input) error {
	in.User = policy.UserFrom(o.id)
	dec := g.evaluate(ctx, o, st, in)
	o.decision = &dec
	if !dec.Allow {
		o.outcome, o.errClass, o.errMsg = audit.OutcomeDenied, "policy_denied", dec.Reason
		return errDenied
	}
	return nil
}

var errDenied = errors.New("denied by policy")

func (g *Gateway) rateLimit(o *op, u *upstream) error {
	if g.limiter == nil {
		return nil
	}
	ok, retry := g.limiter.Allow(o.id.Key(), u.name)
	if ok {
		return nil
	}
	o.outcome, o.errClass = audit.OutcomeDenied, "rate_limited"
	secs := max(1, int(retry.Round(time.Second)/time.Second))
	o.errMsg = fmt.Sprintf("rate limit for upstream %s exceeded; retry after %ds", u.name, secs)
	return &jsonrpc.Error{Code: CodeRateLimited, Message: o.errMsg,
		Data: json.RawMessage(fmt.Sprintf(`{"retryAfterSeconds":%d}`, secs))}
}

// --- prompts ---

func (g *Gateway) listPrompts(ctx context.Context, st *state, o *op, p *mcp.ListPromptsParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	prompts := mergeListings(g, ctx, st, o, kindPrompts, nil, map[string]string{},
		func(e *catalogEntry) []*mcp.Prompt { return e.prompts },
		func(u *upstream, pr *mcp.Prompt) (*mcp.Prompt, string, bool) {
			name := u.exposedName(pr.Name)
			if !st.visible(user, u, "prompts/get", "", "", pr.Name) || g.shadowed(st, u, "prompt", pr.Name, name) {
				return nil, "", false
			}
			c := *pr
			c.Name = name
			return &c, name, true
		})
	return pageResult(prompts, st.gen, p.Cursor, func(items []*mcp.Prompt, next string) mcp.Result {
		return &mcp.ListPromptsResult{Prompts: items, NextCursor: next}
	})
}

func (g *Gateway) getPrompt(ctx context.Context, st *state, o *op, p *mcp.GetPromptParams) (mcp.Result, error) {
	u, name, ok := st.route(p.Name)
	unknown := &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", p.Name)}
	if !ok {
		return nil, unknown
	}
	o.upstream, o.prompt, o.exposed = u.name, name, p.Name
	args := make(map[string]any, len(p.Arguments))
	folded := make(map[string]string, len(p.Arguments))
	for k, v := range p.Arguments {
		// Prompt arguments are a string map (repeated keys were resolved
		// when it was decoded); keys equal ignoring case are ambiguous to
		// a Go upstream as they are for tools.
		f := upstreams.FoldKey(k)
		if prev, dup := folded[f]; dup {
			return nil, invalidArguments(o, fmt.Errorf("arguments: keys %q and %q differ only in case; send one of them", prev, k))
		}
		folded[f] = k
		args[k] = v
	}
	if g.authorize(ctx, o, st, policy.Input{Upstream: u.name, Method: "prompts/get", Prompt: name, Arguments: args}) != nil {
		return nil, unknown
	}
	if err := g.rateLimit(o, u); err != nil {
		return nil, err
	}
	sess, err := o.d.upstream(ctx, st, u)
	if err != nil {
		return nil, g.upstreamError(o, u, err)
	}
	_, end := o.d.begin(ctx, o.ss, u.name, p.GetProgressToken())
	defer end()
	cctx, cancel := context.WithTimeoutCause(ctx, u.cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	c := *p
	c.Name = name
	cctx, done := g.upstreamCall(cctx, o, u, "prompts/get", name)
	res, err := sess.GetPrompt(cctx, &c)
	done(err)
	if err != nil {
		return nil, g.upstreamError(o, u, err)
	}
	return res, nil
}

// --- resources ---

func (g *Gateway) listResources(ctx context.Context, st *state, o *op, p *mcp.ListResourcesParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	out := mergeListings(g, ctx, st, o, kindResources, nil, map[string]string{},
		func(e *catalogEntry) []*mcp.Resource { return e.resources },
		func(u *upstream, r *mcp.Resource) (*mcp.Resource, string, bool) {
			return r, r.URI, st.visible(user, u, "resources/read", "", r.URI, "")
		})
	return pageResult(out, st.gen, p.Cursor, func(items []*mcp.Resource, next string) mcp.Result {
		return &mcp.ListResourcesResult{Resources: items, NextCursor: next}
	})
}

func (g *Gateway) listTemplates(ctx context.Context, st *state, o *op, p *mcp.ListResourceTemplatesParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	out := mergeListings(g, ctx, st, o, kindTemplates, nil, map[string]string{},
		func(e *catalogEntry) []*mcp.ResourceTemplate { return e.templates },
		func(u *upstream, t *mcp.ResourceTemplate) (*mcp.ResourceTemplate, string, bool) {
			return t, t.URITemplate, st.visible(user, u, "resources/read", "", t.URITemplate, "")
		})
	return pageResult(out, st.gen, p.Cursor, func(items []*mcp.ResourceTemplate, next string) mcp.Result {
		return &mcp.ListResourceTemplatesResult{ResourceTemplates: items, NextCursor: next}
	})
}

// mergeListings is the union of every upstream's listing of one kind as
// the user may see it. expose returns an item as the client sees it and
// its key (exposed name or URI), or false to leave it out (hidden by
// policy, or shadowed); an item whose key is already taken is left out
// with a log line. out and seen hold what is listed before the upstreams.
func mergeListings[T any](g *Gateway, ctx context.Context, st *state, o *op, kind listKind, out []T, seen map[string]string,
	items func(*catalogEntry) []T, expose func(*upstream, T) (T, string, bool)) []T {
	for _, l := range g.listAll(ctx, o.d, st, kind) {
		if l.e == nil {
			continue
		}
		for _, it := range items(l.e) {
			shown, key, ok := expose(l.u, it)
			if !ok {
				continue
			}
			if prev, dup := seen[key]; dup {
				g.log.Warn("listing collision: hidden", "kind", kind.String(), "upstream", l.u.name, "key", key, "already_from", prev)
				continue
			}
			seen[key] = l.u.name
			out = append(out, shown)
		}
	}
	return out
}

// shadowed reports (and logs) an item of the unprefixed upstream whose
// exposed name routes to a prefixed upstream instead.
func (g *Gateway) shadowed(st *state, u *upstream, what, name, exposed string) bool {
	other := st.shadowed(u, exposed)
	if other != nil {
		g.log.Warn(what+" name collision: hidden", "upstream", u.name, what, name, "shadowed_by", other.name)
	}
	return other != nil
}

// pageResult answers one page of a listing, or invalid params for a bad cursor.
func pageResult[T any](all []T, gen uint64, cursor string, result func([]T, string) mcp.Result) (mcp.Result, error) {
	items, next, err := page(all, gen, cursor)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	return result(items, next), nil
}

// routeURI finds the upstream serving a resource URI for this user: an
// exact match in a listing, then a template match, then — if exactly one
// upstream lists resources at all — that one.
func (g *Gateway) routeURI(ctx context.Context, st *state, o *op, uri string) (*upstream, bool) {
	if len(st.ups) == 1 {
		return st.ups[0], true
	}
	var withResources []*upstream
	for _, l := range g.listAll(ctx, o.d, st, kindResources) {
		if l.e == nil {
			continue
		}
		if len(l.e.resources) > 0 {
			withResources = append(withResources, l.u)
		}
		for _, r := range l.e.resources {
			if r.URI == uri {
				return l.u, true
			}
		}
	}
	for _, l := range g.listAll(ctx, o.d, st, kindTemplates) {
		if l.e == nil {
			continue
		}
		if len(l.e.templates) > 0 && !containsUp(withResources, l.u) {
			withResources = append(withResources, l.u)
		}
		for _, t := range l.e.templates {
			if tpl, err := uritemplate.New(t.URITemplate); err == nil && tpl.Match(uri) != nil {
				return l.u, true
			}
		}
	}
	if len(withResources) == 1 {
		return withResources[0], true
	}
	return nil, false
}

func containsUp(list []*upstream, u *upstream) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

func resourceNotFound(uri string) error {
	return &jsonrpc.Error{Code: CodeResourceNotFound, Message: "Resource not found",
		Data: json.RawMessage(fmt.Sprintf(`{"uri":%q}`, uri))}
}

func (g *Gateway) readResource(ctx context.Context, st *state, o *op, p *mcp.ReadResourceParams) (mcp.Result, error) {
	o.resource = p.URI
	u, ok := g.routeURI(ctx, st, o, p.URI)
	if !ok {
		return nil, resourceNotFound(p.URI)
	}
	o.upstream = u.name
	if g.authorize(ctx, o, st, policy.Input{Upstream: u.name, Method: "resources/read", Resource: p.URI}) != nil {
		return nil, resourceNotFound(p.URI)
	}
	if err := g.rateLimit(o, u); err != nil {
		return nil, err
	}
	sess, err := o.d.upstream(ctx, st, u)
	if err != nil {
		return nil, g.upstreamError(o, u, err)
	}
	_, end := o.d.begin(ctx, o.ss, u.name, p.GetProgressToken())
	defer end()
	cctx, cancel := context.WithTimeoutCause(ctx, u.cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	cctx, done := g.upstreamCall(cctx, o, u, "resources/read", p.URI)
	rp := *p
	rp.Meta = hopMeta(p.Meta)
	res, err := sess.ReadResource(cctx, &rp)
	done(err)
	if err != nil {
		return nil, g.upstreamError(o, u, err)
	}
	return res, nil
}

func (g *Gateway) subscribe(ctx context.Context, st *state, o *op, uri string, on bool, sp *mcp.SubscribeParams, up *mcp.UnsubscribeParams) error {
	o.resource = uri
	u, ok := g.routeURI(ctx, st, o, uri)
	if !ok {
		return resourceNotFound(uri)
	}
	o.upstream = u.name
	if g.authorize(ctx, o, st, policy.Input{Upstream: u.name, Method: "resources/read", Resource: uri}) != nil {
		return resourceNotFound(uri)
	}
	sess, err := o.d.upstream(ctx, st, u)
	if err != nil {
		return g.upstreamError(o, u, err)
	}
	cctx, cancel := context.WithTimeoutCause(ctx, u.cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	if on {
		err = sess.Subscribe(cctx, sp)
	} else {
		err = sess.Unsubscribe(cctx, up)
	}
	if err != nil {
		return g.upstreamError(o, u, err)
	}
	o.d.inflightMu.Lock()
	if on {
		o.d.subs[uri] = true
	} else {
		delete(o.d.subs, uri)
	}
	o.d.inflightMu.Unlock()
	return nil
}

// --- completion and logging ---

func (g *Gateway) complete(ctx context.Context, st *state, o *op, p *mcp.CompleteParams) (mcp.Result, error) {
	if p.Ref == nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "missing ref"}
	}
	var u *upstream
	c := *p
	ref := *p.Ref
	c.Ref = &ref
	switch ref.Type {
	case "ref/prompt":
		var name string
		var ok bool
		if u, name, ok = st.route(ref.Name); !ok {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", ref.Name)}
		}
		o.prompt = name
		ref.Name = name
		if g.authorize(ctx, o, st, policy.Input{Upstream: u.name, Method: "prompts/get", Prompt: name}) != nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", p.Ref.Name)}
		}
	case "ref/resource":
		var ok bool
		if u, ok = g.routeURI(ctx, st, o, ref.URI); !ok {
			return nil, resourceNotFound(ref.URI)
		}
		o.resource = ref.URI
		if g.authorize(ctx, o, st, policy.Input{Upstream: u.name, Method: "resources/read", Resource: ref.URI}) != nil {
			return nil, resourceNotFound(ref.URI)
		}
	default:
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unsupported ref type"}
	}
	o.upstream = u.name
	sess, err := o.d.upstream(ctx, st, u)
	if err != nil {
		return nil, g.upstreamError(o, u, err)
	}
	cctx, cancel := context.WithTimeoutCause(ctx, u.cfg.Timeout, upstreams.ErrTimeout)
	defer cancel()
	c.Meta = hopMeta(p.Meta)
	res, err := sess.Complete(cctx, &c)
	if err != nil {
		return nil, g.upstreamError(o, u, err)
	}
	return res, nil
}

// setLevel records the level on the downstream session (go-sdk filters
// relayed log messages by it) and passes it to every upstream session,
// including those opened later.
func (g *Gateway) setLevel(ctx context.Context, st *state, o *op, p *mcp.SetLoggingLevelParams, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	lv := p.Level
	o.d.logLevel.Store(&lv)
	for _, s := range o.d.openSessions() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = s.SetLoggingLevel(cctx, p)
		cancel()
	}
	return next(ctx, method, req)
}

// hopMeta is the _meta to forward upstream: everything the client sent
// (progress tokens, trace context, application keys) except the
// per-request protocol keys of the sessionless revision
// ("io.modelcontextprotocol/..."), which describe the client's hop, not the
// upstream session's.
func hopMeta(m mcp.Meta) mcp.Meta {
	strip := false
	for k := range m {
		if strings.HasPrefix(k, "io.modelcontextprotocol/") {
			strip = true
			break
		}
	}
	if !strip {
		return m
	}
	out := make(mcp.Meta, len(m))
	for k, v := range m {
		if !strings.HasPrefix(k, "io.modelcontextprotocol/") {
			out[k] = v
		}
	}
	return out
}
