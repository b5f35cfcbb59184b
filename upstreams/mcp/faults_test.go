package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Fault tests run sequentially (no t.Parallel) so that goroutine counts
// before and after are meaningful.

// rawUpstream is a hand-written streamable HTTP MCP endpoint (JSON
// responses, no sessions) whose answers to anything but the handshake come
// from handle; it can say what no go-sdk server would.
func rawUpstream(t testing.TB, handle func(w http.ResponseWriter, method string, id json.RawMessage)) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
			return
		}
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.NewDecoder(r.Body).Decode(&msg); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		if msg.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		if msg.Method == "initialize" {
			writeResult(w, msg.ID, `{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"resources":{}},"serverInfo":{"name":"raw","version":"1"}}`)
			return
		}
		handle(w, msg.Method, msg.ID)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeResult(w http.ResponseWriter, id json.RawMessage, result string) {
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, id, result)
}

func TestUpstreamDownAtFirstCall(t *testing.T) {
	leakCheck(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	a, _ := testAdapter(t, "http://"+addr+"/mcp", &fakeSource{}, nil)
	ctx := userCtx(context.Background(), "alice")
	s := open(t, a, ctx, nil)
	_, err = s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	rpcErr(t, err, CodeUpstreamUnavailable, "upstream crm: ", "connecting", "connection refused")
	if h := a.Health(); h.Healthy() || h.ConsecutiveFailures != 1 || !strings.Contains(h.LastError, "connection refused") {
		t.Errorf("health after failure: %+v", h)
	}
	// What the gateway reads, through the optional interface.
	if h, ok := upstreams.HealthOf(a); !ok || h.Upstream != "crm" || h.ConsecutiveFailures != 1 || h.OpenSessions != 1 {
		t.Errorf("upstreams.HealthOf(the mcp adapter) = %+v, %v; want its health", h, ok)
	}

	// The upstream comes up: the same session works (the failure was not remembered).
	u := newUpstream(t, upstreamOptions{})
	u.Close()
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(u.Config.Handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	if err != nil || firstText(t, res) != "Bearer platform-alice" {
		t.Fatalf("after the upstream came up: %v %v", res, err)
	}
	if h := a.Health(); !h.Healthy() {
		t.Errorf("health after recovery: %+v", h)
	}
	if err := s.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// Concurrent first calls share one connection attempt.
func TestSingleConnectAttempt(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	var inits atomic.Int64
	inner := u.Config.Handler
	u.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Mcp-Session-Id") == "" {
			inits.Add(1)
		}
		inner.ServeHTTP(w, r)
	})
	a, _ := testAdapter(t, u.URL, nil, nil)
	s := open(t, a, context.Background(), nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "t1"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := inits.Load(); n != 1 {
		t.Errorf("%d initialize requests for 20 concurrent first calls, want 1", n)
	}
	_ = s.Close()
}

func TestKilledMidCall(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	a, tr := testAdapter(t, u.URL, nil, nil)
	s := open(t, a, context.Background(), nil)
	errc := make(chan error, 1)
	go func() {
		_, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "block"})
		errc <- err
	}()
	<-u.started
	u.CloseClientConnections()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		t.Fatal("call did not return after the connection was killed")
	}
	rpcErr(t, err, CodeUpstreamUnavailable, "upstream crm: ", "connection lost")
	<-u.cancelled
	tr.CloseIdleConnections()
	// The session recovers.
	if _, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "t1"}); err != nil {
		t.Fatalf("call after the kill: %v", err)
	}
	_ = s.Close()
}

func TestTimeout(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, nil, func(c *upstreams.Config) { c.Timeout = 300 * time.Millisecond })
	s := open(t, a, context.Background(), nil)
	start := time.Now()
	_, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "block"})
	rpcErr(t, err, CodeUpstreamTimeout, "upstream crm: timed out after 300ms")
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %s", d)
	}
	select {
	case <-u.cancelled: // notifications/cancelled reached the upstream
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream handler was not cancelled after the timeout")
	}
	if h := a.Health(); h.ConsecutiveFailures != 1 {
		t.Errorf("health: %+v", h)
	}
	if _, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "t1"}); err != nil {
		t.Fatalf("call after timeout: %v", err)
	}
	_ = s.Close()
}

func TestInvalidJSON(t *testing.T) {
	leakCheck(t)
	for _, tc := range []struct {
		name, body string
	}{
		{"garbage", "this is not json {{{"},
		{"not a JSON-RPC message", `{"hello":"world"}`},
		{"result of the wrong shape", ""}, // filled below
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := rawUpstream(t, func(w http.ResponseWriter, method string, id json.RawMessage) {
				w.Header().Set("Content-Type", "application/json")
				if tc.body == "" {
					fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":{"content":"should be a list"}}`, id)
					return
				}
				_, _ = w.Write([]byte(tc.body))
			})
			a, _ := testAdapter(t, srv.URL, nil, nil)
			s := open(t, a, context.Background(), nil)
			_, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "x"})
			rpcErr(t, err, CodeUpstreamBadResponse, "upstream crm: ", "invalid response")
			_ = s.Close()
		})
	}
}

