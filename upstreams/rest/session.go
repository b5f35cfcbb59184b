package rest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
)

// Handler runs one tool call. Arguments it cannot decode are a
// *jsonrpc.Error (DecodeArgs); platform failures are tool results
// (Call.ToolFailure).
type Handler func(c *Call, p *mcp.CallToolParams) (*mcp.CallToolResult, error)

// Bind adapts h, a handler on an adapter's own call type C (typically a
// struct embedding *Call plus the adapter's settings, made by wrap), to a
// Handler.
func Bind[C any](wrap func(*Call) C, h func(C, *mcp.CallToolParams) (*mcp.CallToolResult, error)) Handler {
	return func(c *Call, p *mcp.CallToolParams) (*mcp.CallToolResult, error) { return h(wrap(c), p) }
}

// Tool is one tool: its definition and its handler.
type Tool struct {
	Def *mcp.Tool
	Run Handler
}

// Tools is an upstream's fixed tool set, in listing order. Safe for
// concurrent use (read-only after NewTools).
type Tools struct {
	list   []*mcp.Tool
	byName map[string]Handler
	names  string // sorted, comma-separated, for the unknown-tool error
}

// NewTools builds a tool set. It panics on a tool without a name or
// handler, or on a duplicate name: tool sets are fixed at compile time.
func NewTools(ts []Tool) *Tools {
	s := &Tools{byName: make(map[string]Handler, len(ts))}
	names := make([]string, 0, len(ts))
	for _, t := range ts {
		if t.Def == nil || t.Def.Name == "" || t.Run == nil {
			panic("rest.NewTools: a tool needs a definition with a name and a handler")
		}
		if _, dup := s.byName[t.Def.Name]; dup {
			panic("rest.NewTools: duplicate tool " + t.Def.Name)
		}
		s.list = append(s.list, t.Def)
		s.byName[t.Def.Name] = t.Run
		names = append(names, t.Def.Name)
	}
	sort.Strings(names)
	s.names = strings.Join(names, ", ")
	return s
}

// List returns copies of the tool definitions (callers may rename them).
func (s *Tools) List() []*mcp.Tool {
	out := make([]*mcp.Tool, len(s.list))
	for i, t := range s.list {
		c := *t
		out[i] = &c
	}
	return out
}

// Completion completes one argument of one resource template from a fixed
// list (case-insensitive prefix match).
type Completion struct {
	// URI is the resource template, e.g. "salesforce://sobjects/{type}/{id}".
	URI string
	// Argument is the template variable, e.g. "type".
	Argument string
	// Values are the candidates, in the order they are offered.
	Values []string
}

// Service is what an upstream's sessions serve on top of the Client: its
// tools, resources and completions. The zero value serves nothing.
type Service struct {
	Tools     *Tools
	Resources []*mcp.Resource
	Templates []*mcp.ResourceTemplate
	// Read serves resources/read; nil reports every URI as not found.
	Read func(c *Call, uri string) (*mcp.ReadResourceResult, error)
	// Completion completes a template argument; zero completes nothing.
	Completion Completion
	// OnDemand names what the resources are ("Salesforce resources"), for
	// the refusal of resources/subscribe ("… are read on demand").
	OnDemand string
}

// Open opens a Session serving svc. Sessions are cheap: no I/O happens
// until a call, and every call takes the caller's identity from its ctx
// (identity.FromContext) — a session is not bound to the identity of Open.
func (cl *Client) Open(svc *Service) (upstreams.Session, error) {
	if cl.closed.Load() {
		return nil, cl.Errorf(upstreams.CodeSessionClosed, "the adapter is closed")
	}
	return &Session{cl: cl, svc: svc}, nil
}

// Session is one downstream session's view of a native REST upstream. It
// implements upstreams.Session; safe for concurrent use.
type Session struct {
	cl     *Client
	svc    *Service
	closed atomic.Bool
}

var _ upstreams.Session = (*Session)(nil)

func (s *Session) closedErr() error {
	if s.closed.Load() || s.cl.closed.Load() {
		return s.cl.Errorf(upstreams.CodeSessionClosed, "the session is closed")
	}
	return nil
}

// check refuses calls on a closed session and calls without a signed-in
// user: a native upstream is only ever called as the user.
func (s *Session) check(ctx context.Context) error {
	if err := s.closedErr(); err != nil {
		return err
	}
	if id := identity.FromContext(ctx); id == nil || id.Subject == "" {
		return s.cl.Errorf(jsonrpc.CodeInternalError, "no authenticated user in the request context; %s is only called as a signed-in user", s.cl.p.Name)
	}
	return nil
}

