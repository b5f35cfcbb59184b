package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/gateway/sessions"
	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
)

// The dispatch pipeline.
//
// Every routed operation — tools/call, prompts/get, resources/read,
// resources/subscribe and unsubscribe, completion/complete — is one call
// value that goes through the same named steps, whatever path it arrived
// on (go-sdk's handler, or the forwarding path for tools/call):
//
//	admitAudit → route → authorize → admit → openSession → invoke → record
//
// Each step records what it learns on the call (upstream, names, policy
// decision, outcome, error class), and record turns the call into one
// audit record, one server span and the metrics. A step that refuses
// answers with the method's own error (unknown tool, unknown prompt,
// resource not found), so that a user learns nothing about what they may
// not use. Only invoke differs between the paths: the go-sdk path calls
// the upstream session with typed parameters, the forwarding path hands it
// the message's bytes (upstreams.RawCaller).

// call is one MCP operation being served.
type call struct {
	start     time.Time
	method    string
	id        *identity.Identity
	d         *sessions.Session
	ss        *mcp.ServerSession // nil on the forwarding path
	req       mcp.Request        // the go-sdk request; nil on the forwarding path
	requestID string
	rpcID     string // the JSON-RPC id as sent ("" when unknown); spans
	sessionID string
	proto     string // the client's protocol revision

	// What was asked, as the client sent it.
	name          string          // exposed tool or prompt name
	uri           string          // resource URI
	rawArgs       json.RawMessage // tools/call arguments
	promptArgs    map[string]string
	progressToken any
	// The retry of an input_required answer (2026-07-28).
	requestState   string
	inputResponses mcp.InputResponseMap

	// What the steps found.
	st         *catalog.State
	u          *catalog.Upstream
	policyKind string // the policy method: tools/call, prompts/get or resources/read
	builtin    bool   // Mandate's own whoami tool
	upstream   string
	tool       string
	resource   string
	prompt     string
	exposed    string         // the tool or prompt name as the client used it
	args       map[string]any // redacted arguments, when the upstream opted in
	decision   *policy.Decision
	info       *callinfo.Info
	outcome    string
	errClass   string
	errMsg     string
	span       trace.Span // nil when tracing is off
	fast       bool       // served by the forwarding path
}

// invoker runs the call on the upstream session: the one step where the
// paths differ. It returns the result (nil on the forwarding path, which
// keeps the bytes itself) and whether it is a tool error (isError).
type invoker func(ctx context.Context, sess upstreams.Session) (res mcp.Result, isError bool, err error)

// dispatch runs a routed call through the pipeline up to invoke; the
// caller records it (record) once it has its answer.
func (g *Dispatcher) dispatch(ctx context.Context, c *call, invoke invoker) (mcp.Result, error) {
	if err := g.admitAudit(c); err != nil {
		return nil, err
	}
	if err := g.route(ctx, c); err != nil {
		return nil, err
	}
	if c.requestState != "" {
		if res, err := g.resume(c); res != nil || err != nil {
			return res, err
		}
	}
	if c.builtin {
		return whoamiResult(c.id), nil
	}
	if res, err := g.authorize(ctx, c); res != nil || err != nil {
		return res, err
	}
	if res, err := g.admit(ctx, c); res != nil || err != nil {
		return res, err
	}
	sess, err := g.openSession(ctx, c)
	if err != nil {
		return c.failed(g, err)
	}
	return g.invoke(ctx, c, sess, invoke)
}

