package mcp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

func TestNewValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  upstreams.Config
		deps Deps
		want string
	}{
		{"wrong kind", upstreams.Config{Name: "x", Kind: "salesforce", URL: "http://127.0.0.1/"}, Deps{}, `kind "salesforce"`},
		{"bad url", upstreams.Config{Name: "x", URL: "ftp://h/"}, Deps{}, "url must be"},
		{"flow without source", upstreams.Config{Name: "x", URL: "http://127.0.0.1/", Credentials: credentials.Config{Flow: credentials.FlowTokenExchange}}, Deps{}, "no credentials source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, tc.deps)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want error containing %q", err, tc.want)
			}
		})
	}
	if _, err := New(upstreams.Config{Name: "x", URL: "http://127.0.0.1/"}, Deps{}); err != nil {
		t.Fatalf("flow none with zero Deps: %v", err)
	}
}

// The upstream sees each user's exchanged platform token, never the inbound
// token (the upstream handler fails the test if it sees it), including on
// requests go-sdk makes in the background (event stream GET, DELETE).
func TestPerUserTokens(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	src := &fakeSource{}
	a, _ := testAdapter(t, u.URL, src, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	for _, user := range []string{"alice", "bob"} {
		wg.Go(func() {
			uctx := userCtx(ctx, user)
			s := open(t, a, uctx, newRecorder())
			for range 3 {
				res, err := s.CallTool(uctx, &sdk.CallToolParams{Name: "whoami"})
				if err != nil {
					t.Error(err)
					return
				}
				if got, want := firstText(t, res), "Bearer platform-"+user; got != want {
					t.Errorf("%s: upstream saw %q, want %q", user, got, want)
				}
			}
			if err := s.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	wg.Wait()
	methods := map[string]bool{}
	for _, m := range u.seenMethods() {
		methods[m] = true
	}
	if !methods["GET"] || !methods["DELETE"] {
		t.Errorf("expected background GET and DELETE requests, saw %v", methods)
	}
	for _, a := range u.seenAuths() {
		if a != "Bearer platform-alice" && a != "Bearer platform-bob" {
			t.Errorf("upstream saw Authorization %q", a)
		}
	}
}

// A refreshed inbound token (same user) seen on a call is what later
// background requests (here the DELETE of Close) exchange with.
func TestIdentityRefreshed(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	src := &fakeSource{}
	a, _ := testAdapter(t, u.URL, src, nil)
	id1 := identity.Identity{Issuer: "https://idp.test/", Subject: "alice"}
	s := open(t, a, identity.NewContext(context.Background(), id1.WithRawToken("first")), nil)
	ctx2 := identity.NewContext(context.Background(), id1.WithRawToken("second"))
	if _, err := s.CallTool(ctx2, &sdk.CallToolParams{Name: "whoami"}); err != nil {
		t.Fatal(err)
	}
	src.lastRaw.Store(nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if p := src.lastRaw.Load(); p == nil || *p != "second" {
		t.Fatalf("background DELETE exchanged with inbound token %v, want the refreshed one", p)
	}
}

// A call with another user's identity on a session is refused.
func TestSessionBoundToUser(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, &fakeSource{}, nil)
	s := open(t, a, userCtx(context.Background(), "alice"), nil)
	_, err := s.CallTool(userCtx(context.Background(), "mallory"), &sdk.CallToolParams{Name: "whoami"})
	rpcErr(t, err, CodeSessionClosed, "upstream crm", "another user")
}

// Credential facts land in the caller's callinfo.
func TestCallinfoRecorded(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, &fakeSource{}, nil)
	ctx := userCtx(context.Background(), "alice")
	s := open(t, a, ctx, nil)
	cctx, info := callinfo.NewContext(ctx)
	if _, err := s.CallTool(cctx, &sdk.CallToolParams{Name: "whoami"}); err != nil {
		t.Fatal(err)
	}
	snap := info.Snapshot()
	if snap.Flow != credentials.FlowTokenExchange || snap.PlatformSubject != "p-alice" {
		t.Fatalf("callinfo = %+v", snap)
	}
}

func TestPassThrough(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{pageSize: 2})
	a, _ := testAdapter(t, u.URL, nil, nil)
	ctx := context.Background()
	s := open(t, a, ctx, newRecorder())

	t.Run("raw arguments and _meta", func(t *testing.T) {
		raw := json.RawMessage(`{"b":1,"a":[1,2,{"z":null}],"s":"<&>"}`)
		p := &sdk.CallToolParams{Name: "echo", Arguments: raw, Meta: sdk.Meta{"progressToken": "tok-1", "x-custom": "v"}}
		res, err := s.CallTool(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		var got, want any
		_ = json.Unmarshal([]byte(firstText(t, res)), &got)
		_ = json.Unmarshal(raw, &want)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("arguments changed (-sent +received):\n%s", diff)
		}
		meta := res.Content[1].(*sdk.TextContent).Text
		if !strings.Contains(meta, `"progressToken":"tok-1"`) || !strings.Contains(meta, `"x-custom":"v"`) {
			t.Errorf("_meta not passed through: %s", meta)
		}
		if p.Arguments == nil || len(p.Meta) != 2 {
			t.Errorf("caller's params were modified: %+v", p)
		}
	})

	t.Run("pagination", func(t *testing.T) {
		var names []string
		cursor := ""
		pages := 0
		for {
			res, err := s.ListTools(ctx, &sdk.ListToolsParams{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(res.Tools) > 2 {
				t.Fatalf("page of %d tools, page size 2", len(res.Tools))
			}
			for _, tl := range res.Tools {
				names = append(names, tl.Name)
			}
			if res.NextCursor == "" {
				break
			}
			cursor = res.NextCursor
		}
		if len(names) != 13 || pages != 7 {
			t.Errorf("got %d tools in %d pages: %v", len(names), pages, names)
		}
		var n int
		for cursor := ""; ; {
			res, err := s.ListResources(ctx, &sdk.ListResourcesParams{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			n += len(res.Resources)
			if cursor = res.NextCursor; cursor == "" {
				break
			}
		}
		if n != 5 {
			t.Errorf("resources: %d, want 5", n)
		}
		n = 0
		for cursor := ""; ; {
			res, err := s.ListResourceTemplates(ctx, &sdk.ListResourceTemplatesParams{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			n += len(res.ResourceTemplates)
			if cursor = res.NextCursor; cursor == "" {
				break
			}
		}
		if n != 5 {
			t.Errorf("templates: %d, want 5", n)
		}
		n = 0
		for cursor := ""; ; {
			res, err := s.ListPrompts(ctx, &sdk.ListPromptsParams{Cursor: cursor})
			if err != nil {
				t.Fatal(err)
			}
			n += len(res.Prompts)
			if cursor = res.NextCursor; cursor == "" {
				break
			}
		}
		if n != 5 {
			t.Errorf("prompts: %d, want 5", n)
		}
	})

	t.Run("read, prompt, complete", func(t *testing.T) {
		rr, err := s.ReadResource(ctx, &sdk.ReadResourceParams{URI: "test://r/3"})
		if err != nil || len(rr.Contents) != 1 || rr.Contents[0].Text != "content of test://r/3" {
			t.Fatalf("read: %+v, %v", rr, err)
		}
		gp, err := s.GetPrompt(ctx, &sdk.GetPromptParams{Name: "p1", Arguments: map[string]string{"who": "ann"}})
		if err != nil || gp.Messages[0].Content.(*sdk.TextContent).Text != "hello ann" {
			t.Fatalf("prompt: %+v, %v", gp, err)
		}
		cr, err := s.Complete(ctx, &sdk.CompleteParams{Ref: &sdk.CompleteReference{Type: "ref/prompt", Name: "p1"}, Argument: sdk.CompleteParamsArgument{Name: "who", Value: "an"}})
		if err != nil || !cmp.Equal(cr.Completion.Values, []string{"an-1", "an-2"}) {
			t.Fatalf("complete: %+v, %v", cr, err)
		}
	})

	t.Run("upstream JSON-RPC error passes through", func(t *testing.T) {
		_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "fail"})
		werr := rpcErr(t, err, -32099, "upstream crm: ", "custom failure")
		if string(werr.Data) != `{"why":"test"}` {
			t.Errorf("data = %s", werr.Data)
		}
		_, err = s.CallTool(ctx, &sdk.CallToolParams{Name: "nope"})
		rpcErr(t, err, -32602, "upstream crm: ", "nope")
		if h := a.Health(); !h.Healthy() || h.LastSuccess.IsZero() {
			t.Errorf("JSON-RPC errors must count as answers: %+v", h)
		}
	})
}

func TestNotificationsRelayed(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, &fakeSource{}, nil)
	ctx := userCtx(context.Background(), "alice")
	rec := newRecorder()
	s := open(t, a, ctx, rec)

	if err := s.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: "debug"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "noisy", Arguments: map[string]any{"n": 3}, Meta: sdk.Meta{"progressToken": 7}})
	if err != nil || firstText(t, res) != "done" {
		t.Fatalf("noisy: %v %v", res, err)
	}
	if p, l := rec.progress.Load(), rec.logs.Load(); p != 3 || l != 3 {
		t.Fatalf("relayed %d progress, %d logs; want 3, 3 (on return)", p, l)
	}
	rec.mu.Lock()
	pp := rec.params[MethodProgress][2].(*sdk.ProgressNotificationParams)
	lp := rec.params[MethodLoggingMessage][0].(*sdk.LoggingMessageParams)
	users := rec.users["alice"]
	rec.mu.Unlock()
	if pp.Progress != 3 || pp.Total != 3 || fmt.Sprint(pp.ProgressToken) != "7" {
		t.Errorf("progress params %+v", pp)
	}
	if lp.Level != "info" || lp.Logger != "noisy" {
		t.Errorf("log params %+v", lp)
	}
	if users != 6 {
		t.Errorf("Notify ctx carried alice %d times, want 6", users)
	}

	// list_changed (standalone stream).
	u.srv.AddTool(&sdk.Tool{Name: "late", InputSchema: map[string]any{"type": "object"}}, func(context.Context, *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
		return &sdk.CallToolResult{}, nil
	})
	rec.waitFor(t, MethodToolListChanged)
	u.srv.AddPrompt(&sdk.Prompt{Name: "late"}, func(context.Context, *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
		return &sdk.GetPromptResult{}, nil
	})
	rec.waitFor(t, MethodPromptListChanged)
	u.srv.AddResource(&sdk.Resource{Name: "late", URI: "test://late"}, func(context.Context, *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
		return &sdk.ReadResourceResult{}, nil
	})
	rec.waitFor(t, MethodResourceListChanged)

	// subscribe → resources/updated; unsubscribe → no more.
	if err := s.Subscribe(ctx, &sdk.SubscribeParams{URI: "test://r/1"}); err != nil {
		t.Fatal(err)
	}
	if err := u.srv.ResourceUpdated(context.Background(), &sdk.ResourceUpdatedNotificationParams{URI: "test://r/1"}); err != nil {
		t.Fatal(err)
	}
	rec.waitFor(t, MethodResourceUpdated)
	rec.mu.Lock()
	up := rec.params[MethodResourceUpdated][0].(*sdk.ResourceUpdatedNotificationParams)
	rec.mu.Unlock()
	if up.URI != "test://r/1" {
		t.Errorf("updated %q", up.URI)
	}
	if err := s.Unsubscribe(ctx, &sdk.UnsubscribeParams{URI: "test://r/1"}); err != nil {
		t.Fatal(err)
	}
}

// The go-sdk race: a call's result may be delivered before notifications
// that preceded it. Every call must return only after all of them were
// relayed: checked right after each of 50 calls, not eventually.
func TestNoNotificationLost(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, nil, nil)
	ctx := context.Background()
	rec := newRecorder()
	s := open(t, a, ctx, rec)
	if err := s.SetLoggingLevel(ctx, &sdk.SetLoggingLevelParams{Level: "info"}); err != nil {
		t.Fatal(err)
	}
	const calls, n = 50, 10
	for i := range calls {
		_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "noisy", Arguments: map[string]any{"n": n}, Meta: sdk.Meta{"progressToken": i}})
		if err != nil {
			t.Fatal(err)
		}
		if p, l := rec.progress.Load(), rec.logs.Load(); p != int64((i+1)*n) || l != int64((i+1)*n) {
			t.Fatalf("after call %d: relayed %d progress and %d logs, want %d each", i+1, p, l, (i+1)*n)
		}
	}
}

