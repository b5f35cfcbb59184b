package dispatch

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

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/catalog"
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

// Middleware is go-sdk receiving middleware: Mandate answers the catalog
// and routed methods for the calling user; everything else (initialize,
// ping, notifications) goes to go-sdk.
func (g *Dispatcher) Middleware(next mcp.MethodHandler) mcp.MethodHandler {
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
				g.Log.Error("panic serving MCP request", "method", method, "panic", rec, "stack", string(debug.Stack()))
				res, err = nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "internal error"}
			}
		}()
		ss, _ := req.GetSession().(*mcp.ServerSession)
		in := inboundOf(req)
		if in == nil || in.id == nil || ss == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "unauthenticated"}
		}
		c := &call{start: time.Now(), method: method, id: in.id, ss: ss, req: req, st: g.State(),
			requestID: in.requestID, sessionID: ss.ID()}
		if ip := ss.InitializeParams(); ip != nil {
			c.proto = ip.ProtocolVersion
		}
		c.d = g.Sessions.For(ctx, ss, in.id)
		ctx, stop := requestScoped(ctx, in)
		defer stop()
		ctx = identity.NewContext(ctx, in.id)
		ctx, c.info = callinfo.NewContext(ctx)
		if g.Tel.TP != nil {
			c.rpcID = in.rpcID()
			ctx = g.startSpan(ctx, c, in.header, metaTrace(req.GetParams()))
		}
		res, err = g.guard(c, func() (mcp.Result, error) {
			if c.d.Closed() { // evicted or purged: its go-sdk session is closing
				c.errClass = "session_closed"
				return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidRequest, Message: "session closed; start a new session"}
			}
			return g.serve(ctx, c, req, next)
		})
		if aerr := g.record(ctx, c, err); aerr != nil {
			return nil, aerr
		}
		if err == nil && res != nil {
			res = catalog.ShapeResult(c.st, c.proto, res)
		}
		return res, err
	}
}

// guard runs f; a panic in it (a bug) costs this call, never the process:
// it answers a JSON-RPC internal error and is recorded as one.
func (g *Dispatcher) guard(c *call, f func() (mcp.Result, error)) (res mcp.Result, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			g.Log.Error("panic serving MCP request", "method", c.method, "panic", rec, "stack", string(debug.Stack()))
			res, err = nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "internal error"}
			c.errClass = "internal_error"
		}
	}()
	return f()
}

// initialize lets go-sdk answer, then counts the new session for its user
// at once (server.session.max_per_user holds for sessions that never make
// a call).
func (g *Dispatcher) initialize(ctx context.Context, method string, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	res, err := next(ctx, method, req)
	if err != nil || g.Stateless {
		return res, err
	}
	ss, _ := req.GetSession().(*mcp.ServerSession)
	if in := inboundOf(req); ss != nil && in != nil && in.id != nil {
		g.Sessions.For(ctx, ss, in.id)
	}
	return res, err
}