// route finds the upstream that serves the call and the name it knows.
func (g *Dispatcher) route(ctx context.Context, c *call) error {
	st := c.st
	switch c.method {
	case "tools/call":
		c.policyKind = "tools/call"
		if st.IsWhoAmI(c.name) {
			c.builtin = true
			c.upstream, c.tool, c.exposed = "mandate", WhoAmITool.Name, c.name
			return nil
		}
		u, inner, ok := st.Route(c.name)
		if !ok {
			return c.notFound()
		}
		c.u, c.upstream, c.tool, c.exposed = u, u.Name, inner, c.name
	case "prompts/get":
		c.policyKind = "prompts/get"
		u, inner, ok := st.Route(c.name)
		if !ok {
			return c.notFound()
		}
		c.u, c.upstream, c.prompt, c.exposed = u, u.Name, inner, c.name
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		c.policyKind, c.resource = "resources/read", c.uri
		u, ok := g.routeURI(ctx, st, c, c.uri)
		if !ok {
			return c.notFound()
		}
		c.u, c.upstream = u, u.Name
	case "completion/complete":
		// route of a completion: the prompt or resource it completes
		// (policyKind was set from the ref by the caller).
		if c.policyKind == "prompts/get" {
			u, inner, ok := st.Route(c.name)
			if !ok {
				return c.notFound()
			}
			c.u, c.upstream, c.prompt = u, u.Name, inner
		} else {
			c.resource = c.uri
			u, ok := g.routeURI(ctx, st, c, c.uri)
			if !ok {
				return c.notFound()
			}
			c.u, c.upstream = u, u.Name
		}
	default:
		return &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "method not routed: " + c.method}
	}
	return nil
}

// notFound is the method's answer for something the user cannot use: the
// same whether it does not exist or policy hides it (no enumeration).
func (c *call) notFound() error {
	switch c.policyKind {
	case "tools/call":
		return unknownTool(c.name)
	case "prompts/get":
		return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("unknown prompt %q", c.name)}
	}
	return resourceNotFound(c.uri)
}

// authorize checks the arguments (policy, audit and the upstream must
// read the same object: what parsers disagree on is refused before
// anything looks at them), decodes them when a rule or the audit record
// needs them, and evaluates policy. A denial answers as notFound.
func (g *Dispatcher) authorize(ctx context.Context, c *call) (mcp.Result, error) {
	var args map[string]any
	switch c.method {
	case "tools/call":
		if err := upstreams.CheckArguments(c.rawArgs); err != nil {
			return nil, invalidArguments(c, err)
		}
		if (c.st.UsesArgs || c.u.Cfg.AuditArguments) && len(c.rawArgs) > 0 {
			if err := json.Unmarshal(c.rawArgs, &args); err != nil {
				return nil, invalidArguments(c, err)
			}
		}
		if c.u.Cfg.AuditArguments && args != nil {
			c.args = audit.Redact(args, c.u.Cfg.AuditRedact)
		}
	case "prompts/get":
		args = make(map[string]any, len(c.promptArgs))
		folded := make(map[string]string, len(c.promptArgs))
		for k, v := range c.promptArgs {
			// Prompt arguments are a string map (repeated keys were
			// resolved when it was decoded); keys equal ignoring case are
			// ambiguous to a Go upstream as they are for tools.
			f := upstreams.FoldKey(k)
			if prev, dup := folded[f]; dup {
				return nil, invalidArguments(c, fmt.Errorf("arguments: keys %q and %q differ only in case; send one of them", prev, k))
			}
			folded[f] = k
			args[k] = v
		}
	}
	in := policy.Input{User: policy.UserFrom(c.id), Upstream: c.u.Name, Method: c.policyKind,
		Tool: c.tool, Prompt: c.prompt, Resource: c.resource, Arguments: args}
	dec := g.evaluate(ctx, c, c.st, in)
	c.decision = &dec
	if !dec.Allow {
		c.outcome, c.errClass, c.errMsg = audit.OutcomeDenied, "policy_denied", dec.Reason
		return nil, c.notFound()
	}
	return nil, nil
}

