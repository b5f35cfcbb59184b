package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

const inboundSecret = "inbound-secret"

// userCtx returns ctx carrying user sub with an inbound token that must
// never reach an upstream.
func userCtx(ctx context.Context, sub string) context.Context {
	return identity.NewContext(ctx, identity.Identity{Issuer: "https://idp.test/", Subject: sub}.WithRawToken(inboundSecret+"-"+sub))
}

// fakeSource hands out "platform-<subject>" tokens and counts.
type fakeSource struct {
	tokens        atomic.Int64
	invalidations atomic.Int64
	fail          atomic.Pointer[credentials.Error]
	lastRaw       atomic.Pointer[string] // inbound token of the last Token call's identity
}

func (f *fakeSource) Token(ctx context.Context) (credentials.Result, error) {
	f.tokens.Add(1)
	if e := f.fail.Load(); e != nil {
		return credentials.Result{}, e
	}
	id := identity.FromContext(ctx)
	if id == nil {
		return credentials.Result{}, errors.New("fakeSource: no identity in context")
	}
	raw := id.RawToken()
	f.lastRaw.Store(&raw)
	return credentials.Result{Token: &credentials.Token{
		AccessToken:     secret.String("platform-" + id.Subject),
		Flow:            credentials.FlowTokenExchange,
		PlatformSubject: "p-" + id.Subject,
	}}, nil
}

func (f *fakeSource) Invalidate(context.Context, *credentials.Token) { f.invalidations.Add(1) }

// upstream is an in-process go-sdk MCP server behind httptest, with HTTP
// middleware that records what reaches it.
type upstream struct {
	*httptest.Server
	srv *sdk.Server
	t   testing.TB

	mu          sync.Mutex
	auths       []string // Authorization headers seen
	traceparent []string
	methods     []string // HTTP methods seen

	refuse401 atomic.Bool
	unauth    atomic.Int64 // 401s answered to POSTs
	cancelled chan string  // tool "block" reports its cancellation here
	started   chan string  // tool "block" reports it started
}

type upstreamOptions struct {
	pageSize  int
	noTools   bool
	stateless bool
}