func TestUnauthorized(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	src := &fakeSource{}
	a, _ := testAdapter(t, u.URL, src, nil)
	ctx := userCtx(context.Background(), "alice")
	s := open(t, a, ctx, nil)

	// Refused at connect.
	u.refuse401.Store(true)
	_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	rpcErr(t, err, CodeUpstreamUnauthorized, "upstream crm: ", "refused the user's credentials", "401")
	if n, inv := u.unauth.Load(), src.invalidations.Load(); n != 2 || inv != 1 {
		t.Errorf("401s = %d, invalidations = %d; want 2 and 1 (one retry with a fresh token)", n, inv)
	}
	if h := a.Health(); !h.Healthy() {
		t.Errorf("a credentials refusal must not mark the upstream unhealthy: %+v", h)
	}

	// Refused mid-session, then accepted again.
	u.refuse401.Store(false)
	if _, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"}); err != nil {
		t.Fatal(err)
	}
	u.refuse401.Store(true)
	u.unauth.Store(0)
	_, err = s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	rpcErr(t, err, CodeUpstreamUnauthorized, "refused the user's credentials")
	if n := u.unauth.Load(); n != 2 {
		t.Errorf("401s = %d, want 2", n)
	}
	u.refuse401.Store(false)
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	if err != nil || firstText(t, res) != "Bearer platform-alice" {
		t.Fatalf("after 401s stopped: %v %v", res, err)
	}
	_ = s.Close()
}

func TestCredentialsError(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	src := &fakeSource{}
	src.fail.Store(&credentials.Error{Upstream: "crm", Flow: credentials.FlowEntraOBO, Code: "interaction_required", Interaction: true, User: "alice"})
	a, _ := testAdapter(t, u.URL, src, nil)
	ctx := userCtx(context.Background(), "alice")
	s := open(t, a, ctx, nil)
	_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	werr := rpcErr(t, err, CodeCredentialsUnavailable, "sign in again")
	if !strings.Contains(string(werr.Data), `"interaction_required":true`) {
		t.Errorf("data = %s", werr.Data)
	}
	if len(u.seenAuths()) != 0 {
		t.Errorf("requests reached the upstream without a token: %v", u.seenAuths())
	}
	_ = s.Close()
}

func TestResultTooLarge(t *testing.T) {
	leakCheck(t)
	const limit = 1 << 20
	t.Run("event stream", func(t *testing.T) {
		u := newUpstream(t, upstreamOptions{})
		// The go-sdk upstream needs seconds (more under -race) to produce
		// 10 MB; a direct go-sdk client takes ~3.7 s to receive it.
		a, _ := testAdapter(t, u.URL, nil, func(c *upstreams.Config) { c.MaxResultBytes = limit; c.Timeout = time.Minute })
		s := open(t, a, context.Background(), nil)
		_, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "big", Arguments: map[string]any{"bytes": 10 << 20}})
		rpcErr(t, err, CodeResultTooLarge, "upstream crm: ", "exceeds the limit of 1048576 bytes")
		// Under the limit is fine, and the session still works.
		res, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "big", Arguments: map[string]any{"bytes": limit / 2}})
		if err != nil || len(firstText(t, res)) != limit/2 {
			t.Fatalf("half the limit: %v", err)
		}
		_ = s.Close()
	})
	t.Run("json", func(t *testing.T) {
		big := strings.Repeat("y", 10<<20)
		srv := rawUpstream(t, func(w http.ResponseWriter, method string, id json.RawMessage) {
			writeResult(w, id, `{"content":[{"type":"text","text":"`+big+`"}]}`)
		})
		a, _ := testAdapter(t, srv.URL, nil, func(c *upstreams.Config) { c.MaxResultBytes = limit })
		s := open(t, a, context.Background(), nil)
		_, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "x"})
		rpcErr(t, err, CodeResultTooLarge, "exceeds the limit")
		_ = s.Close()
	})
}

