package salesforce

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
// reads, closed sessions, a missing identity). They lie in the
// implementation-defined server range and have the same values as the
// codes of the mcp adapter, so the gateway can treat every kind alike.
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
	// Credentials obtains the calling user's Salesforce token (flow
	// jwt_bearer in production: sub = the Salesforce username). Required.
	// The adapter uses whatever token the Source gives; with
	// client_credentials the calls run as that service account, and the
	// audit record says so (callinfo).
	Credentials credentials.Source
	// HTTPClient calls the REST API. Nil means a client over a clone of
	// http.DefaultTransport. Redirects are never followed (the adapter
	// copies the client and sets CheckRedirect).
	HTTPClient *http.Client
	// Logger receives one debug record per REST call (never a token or a
	// query text). Nil discards.
	Logger *slog.Logger
}

// Adapter is a configured Salesforce upstream. Safe for concurrent use.
type Adapter struct {
	name       string
	fallback   string // cfg.URL without trailing slash
	version    string
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

// New builds the adapter of one kind: salesforce upstream. cfg's zero
// fields take their defaults (upstreams.Config.WithDefaults).
func New(cfg upstreams.Config, deps Deps) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	path := "upstreams[" + cfg.Name + "]"
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("salesforce adapter: upstream name is empty"))
	}
	if err := cfg.WithKind(upstreams.KindSalesforce).ValidateKind(path); err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("%s.timeout: must be positive", path))
	}
	if deps.Credentials == nil {
		errs = append(errs, fmt.Errorf("salesforce adapter %s: Deps.Credentials is required", cfg.Name))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	a := &Adapter{
		name:       cfg.Name,
		fallback:   strings.TrimRight(cfg.URL, "/"),
		version:    cfg.Salesforce.APIVersion,
		maxRecords: cfg.Salesforce.MaxRecords,
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

// Close implements upstreams.Adapter. Sessions fail after it; idempotent.
func (a *Adapter) Close() error {
	a.closed.Store(true)
	return nil
}

func (a *Adapter) rpcError(code int64, format string, args ...any) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: "upstream " + a.name + " (salesforce): " + fmt.Sprintf(format, args...)}
}

// session is one downstream session's view of the adapter.
type session struct {
	a      *Adapter
	closed atomic.Bool
}

func (s *session) check(ctx context.Context) error {
	if s.closed.Load() || s.a.closed.Load() {
		return s.a.rpcError(CodeSessionClosed, "the session is closed")
	}
	if id := identity.FromContext(ctx); id == nil || id.Subject == "" {
		return s.a.rpcError(jsonrpc.CodeInternalError, "no authenticated user in the request context; Salesforce is only called as a signed-in user")
	}
	return nil
}

func (s *session) ListTools(ctx context.Context, _ *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	if s.closed.Load() || s.a.closed.Load() {
		return nil, s.a.rpcError(CodeSessionClosed, "the session is closed")
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

func (s *session) ListResources(ctx context.Context, _ *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error) {
	if s.closed.Load() || s.a.closed.Load() {
		return nil, s.a.rpcError(CodeSessionClosed, "the session is closed")
	}
	return &mcp.ListResourcesResult{Resources: []*mcp.Resource{{
		URI:         PipelineURI,
		Name:        "my_pipeline",
		Title:       "My open opportunities",
		Description: "The open opportunities Salesforce's sharing rules show you (Name, Amount, StageName, CloseDate), ordered by close date, as JSON.",
		MIMEType:    "application/json",
	}}}, nil
}

func (s *session) ListResourceTemplates(ctx context.Context, _ *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error) {
	if s.closed.Load() || s.a.closed.Load() {
		return nil, s.a.rpcError(CodeSessionClosed, "the session is closed")
	}
	return &mcp.ListResourceTemplatesResult{ResourceTemplates: []*mcp.ResourceTemplate{{
		URITemplate: RecordURITemplate,
		Name:        "sobject_record",
		Title:       "Salesforce record",
		Description: "One Salesforce record by sObject type and 15/18-character id (e.g. salesforce://sobjects/Opportunity/006000000000001AAA), with all fields you may read, as JSON.",
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

// commonObjects complete the {type} argument of the record template.
var commonObjects = []string{"Account", "Campaign", "Case", "Contact", "Contract", "Event", "Lead", "Opportunity", "Order", "Product2", "Task", "User"}

func (s *session) Complete(_ context.Context, p *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	res := &mcp.CompleteResult{Completion: mcp.CompletionResultDetails{Values: []string{}}}
	if p == nil || p.Ref == nil || p.Ref.Type != "ref/resource" || p.Ref.URI != RecordURITemplate || p.Argument.Name != "type" {
		return res, nil
	}
	for _, o := range commonObjects {
		if strings.HasPrefix(strings.ToLower(o), strings.ToLower(p.Argument.Value)) {
			res.Completion.Values = append(res.Completion.Values, o)
		}
	}
	res.Completion.Total = len(res.Completion.Values)
	return res, nil
}

func (s *session) Subscribe(context.Context, *mcp.SubscribeParams) error {
	return s.a.rpcError(jsonrpc.CodeMethodNotFound, "resource subscriptions are not supported (Salesforce resources are read on demand)")
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