func newUpstream(t testing.TB, o upstreamOptions) *upstream {
	t.Helper()
	u := &upstream{t: t, cancelled: make(chan string, 16), started: make(chan string, 16)}
	srv := sdk.NewServer(&sdk.Implementation{Name: "up", Version: "1"}, &sdk.ServerOptions{
		PageSize: o.pageSize,
		CompletionHandler: func(_ context.Context, r *sdk.CompleteRequest) (*sdk.CompleteResult, error) {
			return &sdk.CompleteResult{Completion: sdk.CompletionResultDetails{Values: []string{r.Params.Argument.Value + "-1", r.Params.Argument.Value + "-2"}}}, nil
		},
		SubscribeHandler:   func(context.Context, *sdk.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *sdk.UnsubscribeRequest) error { return nil },
	})
	u.srv = srv
	obj := map[string]any{"type": "object"}
	text := func(s string) *sdk.CallToolResult {
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: s}}}
	}
	srv.AddTool(&sdk.Tool{Name: "echo", InputSchema: obj}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		meta, _ := json.Marshal(r.Params.Meta)
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: string(r.Params.Arguments)}, &sdk.TextContent{Text: string(meta)}}}, nil
	})
	srv.AddTool(&sdk.Tool{Name: "whoami", InputSchema: obj}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return text(r.Extra.Header.Get("Authorization")), nil
	})
	srv.AddTool(&sdk.Tool{Name: "block", InputSchema: obj}, func(ctx context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		u.started <- "block"
		<-ctx.Done()
		u.cancelled <- context.Cause(ctx).Error()
		return nil, ctx.Err()
	})
	srv.AddTool(&sdk.Tool{Name: "noisy", InputSchema: obj}, func(ctx context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var args struct{ N int }
		_ = json.Unmarshal(r.Params.Arguments, &args)
		tok := r.Params.GetProgressToken()
		for i := range args.N {
			if tok != nil {
				if err := r.Session.NotifyProgress(ctx, &sdk.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i + 1), Total: float64(args.N)}); err != nil {
					return nil, err
				}
			}
			if err := r.Session.Log(ctx, &sdk.LoggingMessageParams{Level: "info", Logger: "noisy", Data: i}); err != nil {
				return nil, err
			}
		}
		return text("done"), nil
	})
	srv.AddTool(&sdk.Tool{Name: "big", InputSchema: obj}, func(_ context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		var args struct{ Bytes int }
		_ = json.Unmarshal(r.Params.Arguments, &args)
		return text(strings.Repeat("x", args.Bytes)), nil
	})
	srv.AddTool(&sdk.Tool{Name: "sample", InputSchema: obj}, func(ctx context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		res, err := r.Session.CreateMessage(ctx, &sdk.CreateMessageParams{MaxTokens: 10, Messages: []*sdk.SamplingMessage{{Role: "user", Content: &sdk.TextContent{Text: "hi"}}}})
		if err != nil {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "sampling failed: " + err.Error()}}}, nil
		}
		return text("model said: " + res.Content.(*sdk.TextContent).Text), nil
	})
	srv.AddTool(&sdk.Tool{Name: "ask", InputSchema: obj}, func(ctx context.Context, r *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		// A SEP-1330 titled multi-select schema, which go-sdk's client
		// validation rejects.
		schema := map[string]any{
			"type": "object",
			"properties": map[string]any{
				"colors": map[string]any{
					"type":  "array",
					"title": "Colors",
					"items": map[string]any{"anyOf": []any{
						map[string]any{"const": "r", "title": "Red"},
						map[string]any{"const": "g", "title": "Green"},
					}},
				},
			},
		}
		res, err := r.Session.Elicit(ctx, &sdk.ElicitParams{Message: "pick", RequestedSchema: schema})
		if err != nil {
			return &sdk.CallToolResult{IsError: true, Content: []sdk.Content{&sdk.TextContent{Text: "elicitation failed: " + err.Error()}}}, nil
		}
		b, _ := json.Marshal(res.Content)
		return text(res.Action + " " + string(b)), nil
	})
	srv.AddTool(&sdk.Tool{Name: "fail", InputSchema: obj}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return nil, &jsonrpc.Error{Code: -32099, Message: "custom failure", Data: json.RawMessage(`{"why":"test"}`)}
	})
	if !o.noTools {
		for i := range 5 {
			srv.AddTool(&sdk.Tool{Name: fmt.Sprintf("t%d", i), InputSchema: obj}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
				return text("ok"), nil
			})
		}
	}
	for i := range 5 {
		uri := fmt.Sprintf("test://r/%d", i)
		srv.AddResource(&sdk.Resource{Name: fmt.Sprintf("r%d", i), URI: uri, MIMEType: "text/plain"}, func(_ context.Context, r *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
			return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: r.Params.URI, Text: "content of " + r.Params.URI}}}, nil
		})
		srv.AddResourceTemplate(&sdk.ResourceTemplate{Name: fmt.Sprintf("tpl%d", i), URITemplate: fmt.Sprintf("test://tpl%d/{id}", i)}, func(_ context.Context, r *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
			return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: r.Params.URI, Text: "tpl"}}}, nil
		})
		srv.AddPrompt(&sdk.Prompt{Name: fmt.Sprintf("p%d", i), Arguments: []*sdk.PromptArgument{{Name: "who"}}}, func(_ context.Context, r *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
			return &sdk.GetPromptResult{Messages: []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: "hello " + r.Params.Arguments["who"]}}}}, nil
		})
	}
	h := sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return srv }, &sdk.StreamableHTTPOptions{Stateless: o.stateless})
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := r.Header.Get("Authorization")
		if strings.Contains(a, inboundSecret) {
			t.Errorf("the user's inbound token reached the upstream: %q", a)
		}
		u.mu.Lock()
		u.auths = append(u.auths, a)
		u.methods = append(u.methods, r.Method)
		if tp := r.Header.Get("Traceparent"); tp != "" {
			u.traceparent = append(u.traceparent, tp)
		}
		u.mu.Unlock()
		if u.refuse401.Load() {
			if r.Method == http.MethodPost {
				u.unauth.Add(1)
			}
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	// Server sessions whose DELETE never arrived (refused, or the adapter
	// moved to a new session) would outlive the test; DELETEs are asserted
	// where they matter.
	t.Cleanup(func() {
		for ss := range srv.Sessions() {
			_ = ss.Close()
		}
	})
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) seenAuths() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.auths...)
}

func (u *upstream) seenMethods() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.methods...)
}