// ListTools implements upstreams.Session.
func (s *Session) ListTools(context.Context, *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	if err := s.closedErr(); err != nil {
		return nil, err
	}
	if s.svc.Tools == nil {
		return &mcp.ListToolsResult{Tools: []*mcp.Tool{}}, nil
	}
	return &mcp.ListToolsResult{Tools: s.svc.Tools.List()}, nil
}

// CallTool implements upstreams.Session: an unknown tool is -32602 naming
// the upstream's tools; the handler runs under NewCall's timeout.
func (s *Session) CallTool(ctx context.Context, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	if p == nil {
		return nil, s.cl.Errorf(jsonrpc.CodeInvalidParams, "missing tools/call params")
	}
	var h Handler
	var names string
	if s.svc.Tools != nil {
		h, names = s.svc.Tools.byName[p.Name], s.svc.Tools.names
	}
	if h == nil {
		return nil, s.cl.Errorf(jsonrpc.CodeInvalidParams, "unknown tool %q (this upstream has %s)", Clip(p.Name, 100), names)
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	c, cancel := s.cl.NewCall(ctx)
	defer cancel()
	return h(c, p)
}

// ListResources implements upstreams.Session.
func (s *Session) ListResources(context.Context, *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error) {
	if err := s.closedErr(); err != nil {
		return nil, err
	}
	out := make([]*mcp.Resource, len(s.svc.Resources))
	for i, r := range s.svc.Resources {
		c := *r
		out[i] = &c
	}
	return &mcp.ListResourcesResult{Resources: out}, nil
}

// ListResourceTemplates implements upstreams.Session.
func (s *Session) ListResourceTemplates(context.Context, *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error) {
	if err := s.closedErr(); err != nil {
		return nil, err
	}
	out := make([]*mcp.ResourceTemplate, len(s.svc.Templates))
	for i, r := range s.svc.Templates {
		c := *r
		out[i] = &c
	}
	return &mcp.ListResourceTemplatesResult{ResourceTemplates: out}, nil
}

// ReadResource implements upstreams.Session.
func (s *Session) ReadResource(ctx context.Context, p *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	if p == nil {
		return nil, s.cl.Errorf(jsonrpc.CodeInvalidParams, "missing resources/read params")
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if s.svc.Read == nil {
		return nil, mcp.ResourceNotFoundError(p.URI)
	}
	c, cancel := s.cl.NewCall(ctx)
	defer cancel()
	return s.svc.Read(c, p.URI)
}

// ListPrompts implements upstreams.Session: native upstreams have no
// prompts.
func (s *Session) ListPrompts(context.Context, *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error) {
	return &mcp.ListPromptsResult{Prompts: []*mcp.Prompt{}}, nil
}

// GetPrompt implements upstreams.Session: every name is unknown (-32602).
func (s *Session) GetPrompt(_ context.Context, p *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	name := ""
	if p != nil {
		name = p.Name
	}
	return nil, s.cl.Errorf(jsonrpc.CodeInvalidParams, "unknown prompt %q (this upstream has no prompts)", Clip(name, 100))
}

// Complete implements upstreams.Session with Service.Completion.
func (s *Session) Complete(_ context.Context, p *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	res := &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}}}
	want := s.svc.Completion
	if p == nil || p.Ref == nil || p.Ref.Type != "ref/resource" || want.URI == "" || p.Ref.URI != want.URI || p.Argument.Name != want.Argument {
		return res, nil
	}
	prefix := strings.ToLower(p.Argument.Value)
	for _, v := range want.Values {
		if strings.HasPrefix(strings.ToLower(v), prefix) {
			res.Completion.Values = append(res.Completion.Values, v)
		}
	}
	res.Completion.Total = len(res.Completion.Values)
	return res, nil
}

// Subscribe implements upstreams.Session: not supported (-32601).
func (s *Session) Subscribe(context.Context, *mcp.SubscribeParams) error {
	what := "resource subscriptions are not supported"
	if s.svc.OnDemand != "" {
		what += fmt.Sprintf(" (%s are read on demand)", s.svc.OnDemand)
	}
	return s.cl.Errorf(jsonrpc.CodeMethodNotFound, "%s", what)
}

// Unsubscribe implements upstreams.Session: not supported (-32601).
func (s *Session) Unsubscribe(context.Context, *mcp.UnsubscribeParams) error {
	return s.cl.Errorf(jsonrpc.CodeMethodNotFound, "resource subscriptions are not supported")
}

// SetLoggingLevel is accepted and ignored: native upstreams send no log
// notifications.
func (s *Session) SetLoggingLevel(context.Context, *mcp.SetLoggingLevelParams) error { return nil }

// Close implements upstreams.Session; idempotent.
func (s *Session) Close() error {
	s.closed.Store(true)
	return nil
}