// admit checks what policy does not: that a tool is in the user's listing
// (fail closed: without the listing the call cannot be checked against
// it), and the user's rate limit on the upstream. The audit sink's part of
// admission (admitAudit) comes first of all, before any upstream is asked
// anything.
func (g *Dispatcher) admit(ctx context.Context, c *call) (mcp.Result, error) {
	if c.method == "tools/call" {
		has, lerr := g.Catalog.HasTool(ctx, c.d, c.st, c.u, c.tool)
		if !has && lerr != nil {
			// The user must connect their account first (the listing
			// needs their grant): ask them to.
			if res, err, ok := g.consentRequired(c, lerr); ok {
				return res, err
			}
			// Credential failures become actionable tool errors (the call
			// would fail on the same credentials).
			if credentialsFailure(lerr) {
				return g.toolFailure(c, c.u, lerr)
			}
			uerr := g.upstreamError(c, c.u, lerr)
			msg := uerr.Error()
			if je := (*jsonrpc.Error)(nil); errors.As(uerr, &je) {
				msg = je.Message
			}
			c.errClass, c.errMsg = "listing_failed", msg+" (listing tools; the call was not made)"
			return nil, &jsonrpc.Error{Code: CodeUpstream, Message: c.errMsg}
		}
		if !has {
			c.outcome, c.errClass, c.errMsg = audit.OutcomeError, "unknown_tool", "not in the user's listing"
			return nil, unknownTool(c.name)
		}
	}
	switch c.method {
	case "tools/call", "prompts/get", "resources/read":
		return nil, g.rateLimit(c, c.u)
	}
	return nil, nil
}

// openSession returns the user's session on the upstream, opening it on
// first use.
func (g *Dispatcher) openSession(ctx context.Context, c *call) (upstreams.Session, error) {
	return c.d.Upstream(ctx, c.st, c.u)
}

// invoke runs the call upstream, bounded by the upstream's timeout (whose
// cause says it was the upstream's), with the client span and metric.
// Calls that can carry progress are registered on the session so that the
// upstream's notifications travel on this request's stream.
func (g *Dispatcher) invoke(ctx context.Context, c *call, sess upstreams.Session, run invoker) (mcp.Result, error) {
	// The forwarding path registers nothing in flight (it takes only calls
	// whose answer is one message: no progress token, no logging level, no
	// sampling or elicitation to route to its stream) and leaves the
	// timeout to the RawCaller, which bounds every call by the upstream's
	// timeout itself (upstreams.RawCaller).
	cctx := ctx
	if !c.fast {
		if c.method != "resources/subscribe" && c.method != "resources/unsubscribe" && c.method != "completion/complete" {
			_, end := c.d.Begin(ctx, c.ss, c.u.Name, c.progressToken)
			defer end()
		}
		var cancel context.CancelFunc
		cctx, cancel = context.WithTimeoutCause(ctx, c.u.Cfg.Timeout, upstreams.ErrTimeout)
		defer cancel()
	}
	target := c.tool
	switch {
	case c.prompt != "":
		target = c.prompt
	case c.resource != "":
		target = c.resource
	}
	cctx, done := g.upstreamCall(cctx, c, c.u, c.method, target)
	res, isError, err := run(cctx, sess)
	done(err)
	if err != nil && ctx.Err() != nil {
		// The client cancelled (notifications/cancelled) or went away:
		// however the adapter worded it, the call was cancelled.
		c.outcome, c.errClass, c.errMsg = audit.OutcomeError, "cancelled", "request cancelled"
		return nil, &jsonrpc.Error{Code: CodeUpstream, Message: c.errMsg}
	}
	if err != nil {
		return c.failed(g, err)
	}
	if isError {
		c.outcome, c.errClass = audit.OutcomeError, "tool_error"
	}
	return res, nil
}

// failed maps an upstream or credentials failure to the answer: a user
// who must connect their account is asked to (consent.go); for tools/call
// a credentials failure is an actionable tool error, anything else a
// JSON-RPC error naming the upstream.
func (c *call) failed(g *Dispatcher, err error) (mcp.Result, error) {
	if res, rerr, ok := g.consentRequired(c, err); ok {
		return res, rerr
	}
	if c.method == "tools/call" {
		return g.toolFailure(c, c.u, err)
	}
	return nil, g.upstreamError(c, c.u, err)
}