// Definitions a go-sdk server would panic on are skipped; the rest list.
func TestMalformedDefinitions(t *testing.T) {
	leakCheck(t)
	srv := rawUpstream(t, func(w http.ResponseWriter, method string, id json.RawMessage) {
		switch method {
		case "tools/list":
			writeResult(w, id, `{"tools":[
				{"name":"good","inputSchema":{"type":"object","properties":{"q":{"type":"string"}}}},
				{"name":"stringy","inputSchema":{"type":"string"}},
				{"name":"number","inputSchema":5},
				{"name":"noschema"},
				null,
				{"name":"badout","inputSchema":{"type":"object"},"outputSchema":{"type":"array"}},
				{"name":"two words","inputSchema":{"type":"object"}},
				{"name":"`+strings.Repeat("a", 129)+`","inputSchema":{"type":"object"}},
				{"name":"good2","inputSchema":{"type":"object"}}]}`)
		case "resources/list":
			writeResult(w, id, `{"resources":[{"name":"ok","uri":"file:///a"},{"name":"nouri","uri":""},{"name":"bad","uri":"::not a uri"},{"name":"rel","uri":"relative/path"},
				{"name":"long","uri":"file:///`+strings.Repeat("a", 4096)+`"}]}`)
		case "prompts/list":
			writeResult(w, id, `{"prompts":[{"name":"ok"},{"name":"tab\tname"},{"name":""}]}`)
		default:
			writeResult(w, id, `{}`)
		}
	})
	a, _ := testAdapter(t, srv.URL, nil, nil)
	s := open(t, a, context.Background(), nil)
	tools, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "good,good2" {
		t.Errorf("tools = %v, want good,good2", names)
	}
	rs, err := s.ListResources(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Resources) != 1 || rs.Resources[0].Name != "ok" {
		t.Errorf("resources = %+v", rs.Resources)
	}
	ps, err := s.ListPrompts(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps.Prompts) != 1 || ps.Prompts[0].Name != "ok" {
		t.Errorf("prompts = %+v", ps.Prompts)
	}
	_ = s.Close()
}

// restartable serves u through a streamable handler that restart replaces
// by a new one: the upstream forgets every session, as after a restart.
func restartable(u *upstream) (restart func()) {
	var mu sync.Mutex
	newHandler := func() http.Handler {
		return sdk.NewStreamableHTTPHandler(func(*http.Request) *sdk.Server { return u.srv }, nil)
	}
	h := newHandler()
	u.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		cur := h
		mu.Unlock()
		cur.ServeHTTP(w, r)
	})
	return func() {
		mu.Lock()
		h = newHandler()
		mu.Unlock()
	}
}

// The upstream forgets the session (restart): the call is retried once on a
// new upstream session, transparently; logging level and subscriptions are
// restored.
func TestUpstreamForgetsSession(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	restart := restartable(u)
	a, _ := testAdapter(t, u.URL, nil, nil)
	rec := newRecorder()
	s := open(t, a, context.Background(), rec)
	ctx := context.Background()
	if err := s.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	restart()
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "noisy", Arguments: map[string]any{"n": 2}})
	if err != nil || firstText(t, res) != "done" {
		t.Fatalf("call after the upstream forgot the session: %v %v", res, err)
	}
	if l := rec.logs.Load(); l != 2 {
		t.Errorf("log level not restored on the new upstream session: %d logs relayed", l)
	}
	_ = s.Close()
}

func TestCloseSessionsAndAdapter(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, nil, nil)
	var ss []upstreams.Session
	for range 3 {
		s := open(t, a, context.Background(), nil)
		if _, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "t1"}); err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	if n := a.Health().OpenSessions; n != 3 {
		t.Errorf("open sessions %d", n)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	deletes := 0
	for _, m := range u.seenMethods() {
		if m == http.MethodDelete {
			deletes++
		}
	}
	if deletes != 3 {
		t.Errorf("%d DELETEs, want 3", deletes)
	}
	_, err := ss[0].CallTool(context.Background(), &sdk.CallToolParams{Name: "t1"})
	rpcErr(t, err, CodeSessionClosed, "session is closed")
	if _, err := a.Open(context.Background(), upstreams.OpenOptions{}); err == nil {
		t.Error("Open after Close succeeded")
	}
}

// CallToolRaw (the gateway's fast path) also survives an upstream that forgot
// the session: the 404 is not returned, the message is sent once more on
// a new upstream session, and it runs exactly once.
func TestRawCallUpstreamForgetsSession(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	restart := restartable(u)
	a, _ := testAdapter(t, u.URL, nil, nil)
	s := open(t, a, context.Background(), newRecorder())
	ctx := context.Background()
	if _, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "noisy", Arguments: map[string]any{"n": 0}}); err != nil {
		t.Fatal(err) // connects the upstream session
	}
	restart()
	raw, ok := s.(upstreams.RawCaller)
	if !ok {
		t.Fatal("the session is no RawCaller")
	}
	res, err := raw.CallToolRaw(ctx, "noisy", []byte(`"mx-1"`), []byte(`{"jsonrpc":"2.0","id":"mx-1","method":"tools/call","params":{"name":"noisy","arguments":{"n":0}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if res.IsError || !strings.Contains(string(res.Result), "done") {
		t.Fatalf("CallToolRaw after the upstream forgot the session: %s", res.Result)
	}
	_ = s.Close()
}
