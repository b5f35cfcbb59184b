package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// testUpstream is a go-sdk MCP server behind a resource-server check: it
// accepts only tokens the IdP issued for its own audience, and records the
// subject and raw token of every call.
type testUpstream struct {
	name     string
	audience string
	srv      *httptest.Server
	mu       sync.Mutex
	tokens   []string // raw Authorization bearer values seen
	subjects []string
	// traceparents seen in upstream HTTP requests.
	traceparents []string
}

type ctxSubKey struct{}

func startUpstream(t testing.TB, idp *devidp.IdP, name string, build func(s *mcp.Server, u *testUpstream)) *testUpstream {
	t.Helper()
	return startUpstreamFor(t, idp.Issuer(), "https://"+name+".internal", name, build)
}

// startUpstreamFor is startUpstream for tokens of the IdP at issuer whose
// aud contains audience.
func startUpstreamFor(t testing.TB, issuer, audience, name string, build func(s *mcp.Server, u *testUpstream)) *testUpstream {
	t.Helper()
	u := &testUpstream{name: name, audience: audience}
	provider, err := oidc.NewProvider(context.Background(), issuer)
	if err != nil {
		t.Fatal(err)
	}
	verifier := provider.Verifier(&oidc.Config{ClientID: u.audience})
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, &mcp.ServerOptions{PageSize: 3})
	build(s, u)
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		tok, err := verifier.Verify(r.Context(), raw)
		if err != nil {
			http.Error(w, "invalid token: "+err.Error(), http.StatusUnauthorized)
			return
		}
		u.mu.Lock()
		u.tokens = append(u.tokens, raw)
		u.subjects = append(u.subjects, tok.Subject)
		u.traceparents = append(u.traceparents, r.Header.Get("Traceparent"))
		u.mu.Unlock()
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), ctxSubKey{}, tok.Subject)))
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *testUpstream) config() upstreams.Config {
	return upstreams.Config{Name: u.name, Kind: upstreams.KindMCP, URL: u.srv.URL + "/mcp", Timeout: 5 * time.Second,
		Credentials: credentials.Config{Flow: credentials.FlowTokenExchange, ClientID: "mandate", ClientSecret: "mandate-secret", Audience: u.audience}}
}

// subjectOf returns the platform subject the upstream saw for this request.
func subjectOf(req *mcp.CallToolRequest) string {
	if req.Extra != nil && req.Extra.Header != nil {
		return req.Extra.Header.Get("X-Test-Subject")
	}
	return ""
}

type muxEnv struct {
	idp     *devidp.IdP
	crm     *testUpstream
	docs    *testUpstream
	gw      *testGW
	audit   *syncBuffer
	aliceTk string
	bobTk   string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }
func (s *syncBuffer) Lines() []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// echoSubject is a tool that answers with the subject of the platform token
// the upstream received (the header is set by the upstream's auth wrapper).
func addSubjectTools(s *mcp.Server, u *testUpstream) {
	mcp.AddTool(s, &mcp.Tool{Name: "who", Description: "platform identity"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]string, error) {
		return nil, map[string]string{"upstream": u.name, "subject": fmt.Sprint(ctx.Value(ctxSubKey{}))}, nil
	})
	for i := range 5 {
		mcp.AddTool(s, &mcp.Tool{Name: fmt.Sprintf("t%d", i), Description: "filler"}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	}
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "echo raw arguments"}, func(ctx context.Context, req *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(req.Params.Arguments)}}}, nil, nil
	})
}

func startMux(t testing.TB, mutate func(*Config)) *muxEnv {
	t.Helper()
	return startMuxOpts(t, mutate, Options{})
}

func startMuxOpts(t testing.TB, mutate func(*Config), opts Options) *muxEnv {
	t.Helper()
	return startMuxBuild(t, addSubjectTools, mutate, opts)
}

// startMuxBuild is startMuxOpts with crm's server built by buildCRM.
func startMuxBuild(t testing.TB, buildCRM func(*mcp.Server, *testUpstream), mutate func(*Config), opts Options) *muxEnv {
	t.Helper()
	idp := startIdP(t)
	if err := idp.RegisterClient("mandate", "mandate-secret"); err != nil {
		t.Fatal(err)
	}
	env := &muxEnv{idp: idp, audit: &syncBuffer{}}
	env.crm = startUpstream(t, idp, "crm", buildCRM)
	env.docs = startUpstream(t, idp, "docs", func(s *mcp.Server, u *testUpstream) {
		addSubjectTools(s, u)
		s.AddResource(&mcp.Resource{URI: "docs://handbook", Name: "handbook", MIMEType: "text/plain"},
			func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
				return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: req.Params.URI, Text: "handbook for " + fmt.Sprint(ctx.Value(ctxSubKey{}))}}}, nil
			})
		s.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "who"}}},
			func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
				return &mcp.GetPromptResult{Messages: []*mcp.PromptMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello " + req.Params.Arguments["who"]}}}}, nil
			})
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{}
	cfg.Server.PublicURL = "http://" + ln.Addr().String()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Identity.Issuer = idp.Issuer()
	cfg.Upstreams = []upstreams.Config{env.crm.config(), env.docs.config()}
	for i := range cfg.Upstreams {
		cfg.Upstreams[i].Credentials.TokenURL = idp.TokenURL()
	}
	cfg.Policy = policy.Config{Default: "deny", Rules: []policy.Rule{
		{Name: "bob-no-docs-echo", Effect: "deny", When: `user.subject == "user-bob" && upstream == "docs" && tool == "echo"`},
		{Name: "employees", Effect: "allow", When: `user.subject.startsWith("user-")`},
	}}
	if mutate != nil {
		mutate(cfg)
	}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if opts.AuditOutput == nil { // benchmarks pass io.Discard
		opts.AuditOutput = env.audit
	}
	g, err := New(ctx, cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); g.Close() })
	for !g.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	env.gw = &testGW{g: g, srv: srv, cfg: cfg, mcpURL: cfg.MCPURL()}
	topts := devidp.TokenOptions{Audience: []string{env.gw.mcpURL}}
	env.aliceTk = idpToken(t, idp, "alice", topts)
	env.bobTk = idpToken(t, idp, "bob", topts)
	return env
}