// serve answers one routed method on the go-sdk path: listings are merged
// here; everything addressed to one upstream goes through dispatch with a
// typed invoke.
func (g *Dispatcher) serve(ctx context.Context, c *call, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	missing := func() (mcp.Result, error) {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "missing params for " + c.method}
	}
	// Listings and logging/setLevel go to no single upstream, so they do
	// not run through dispatch; the same audit admission applies to them.
	if strings.HasSuffix(c.method, "/list") || c.method == "logging/setLevel" {
		if err := g.admitAudit(c); err != nil {
			return nil, err
		}
	}
	switch p := req.GetParams().(type) {
	case *mcp.ListToolsParams:
		return g.listTools(ctx, c.st, c, orNew(p))
	case *mcp.ListResourcesParams:
		return g.listResources(ctx, c.st, c, orNew(p))
	case *mcp.ListResourceTemplatesParams:
		return g.listTemplates(ctx, c.st, c, orNew(p))
	case *mcp.ListPromptsParams:
		return g.listPrompts(ctx, c.st, c, orNew(p))
	case *mcp.SetLoggingLevelParams:
		if p == nil {
			return missing()
		}
		return g.setLevel(ctx, c, p, req, next)
	case *mcp.CallToolParamsRaw:
		if p == nil {
			return missing()
		}
		c.name, c.rawArgs, c.progressToken = p.Name, p.Arguments, p.GetProgressToken()
		c.requestState, c.inputResponses = p.RequestState, p.InputResponses
		return g.dispatch(ctx, c, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			res, err := sess.CallTool(ctx, &mcp.CallToolParams{Meta: hopMeta(p.Meta), Name: c.tool, Arguments: p.Arguments})
			if err != nil {
				return nil, false, err
			}
			return res, res.IsError, nil
		})
	case *mcp.GetPromptParams:
		if p == nil {
			return missing()
		}
		c.name, c.promptArgs, c.progressToken = p.Name, p.Arguments, p.GetProgressToken()
		c.requestState, c.inputResponses = p.RequestState, p.InputResponses
		return g.dispatch(ctx, c, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			gp := *p
			gp.Name, gp.Meta, gp.InputResponses, gp.RequestState = c.prompt, hopMeta(p.Meta), nil, ""
			res, err := sess.GetPrompt(ctx, &gp)
			return res, false, err
		})
	case *mcp.ReadResourceParams:
		if p == nil {
			return missing()
		}
		c.uri, c.progressToken = p.URI, p.GetProgressToken()
		c.requestState, c.inputResponses = p.RequestState, p.InputResponses
		return g.dispatch(ctx, c, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			rp := *p
			rp.Meta, rp.InputResponses, rp.RequestState = hopMeta(p.Meta), nil, ""
			res, err := sess.ReadResource(ctx, &rp)
			return res, false, err
		})
	case *mcp.SubscribeParams:
		if p == nil {
			return missing()
		}
		c.uri = p.URI
		if _, err := g.dispatch(ctx, c, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			return nil, false, sess.Subscribe(ctx, p)
		}); err != nil {
			return nil, err
		}
		c.d.Subscribed(p.URI, true)
		return next(ctx, c.method, req)
	case *mcp.UnsubscribeParams:
		if p == nil {
			return missing()
		}
		c.uri = p.URI
		if _, err := g.dispatch(ctx, c, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			return nil, false, sess.Unsubscribe(ctx, p)
		}); err != nil {
			return nil, err
		}
		c.d.Subscribed(p.URI, false)
		return next(ctx, c.method, req)
	case *mcp.CompleteParams:
		if p == nil {
			return missing()
		}
		if p.Ref == nil {
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "missing ref"}
		}
		switch p.Ref.Type {
		case "ref/prompt":
			c.policyKind, c.name = "prompts/get", p.Ref.Name
		case "ref/resource":
			c.policyKind, c.uri = "resources/read", p.Ref.URI
		default:
			return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "unsupported ref type"}
		}
		return g.dispatch(ctx, c, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			cp, ref := *p, *p.Ref
			if ref.Type == "ref/prompt" {
				ref.Name = c.prompt
			}
			cp.Ref, cp.Meta = &ref, hopMeta(p.Meta)
			res, err := sess.Complete(ctx, &cp)
			return res, false, err
		})
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