func TestSamplingAndElicitation(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, &fakeSource{}, nil)
	ctx := userCtx(context.Background(), "alice")

	rec := newRecorder()
	var sampledAs string
	rec.sample = func(ctx context.Context, p *sdk.CreateMessageParams) (*sdk.CreateMessageResult, error) {
		if id := identityOf(ctx); id != "" {
			sampledAs = id
		}
		return &sdk.CreateMessageResult{Model: "m", Role: "assistant", Content: &sdk.TextContent{Text: "42"}}, nil
	}
	rec.elicit = func(_ context.Context, p *sdk.ElicitParams) (*sdk.ElicitResult, error) {
		return &sdk.ElicitResult{Action: "accept", Content: map[string]any{"colors": []any{"r"}}}, nil
	}
	s := open(t, a, ctx, rec)
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "sample"})
	if err != nil || firstText(t, res) != "model said: 42" {
		t.Fatalf("sample: %+v %v", res, err)
	}
	if sampledAs != "alice" {
		t.Errorf("CreateMessage ctx user = %q", sampledAs)
	}
	res, err = s.CallTool(ctx, &sdk.CallToolParams{Name: "ask"})
	if err != nil || firstText(t, res) != `accept {"colors":["r"]}` {
		t.Fatalf("elicit (SEP-1330 titled multi-select): %+v %v", res, err)
	}

	// The downstream handler refuses: the upstream gets a JSON-RPC error.
	rec2 := newRecorder()
	s2 := open(t, a, ctx, rec2)
	res, err = s2.CallTool(ctx, &sdk.CallToolParams{Name: "sample"})
	if err != nil || !res.IsError || !strings.Contains(firstText(t, res), "client does not support sampling") {
		t.Fatalf("refused sampling: %q %v", firstText(t, res), err)
	}
	res, err = s2.CallTool(ctx, &sdk.CallToolParams{Name: "ask"})
	if err != nil || !res.IsError || !strings.Contains(firstText(t, res), "client does not support elicitation") {
		t.Fatalf("refused elicitation: %+v %v", res, err)
	}

	// No EventHandler: capabilities are not offered at all.
	s3 := open(t, a, ctx, nil)
	res, err = s3.CallTool(ctx, &sdk.CallToolParams{Name: "sample"})
	if err != nil || !res.IsError || !strings.Contains(firstText(t, res), "sampling") {
		t.Fatalf("sampling without events: %+v %v", res, err)
	}
}