func toolNames(t testing.TB, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	return names
}

func callJSON(t testing.TB, cs *mcp.ClientSession, name string, args any) (*mcp.CallToolResult, error) {
	t.Helper()
	return cs.CallTool(context.Background(), &mcp.CallToolParams{Name: name, Arguments: args})
}

func TestMultiplexAsEachUser(t *testing.T) {
	env := startMux(t, nil)
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	bob := connect(t, env.gw.mcpURL, env.bobTk)

	// Union of both upstreams (fetched through upstream pagination of 3), namespaced.
	want := []string{"crm_echo", "crm_t0", "crm_t1", "crm_t2", "crm_t3", "crm_t4", "crm_who",
		"docs_echo", "docs_t0", "docs_t1", "docs_t2", "docs_t3", "docs_t4", "docs_who", "whoami"}
	if got := toolNames(t, alice); !slices.Equal(got, want) {
		t.Fatalf("alice's tools:\n got %v\nwant %v", got, want)
	}
	// Bob never sees the tool policy denies him.
	bobTools := toolNames(t, bob)
	if slices.Contains(bobTools, "docs_echo") || !slices.Contains(bobTools, "crm_echo") {
		t.Fatalf("bob's tools: %v", bobTools)
	}
	// Each call reaches its upstream with the caller's exchanged token.
	for _, c := range []struct {
		cs       *mcp.ClientSession
		tool     string
		upstream string
		subject  string
	}{{alice, "crm_who", "crm", "user-alice"}, {alice, "docs_who", "docs", "user-alice"}, {bob, "crm_who", "crm", "user-bob"}} {
		res, err := callJSON(t, c.cs, c.tool, map[string]any{})
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %+v", c.tool, err, res)
		}
		var got map[string]string
		b, _ := json.Marshal(res.StructuredContent)
		_ = json.Unmarshal(b, &got)
		if got["upstream"] != c.upstream || got["subject"] != c.subject {
			t.Errorf("%s as %s reached %v", c.tool, c.subject, got)
		}
	}
	// Repeated calls on a warm session take the fast path (no go-sdk
	// decode/encode); the assertions below hold on it too.
	fastBefore := dispatch.ForwardedCalls()
	// Arguments pass through byte-faithfully.
	raw := json.RawMessage(`{"b":[1,2.50,{"z":null}],"a":"é\u00e9"}`)
	res, err := callJSON(t, alice, "crm_echo", raw)
	if err != nil || res.IsError {
		t.Fatal(err, res)
	}
	if txt := res.Content[0].(*mcp.TextContent).Text; txt != string(raw) {
		t.Errorf("arguments changed in transit:\n got %s\nwant %s", txt, raw)
	}
	if dispatch.ForwardedCalls() == fastBefore {
		t.Error("the warm echo call did not take the fast path")
	}
	// A denied call looks exactly like an unknown tool.
	_, errDenied := callJSON(t, bob, "docs_echo", map[string]any{})
	_, errUnknown := callJSON(t, bob, "docs_nonexistent_zz", map[string]any{})
	if errDenied == nil || errUnknown == nil || strings.ReplaceAll(errDenied.Error(), "docs_echo", "X") != strings.ReplaceAll(errUnknown.Error(), "docs_nonexistent_zz", "X") {
		t.Errorf("denied %v vs unknown %v", errDenied, errUnknown)
	}
	// Resources and prompts route to docs.
	rr, err := alice.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "docs://handbook"})
	if err != nil || rr.Contents[0].Text != "handbook for user-alice" {
		t.Fatalf("read: %v %+v", err, rr)
	}
	pr, err := alice.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "docs_greet", Arguments: map[string]string{"who": "world"}})
	if err != nil || pr.Messages[0].Content.(*mcp.TextContent).Text != "hello world" {
		t.Fatalf("prompt: %v %+v", err, pr)
	}
	// The upstreams never saw an inbound (gateway-audience) token.
	for _, u := range []*testUpstream{env.crm, env.docs} {
		u.mu.Lock()
		for _, tok := range u.tokens {
			if tok == env.aliceTk || tok == env.bobTk {
				t.Errorf("upstream %s received an inbound token", u.name)
			}
		}
		u.mu.Unlock()
	}
	// Audit: both identities on every call record.
	var calls int
	for _, r := range env.audit.Lines() {
		if r["method"] != "tools/call" || r["tool"] != "who" {
			continue
		}
		calls++
		user := r["user"].(map[string]any)
		cred, _ := r["credential"].(map[string]any)
		if cred == nil || cred["flow"] != "token_exchange" || cred["platform_subject"] != user["subject"] {
			t.Errorf("audit record lacks the platform identity: %v", r)
		}
	}
	if calls != 3 {
		t.Errorf("audit has %d who-calls, want 3:\n%s", calls, env.audit.String())
	}
	for _, secret := range []string{env.aliceTk, env.bobTk, "mandate-secret"} {
		if strings.Contains(env.audit.String(), secret) {
			t.Fatal("audit log contains a secret")
		}
	}
}