func (g *Dispatcher) listTools(ctx context.Context, st *catalog.State, o *call, p *mcp.ListToolsParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	var builtin []*mcp.Tool
	taken := map[string]string{}
	if st.WhoAmI != nil {
		builtin, taken[st.WhoAmI.Name] = []*mcp.Tool{st.WhoAmI}, "mandate"
	}
	tools := mergeListings(g, ctx, st, o, catalog.Tools, builtin, taken,
		func(e *catalog.Entry) []*mcp.Tool { return e.Tools },
		func(u *catalog.Upstream, t *mcp.Tool) (*mcp.Tool, string, bool) {
			name := u.ExposedName(t.Name)
			if !st.Visible(user, u, "tools/call", t.Name, "", "") || g.shadowed(st, u, "tool", t.Name, name) {
				return nil, "", false
			}
			c := *t
			c.Name = name
			return &c, name, true
		})
	return pageResult(tools, st.Gen, p.Cursor, func(items []*mcp.Tool, next string) mcp.Result {
		return &mcp.ListToolsResult{Tools: items, NextCursor: next}
	})
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
func (g *Dispatcher) toolFailure(o *call, u *catalog.Upstream, err error) (mcp.Result, error) {
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
func (g *Dispatcher) upstreamError(o *call, u *catalog.Upstream, err error) error {
	var ce *credentials.Error
	if errors.As(err, &ce) {
		o.errClass, o.errMsg = "credentials_"+orStr(ce.Code, "error"), ce.Error()
		return &jsonrpc.Error{Code: CodeCredentials, Message: ce.Error()}
	}
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		o.errClass, o.errMsg = fmt.Sprintf("jsonrpc_%d", je.Code), je.Message
		if !strings.Contains(je.Message, u.Name) && je.Code <= -32000 && je.Code >= -32099 {
			return &jsonrpc.Error{Code: je.Code, Message: "upstream " + u.Name + ": " + je.Message, Data: je.Data}
		}
		return je
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		o.errClass = "upstream_timeout"
		o.errMsg = fmt.Sprintf("upstream %s: timed out after %s", u.Name, u.Cfg.Timeout)
	case errors.Is(err, context.Canceled):
		o.errClass, o.errMsg = "cancelled", "request cancelled"
	default:
		o.errClass = "upstream_error"
		o.errMsg = fmt.Sprintf("upstream %s: %s", u.Name, upstreams.DescribeError(err)) // no URL, no address
	}
	return &jsonrpc.Error{Code: CodeUpstream, Message: o.errMsg}
}

// invalidArguments records and answers arguments refused before policy.
func invalidArguments(o *call, err error) error {
	o.outcome, o.errClass, o.errMsg = audit.OutcomeError, "invalid_arguments", err.Error()
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
}

func unknownTool(name string) error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown tool %q", name)}
}

func (g *Dispatcher) rateLimit(o *call, u *catalog.Upstream) error {
	if g.Limiter == nil {
		return nil
	}
	ok, retry := g.Limiter.Allow(o.id.Key(), u.Name)
	if ok {
		return nil
	}
	o.outcome, o.errClass = audit.OutcomeDenied, "rate_limited"
	secs := max(1, int(retry.Round(time.Second)/time.Second))
	o.errMsg = fmt.Sprintf("rate limit for upstream %s exceeded; retry after %ds", u.Name, secs)
	return &jsonrpc.Error{Code: CodeRateLimited, Message: o.errMsg,
		Data: json.RawMessage(fmt.Sprintf(`{"retryAfterSeconds":%d}`, secs))}
}

// --- prompts ---

func (g *Dispatcher) listPrompts(ctx context.Context, st *catalog.State, o *call, p *mcp.ListPromptsParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	prompts := mergeListings(g, ctx, st, o, catalog.Prompts, nil, map[string]string{},
		func(e *catalog.Entry) []*mcp.Prompt { return e.Prompts },
		func(u *catalog.Upstream, pr *mcp.Prompt) (*mcp.Prompt, string, bool) {
			name := u.ExposedName(pr.Name)
			if !st.Visible(user, u, "prompts/get", "", "", pr.Name) || g.shadowed(st, u, "prompt", pr.Name, name) {
				return nil, "", false
			}
			c := *pr
			c.Name = name
			return &c, name, true
		})
	return pageResult(prompts, st.Gen, p.Cursor, func(items []*mcp.Prompt, next string) mcp.Result {
		return &mcp.ListPromptsResult{Prompts: items, NextCursor: next}
	})
}

// --- resources ---

func (g *Dispatcher) listResources(ctx context.Context, st *catalog.State, o *call, p *mcp.ListResourcesParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	out := mergeListings(g, ctx, st, o, catalog.Resources, nil, map[string]string{},
		func(e *catalog.Entry) []*mcp.Resource { return e.Resources },
		func(u *catalog.Upstream, r *mcp.Resource) (*mcp.Resource, string, bool) {
			return r, r.URI, st.Visible(user, u, "resources/read", "", r.URI, "")
		})
	return pageResult(out, st.Gen, p.Cursor, func(items []*mcp.Resource, next string) mcp.Result {
		return &mcp.ListResourcesResult{Resources: items, NextCursor: next}
	})
}

func (g *Dispatcher) listTemplates(ctx context.Context, st *catalog.State, o *call, p *mcp.ListResourceTemplatesParams) (mcp.Result, error) {
	user := policy.UserFrom(o.id)
	out := mergeListings(g, ctx, st, o, catalog.Templates, nil, map[string]string{},
		func(e *catalog.Entry) []*mcp.ResourceTemplate { return e.Templates },
		func(u *catalog.Upstream, t *mcp.ResourceTemplate) (*mcp.ResourceTemplate, string, bool) {
			return t, t.URITemplate, st.Visible(user, u, "resources/read", "", t.URITemplate, "")
		})
	return pageResult(out, st.Gen, p.Cursor, func(items []*mcp.ResourceTemplate, next string) mcp.Result {
		return &mcp.ListResourceTemplatesResult{ResourceTemplates: items, NextCursor: next}
	})
}

