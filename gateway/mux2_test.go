package gateway

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

// chattyTools adds a tool that sends n progress notifications and n log
// messages just before returning, and one that blocks until cancelled.
func chattyTools(cancelled *atomic.Int32) func(s *mcp.Server, u *testUpstream) {
	return func(s *mcp.Server, u *testUpstream) {
		mcp.AddTool(s, &mcp.Tool{Name: "chatty"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{ N int }) (*mcp.CallToolResult, any, error) {
			for i := range in.N {
				if tok := req.Params.GetProgressToken(); tok != nil {
					_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: tok, Progress: float64(i + 1), Total: float64(in.N)})
				}
				_ = req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: fmt.Sprintf("step %d", i)})
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil, nil
		})
		mcp.AddTool(s, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			<-ctx.Done()
			cancelled.Add(1)
			return nil, nil, ctx.Err()
		})
	}
}

func TestNotificationsRelayedAndNoneLost(t *testing.T) {
	var cancelled atomic.Int32
	env := startMux(t, nil)
	chat := startUpstream(t, env.idp, "chat", chattyTools(&cancelled))
	cfg := *env.gw.cfg
	uc := chat.config()
	uc.Credentials.TokenURL = env.idp.TokenURL()
	cfg.Upstreams = append(slices.Clone(cfg.Upstreams), uc.WithDefaults())
	if _, err := env.gw.g.Reload(&cfg); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	progress, logs := 0, 0
	c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(context.Context, *mcp.ProgressNotificationClientRequest) { mu.Lock(); progress++; mu.Unlock() },
		LoggingMessageHandler:       func(context.Context, *mcp.LoggingMessageRequest) { mu.Lock(); logs++; mu.Unlock() },
	})
	cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.aliceTk), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	if err := cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	const calls, n = 30, 5
	for i := range calls {
		p := &mcp.CallToolParams{Name: "chat_chatty", Arguments: map[string]any{"N": n}}
		p.SetProgressToken(fmt.Sprintf("tok-%d", i))
		res, err := cs.CallTool(context.Background(), p)
		if err != nil || res.IsError {
			t.Fatalf("call %d: %v %+v", i, err, res)
		}
	}
	// Log messages may trail the result on the standalone stream; wait briefly.
	deadline := time.Now().Add(3 * time.Second)
	for {
		mu.Lock()
		p, l := progress, logs
		mu.Unlock()
		if p == calls*n && l == calls*n || time.Now().After(deadline) {
			if p != calls*n || l != calls*n {
				t.Fatalf("relayed %d progress and %d log notifications, want %d each", p, l, calls*n)
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Cancellation propagates upstream.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "chat_block"})
	cancel()
	if err == nil {
		t.Fatal("blocked call returned without error")
	}
	deadline = time.Now().Add(3 * time.Second)
	for cancelled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if cancelled.Load() == 0 {
		t.Fatal("upstream call was not cancelled")
	}
}

func transportFor(endpoint, token string) *mcp.StreamableClientTransport {
	return &mcp.StreamableClientTransport{Endpoint: endpoint,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, base: http.DefaultTransport}}}
}

func TestUpstreamFailureIsIsolated(t *testing.T) {
	env := startMux(t, func(c *Config) {
		c.Upstreams[1].Timeout = 2 * time.Second
	})
	env.docs.srv.Close() // docs is down
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	names := toolNames(t, alice)
	if !slices.Contains(names, "crm_who") || slices.Contains(names, "docs_who") {
		t.Fatalf("with docs down, tools = %v (want crm's, not docs')", names)
	}
	if res, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("crm call with docs down: %v", err)
	}
	_, err := callJSON(t, alice, "docs_who", map[string]any{})
	if err == nil || !strings.Contains(err.Error(), "docs") {
		t.Fatalf("docs call: %v, want an error naming the upstream", err)
	}
}

func TestSessionsCloseUpstreamSessions(t *testing.T) {
	env := startMux(t, nil)
	warm := connect(t, env.gw.mcpURL, env.aliceTk)
	callJSON(t, warm, "crm_who", map[string]any{})
	time.Sleep(100 * time.Millisecond)
	env.gw.g.upTrans.(*http.Transport).CloseIdleConnections()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	time.Sleep(50 * time.Millisecond)
	before := runtime.NumGoroutine()
	for range 10 {
		c := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil)
		cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.bobTk), nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := callJSON(t, cs, "crm_who", map[string]any{}); err != nil {
			t.Fatal(err)
		}
		callJSON(t, cs, "docs_who", map[string]any{})
		cs.Close()
	}
	// Idle keep-alive connections are pooled, not leaked: close them on
	// every side before counting.
	idle := func() {
		env.gw.g.upTrans.(*http.Transport).CloseIdleConnections()
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	}
	deadline := time.Now().Add(5 * time.Second)
	for idle(); runtime.NumGoroutine() > before+5 && time.Now().Before(deadline); idle() {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before+5 {
		t.Fatalf("goroutines: %d before, %d after 10 closed sessions", before, n)
	}
	if n := env.gw.g.sessions.Count(); n != 1 {
		t.Fatalf("%d downstream sessions tracked, want 1", n)
	}
}

var _ = upstreams.KindMCP

func closeIdleDefault() { http.DefaultTransport.(*http.Transport).CloseIdleConnections() }
func TestStatelessMultiplex(t *testing.T) {
	env := startMux(t, func(c *Config) { c.Server.Session.Mode = SessionStateless })
	for _, u := range []struct{ tok, sub string }{{env.aliceTk, "user-alice"}, {env.bobTk, "user-bob"}} {
		cs := connect(t, env.gw.mcpURL, u.tok)
		for range 3 {
			res, err := callJSON(t, cs, "crm_who", map[string]any{})
			if err != nil || res.IsError {
				t.Fatal(err)
			}
			if got := fmt.Sprint(res.StructuredContent); !strings.Contains(got, u.sub) {
				t.Fatalf("stateless call as %s got %s", u.sub, got)
			}
		}
	}
}
