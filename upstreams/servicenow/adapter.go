package servicenow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// JSON-RPC error codes for failures that are not tool results (resource
// reads, closed sessions, a missing identity). Same values as the mcp and
// salesforce adapters.
const (
	CodeUpstreamUnavailable    = upstreams.CodeUpstreamUnavailable
	CodeUpstreamTimeout        = upstreams.CodeUpstreamTimeout
	CodeUpstreamUnauthorized   = upstreams.CodeUpstreamUnauthorized
	CodeResultTooLarge         = upstreams.CodeResultTooLarge
	CodeCredentialsUnavailable = upstreams.CodeCredentialsUnavailable
	CodeSessionClosed          = upstreams.CodeSessionClosed
	CodeRateLimited            = upstreams.CodeRateLimited
)

// Deps are what an Adapter needs from the process.
type Deps struct {
	// Credentials obtains the calling user's ServiceNow token: jwt_bearer
	// (Mandate signs an assertion whose sub names the sys_user, matched by
	// the OAuth app's user field) or token_exchange (the company IdP
	// exchanges the user's token for one whose audience is the ServiceNow
	// instance's OIDC client id). Required. The adapter uses whatever token
	// the Source gives; with client_credentials the calls run as that
	// service account, and the audit record says so (callinfo).
	Credentials credentials.Source
	// HTTPClient calls the Table API. Nil means a client over a clone of
	// http.DefaultTransport. Redirects are never followed.
	HTTPClient *http.Client
	// Logger receives one debug record per REST call (never a token,
	// query or record content). Nil discards.
	Logger *slog.Logger
}

// Adapter is a configured ServiceNow upstream. Safe for concurrent use.
type Adapter struct {
	name       string
	base       string // cfg.URL without trailing slash
	maxRecords int
	maxBytes   int64
	timeout    time.Duration
	src        credentials.Source
	client     *http.Client
	log        *slog.Logger
	tools      []*mcp.Tool
	handlers   map[string]toolHandler
	closed     atomic.Bool
}

var (
	_ upstreams.Adapter = (*Adapter)(nil)
	_ upstreams.Session = (*session)(nil)
)

// New builds the adapter of one kind: servicenow upstream. cfg's zero
// fields take their defaults (upstreams.Config.WithDefaults).
func New(cfg upstreams.Config, deps Deps) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	path := "upstreams[" + cfg.Name + "]"
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("servicenow adapter: upstream name is empty"))
	}
	if err := cfg.WithKind(upstreams.KindServiceNow).ValidateKind(path); err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must be positive", path))
	}
	if deps.Credentials == nil {
		errs = append(errs, fmt.Errorf("servicenow adapter %s: Deps.Credentials is required", cfg.Name))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a := &Adapter{
		name:       cfg.Name,
		base:       strings.TrimRight(cfg.URL, "/"),
		maxRecords: cfg.ServiceNow.MaxRecords,
		maxBytes:   cfg.MaxResultBytes,
		timeout:    cfg.Timeout,
		src:        deps.Credentials,
		log:        deps.Logger,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if deps.HTTPClient != nil {
		c := *deps.HTTPClient
		a.client = &c
	} else {
		a.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	a.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	a.tools, a.handlers = a.buildTools()
	return a, nil
}

// Name implements upstreams.Adapter.
func (a *Adapter) Name() string { return a.name }

// Open implements upstreams.Adapter. Sessions are cheap: no I/O happens
// until a call, and every call takes the caller's identity from its ctx.
func (a *Adapter) Open(ctx context.Context, _ upstreams.OpenOptions) (upstreams.Session, error) {
	if a.closed.Load() {
		return nil, a.rpcError(CodeSessionClosed, "the adapter is closed")
	}
	return &session{a: a}, nil
}

// Close implements upstreams.Adapter; idempotent. Sessions fail after it.
func (a *Adapter) Close() error {
	a.closed.Store(true)
	return nil
}

func (a *Adapter) rpcError(code int64, format string, args ...any) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: "upstream " + a.name + " (servicenow): " + fmt.Sprintf(format, args...)}
}

type session struct {
	a      *Adapter
	closed atomic.Bool
}

func (s *session) closedErr() error {
	if s.closed.Load() || s.a.closed.Load() {
		return s.a.rpcError(CodeSessionClosed, "the session is closed")
	}
	return nil
}