// recorder is an EventHandler that records what the adapter relays.
type recorder struct {
	mu       sync.Mutex
	notes    map[string]int
	params   map[string][]sdk.Params
	users    map[string]int // subject of the identity in Notify's ctx
	progress atomic.Int64
	logs     atomic.Int64
	sample   func(context.Context, *sdk.CreateMessageParams) (*sdk.CreateMessageResult, error)
	elicit   func(context.Context, *sdk.ElicitParams) (*sdk.ElicitResult, error)
	ch       chan string
}

func newRecorder() *recorder {
	return &recorder{notes: map[string]int{}, params: map[string][]sdk.Params{}, users: map[string]int{}, ch: make(chan string, 1024)}
}

func (r *recorder) Notify(ctx context.Context, method string, p sdk.Params) {
	switch method {
	case MethodProgress:
		r.progress.Add(1)
	case MethodLoggingMessage:
		r.logs.Add(1)
	}
	r.mu.Lock()
	r.notes[method]++
	r.params[method] = append(r.params[method], p)
	if id := identity.FromContext(ctx); id != nil {
		r.users[id.Subject]++
	}
	r.mu.Unlock()
	select {
	case r.ch <- method:
	default:
	}
}

func (r *recorder) CreateMessage(ctx context.Context, p *sdk.CreateMessageParams) (*sdk.CreateMessageResult, error) {
	if r.sample == nil {
		return nil, &jsonrpc.Error{Code: -32001, Message: "client does not support sampling"}
	}
	return r.sample(ctx, p)
}

func (r *recorder) Elicit(ctx context.Context, p *sdk.ElicitParams) (*sdk.ElicitResult, error) {
	if r.elicit == nil {
		return nil, errors.New("client does not support elicitation")
	}
	return r.elicit(ctx, p)
}

// waitFor waits for a relayed notification of method.
func (r *recorder) waitFor(t testing.TB, method string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-r.ch:
			if m == method {
				return
			}
		case <-timeout:
			t.Fatalf("no %s relayed within 5s", method)
		}
	}
}

// testAdapter builds an adapter for u with a dedicated base transport.
func testAdapter(t testing.TB, u string, src credentials.Source, mod func(*upstreams.Config)) (*Adapter, *http.Transport) {
	t.Helper()
	cfg := upstreams.Config{Name: "crm", Kind: upstreams.KindMCP, URL: u, Timeout: 10 * time.Second}
	if src != nil {
		cfg.Credentials.Flow = credentials.FlowTokenExchange
	}
	if mod != nil {
		mod(&cfg)
	}
	tr := &http.Transport{}
	var log *slog.Logger
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	a, err := New(cfg, Deps{Credentials: src, HTTPClient: &http.Client{Transport: tr}, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = a.Close()
		tr.CloseIdleConnections()
	})
	return a, tr
}

func open(t testing.TB, a *Adapter, ctx context.Context, ev upstreams.EventHandler) upstreams.Session {
	t.Helper()
	s, err := a.Open(ctx, upstreams.OpenOptions{ProtocolVersion: "2025-11-25", Events: ev})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rpcErr asserts err is a *jsonrpc.Error with code and a message containing
// every one of want.
func rpcErr(t testing.TB, err error, code int64, want ...string) *jsonrpc.Error {
	t.Helper()
	var werr *jsonrpc.Error
	if !errors.As(err, &werr) {
		t.Fatalf("error %v (%T) is not a *jsonrpc.Error", err, err)
	}
	if werr.Code != code {
		t.Fatalf("code = %d, want %d (message %q)", werr.Code, code, werr.Message)
	}
	for _, w := range want {
		if !strings.Contains(werr.Message, w) {
			t.Errorf("message %q does not contain %q", werr.Message, w)
		}
	}
	return werr
}

func firstText(t testing.TB, res *sdk.CallToolResult) string {
	t.Helper()
	if res == nil || len(res.Content) == 0 {
		t.Fatalf("empty result %+v", res)
	}
	tc, ok := res.Content[0].(*sdk.TextContent)
	if !ok {
		t.Fatalf("content %T is not text", res.Content[0])
	}
	return tc.Text
}

// leakCheck records the goroutine count and, at cleanup (registered first,
// so it runs last), waits for it to return to that level.
func leakCheck(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(10 * time.Second)
		var n int
		for time.Now().Before(deadline) {
			n = runtime.NumGoroutine()
			if n <= before {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		t.Errorf("goroutine leak: %d before, %d after\n%s", before, n, bytes.TrimSpace(buf))
	})
}

func identityFrom(ctx context.Context) *identity.Identity { return identity.FromContext(ctx) }