func identityOf(ctx context.Context) string {
	if id := identityFrom(ctx); id != nil {
		return id.Subject
	}
	return ""
}

// Cancelling the caller's context cancels the upstream handler
// (notifications/cancelled).
func TestCancellation(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	a, _ := testAdapter(t, u.URL, nil, nil)
	s := open(t, a, context.Background(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "block"})
		errc <- err
	}()
	<-u.started
	cancel()
	err := <-errc
	if err == nil || !strings.Contains(err.Error(), "context canceled") || !strings.Contains(err.Error(), "upstream crm") {
		t.Fatalf("cancelled call: %v", err)
	}
	select {
	case cause := <-u.cancelled:
		t.Logf("upstream handler cancelled: %s", cause)
	case <-time.After(5 * time.Second):
		t.Fatal("the upstream tool was not cancelled")
	}
	if h := a.Health(); !h.Healthy() {
		t.Errorf("a caller's cancellation must not count against the upstream: %+v", h)
	}
}

// Trace context goes into the HTTP headers and params._meta.
func TestTraceContext(t *testing.T) {
	t.Parallel()
	u := newUpstream(t, upstreamOptions{})
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	a, err := New(upstreams.Config{Name: "crm", URL: u.URL}, Deps{TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	ctx, parent := tp.Tracer("test").Start(context.Background(), "downstream")
	s := open(t, a, ctx, nil)
	res, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: map[string]any{}})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	var meta map[string]any
	_ = json.Unmarshal([]byte(res.Content[1].(*sdk.TextContent).Text), &meta)
	tp1, _ := meta["traceparent"].(string)
	if !strings.Contains(tp1, parent.SpanContext().TraceID().String()) {
		t.Fatalf("_meta.traceparent = %q, want trace %s", tp1, parent.SpanContext().TraceID())
	}
	u.mu.Lock()
	headers := append([]string(nil), u.traceparent...)
	u.mu.Unlock()
	if !contains(headers, tp1) {
		t.Errorf("HTTP traceparent headers %v do not include %q", headers, tp1)
	}
	var names []string
	for _, sp := range exp.GetSpans() {
		names = append(names, sp.Name)
	}
	if !contains(names, "tools/call echo") {
		t.Errorf("spans %v", names)
	}
	// Without a tracer or propagator: nothing injected.
	u2 := newUpstream(t, upstreamOptions{})
	a2, _ := testAdapter(t, u2.URL, nil, nil)
	s2 := open(t, a2, ctx, nil)
	res, err = s2.CallTool(ctx, &sdk.CallToolParams{Name: "echo"})
	if err != nil || strings.Contains(res.Content[1].(*sdk.TextContent).Text, "traceparent") {
		t.Fatalf("traceparent injected without a propagator: %v %v", res, err)
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// The upstream protocol version is pinned to the downstream one.
func TestProtocolVersionPinned(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		v, negotiated string
		stateless     bool
	}{
		{"2025-03-26", "2025-03-26", false},
		{"2025-06-18", "2025-06-18", false},
		{"2025-11-25", "2025-11-25", false},
		// A stateful go-sdk upstream does not speak 2026-07-28: go-sdk's
		// client tries server/discover, then falls back to initialize.
		{"2026-07-28", "2025-11-25", false},
		{"2026-07-28", "2026-07-28", true},
	} {
		v := tc.v
		t.Run(fmt.Sprintf("%s stateless=%v", v, tc.stateless), func(t *testing.T) {
			t.Parallel()
			u := newUpstream(t, upstreamOptions{stateless: tc.stateless})
			var mu sync.Mutex
			seen := map[string]bool{}
			inner := u.Config.Handler
			u.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if pv := r.Header.Get("Mcp-Protocol-Version"); pv != "" {
					mu.Lock()
					seen[pv] = true
					mu.Unlock()
				}
				inner.ServeHTTP(w, r)
			})
			a, _ := testAdapter(t, u.URL, nil, nil)
			rec := newRecorder()
			s, err := a.Open(context.Background(), upstreams.OpenOptions{ProtocolVersion: v, Events: rec})
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.CallTool(context.Background(), &sdk.CallToolParams{Name: "noisy", Arguments: map[string]any{"n": 2}, Meta: sdk.Meta{"progressToken": "p"}})
			if err != nil || firstText(t, res) != "done" {
				t.Fatalf("call: %v %v", res, err)
			}
			if p := rec.progress.Load(); p != 2 {
				t.Errorf("progress relayed %d, want 2", p)
			}
			mu.Lock()
			defer mu.Unlock()
			if !seen[v] || !seen[tc.negotiated] || len(seen) > 2 {
				t.Errorf("Mcp-Protocol-Version headers %v, want %s (negotiated %s)", seen, v, tc.negotiated)
			}
		})
	}
}