// mergeListings is the union of every upstream's listing of one kind as
// the user may see it. expose returns an item as the client sees it and
// its key (exposed name or URI), or false to leave it out (hidden by
// policy, or shadowed); an item whose key is already taken is left out
// with a log line. out and seen hold what is listed before the upstreams.
func mergeListings[T any](g *Dispatcher, ctx context.Context, st *catalog.State, o *call, kind catalog.Kind, out []T, seen map[string]string,
	items func(*catalog.Entry) []T, expose func(*catalog.Upstream, T) (T, string, bool)) []T {
	for _, l := range g.Catalog.ListAll(ctx, o.d, st, kind) {
		if l.E == nil {
			continue
		}
		for _, it := range items(l.E) {
			shown, key, ok := expose(l.U, it)
			if !ok {
				continue
			}
			if prev, dup := seen[key]; dup {
				g.Log.Warn("listing collision: hidden", "kind", kind.String(), "upstream", l.U.Name, "key", key, "already_from", prev)
				continue
			}
			seen[key] = l.U.Name
			out = append(out, shown)
		}
	}
	return out
}

// shadowed reports (and logs) an item of the unprefixed upstream whose
// exposed name routes to a prefixed upstream instead.
func (g *Dispatcher) shadowed(st *catalog.State, u *catalog.Upstream, what, name, exposed string) bool {
	other := st.Shadowed(u, exposed)
	if other != nil {
		g.Log.Warn(what+" name collision: hidden", "upstream", u.Name, what, name, "shadowed_by", other.Name)
	}
	return other != nil
}

// pageResult answers one page of a listing, or invalid params for a bad cursor.
func pageResult[T any](all []T, gen uint64, cursor string, result func([]T, string) mcp.Result) (mcp.Result, error) {
	items, next, err := catalog.Page(all, gen, cursor)
	if err != nil {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: err.Error()}
	}
	return result(items, next), nil
}

// routeURI finds the upstream serving a resource URI for this user: an
// exact match in a listing, then a template match, then — if exactly one
// upstream lists resources at all — that one.
func (g *Dispatcher) routeURI(ctx context.Context, st *catalog.State, o *call, uri string) (*catalog.Upstream, bool) {
	if len(st.Ups) == 1 {
		return st.Ups[0], true
	}
	var withResources []*catalog.Upstream
	for _, l := range g.Catalog.ListAll(ctx, o.d, st, catalog.Resources) {
		if l.E == nil {
			continue
		}
		if len(l.E.Resources) > 0 {
			withResources = append(withResources, l.U)
		}
		for _, r := range l.E.Resources {
			if r.URI == uri {
				return l.U, true
			}
		}
	}
	for _, l := range g.Catalog.ListAll(ctx, o.d, st, catalog.Templates) {
		if l.E == nil {
			continue
		}
		if len(l.E.Templates) > 0 && !containsUp(withResources, l.U) {
			withResources = append(withResources, l.U)
		}
		for _, t := range l.E.Templates {
			if tpl, err := uritemplate.New(t.URITemplate); err == nil && tpl.Match(uri) != nil {
				return l.U, true
			}
		}
	}
	if len(withResources) == 1 {
		return withResources[0], true
	}
	return nil, false
}

func containsUp(list []*catalog.Upstream, u *catalog.Upstream) bool {
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

// --- completion and logging ---

// setLevel records the level on the downstream session (go-sdk filters
// relayed log messages by it) and passes it to every upstream session,
// including those opened later.
func (g *Dispatcher) setLevel(ctx context.Context, o *call, p *mcp.SetLoggingLevelParams, req mcp.Request, next mcp.MethodHandler) (mcp.Result, error) {
	o.d.SetLogLevel(p.Level)
	for _, s := range o.d.OpenSessions() {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_ = s.SetLoggingLevel(cctx, p)
		cancel()
	}
	return next(ctx, o.method, req)
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