func (s *session) check(ctx context.Context) error {
	if err := s.closedErr(); err != nil {
		return err
	}
	if id := identity.FromContext(ctx); id == nil || id.Subject == "" {
		return s.a.rpcError(jsonrpc.CodeInternalError, "no authenticated user in the request context; ServiceNow is only called as a signed-in user")
	}
	return nil
}

func (s *session) ListTools(context.Context, *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	if err := s.closedErr(); err != nil {
		return nil, err
	}
	out := make([]*mcp.Tool, len(s.a.tools))
	for i, t := range s.a.tools {
		c := *t
		out[i] = &c
	}
	return &mcp.ListToolsResult{Tools: out}, nil
}

func (s *session) CallTool(ctx context.Context, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	if p == nil {
		return nil, s.a.rpcError(jsonrpc.CodeInvalidParams, "missing tools/call params")
	}
	h, ok := s.a.handlers[p.Name]
	if !ok {
		names := make([]string, 0, len(s.a.handlers))
		for n := range s.a.handlers {
			names = append(names, n)
		}
		sort.Strings(names)
		return nil, s.a.rpcError(jsonrpc.CodeInvalidParams, "unknown tool %q (this upstream has %s)", clip(p.Name, 100), strings.Join(names, ", "))
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	c, cancel := s.a.newCall(ctx)
	defer cancel()
	return h(c, p)
}

func (s *session) ListResources(context.Context, *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error) {
	if err := s.closedErr(); err != nil {
		return nil, err
	}
	return &mcp.ListResourcesResult{Resources: []*mcp.Resource{}}, nil
}

func (s *session) ListResourceTemplates(context.Context, *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error) {
	if err := s.closedErr(); err != nil {
		return nil, err
	}
	return &mcp.ListResourceTemplatesResult{ResourceTemplates: []*mcp.ResourceTemplate{{
		URITemplate: RecordURITemplate,
		Name:        "table_record",
		Title:       "ServiceNow record",
		Description: "One ServiceNow record by table and sys_id (e.g. servicenow://table/incident/9d385017c611228701d22104cc95c371), every field with its value and display value, as JSON. ServiceNow's ACLs decide what you may read.",
		MIMEType:    "application/json",
	}}}, nil
}

func (s *session) ReadResource(ctx context.Context, p *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	if p == nil {
		return nil, s.a.rpcError(jsonrpc.CodeInvalidParams, "missing resources/read params")
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	c, cancel := s.a.newCall(ctx)
	defer cancel()
	return c.readResource(p.URI)
}

func (s *session) ListPrompts(context.Context, *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error) {
	return &mcp.ListPromptsResult{Prompts: []*mcp.Prompt{}}, nil
}

func (s *session) GetPrompt(_ context.Context, p *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	name := ""
	if p != nil {
		name = p.Name
	}
	return nil, s.a.rpcError(jsonrpc.CodeInvalidParams, "unknown prompt %q (this upstream has no prompts)", clip(name, 100))
}

// commonTables complete the {table} argument of the record template.
var commonTables = []string{"change_request", "incident", "kb_knowledge", "problem", "sc_req_item", "sys_user", "sys_user_group", "task"}

func (s *session) Complete(_ context.Context, p *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	res := &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}}}
	if p == nil || p.Ref == nil || p.Ref.Type != "ref/resource" || p.Ref.URI != RecordURITemplate || p.Argument.Name != "table" {
		return res, nil
	}
	for _, t := range commonTables {
		if strings.HasPrefix(t, strings.ToLower(p.Argument.Value)) {
			res.Completion.Values = append(res.Completion.Values, t)
		}
	}
	res.Completion.Total = len(res.Completion.Values)
	return res, nil
}

func (s *session) Subscribe(context.Context, *mcp.SubscribeParams) error {
	return s.a.rpcError(jsonrpc.CodeMethodNotFound, "resource subscriptions are not supported (ServiceNow records are read on demand)")
}

func (s *session) Unsubscribe(context.Context, *mcp.UnsubscribeParams) error {
	return s.a.rpcError(jsonrpc.CodeMethodNotFound, "resource subscriptions are not supported")
}

// SetLoggingLevel is accepted and ignored: the adapter sends no log
// notifications.
func (s *session) SetLoggingLevel(context.Context, *mcp.SetLoggingLevelParams) error { return nil }

// Close implements upstreams.Session; idempotent.
func (s *session) Close() error {
	s.closed.Store(true)
	return nil
}

// clip shortens s to n bytes (at a rune boundary) for messages.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}
