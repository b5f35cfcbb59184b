package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// diffTools are the tools of the differential test's upstream.
func diffTools(started chan<- struct{}) func(s *mcp.Server, _ *testUpstream) {
	return func(s *mcp.Server, _ *testUpstream) {
		text := func(s string) []mcp.Content { return []mcp.Content{&mcp.TextContent{Text: s}} }
		add := func(name string, h mcp.ToolHandler) {
			s.AddTool(&mcp.Tool{Name: name, InputSchema: map[string]any{"type": "object"}}, h)
		}
		add("ok", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text("fine")}, nil
		})
		add("fails", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{IsError: true, Content: text("the tool failed")}, nil
		})
		add("errobj", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			// A successful structured result that happens to hold an "error"
			// object (a lookup of an error record, say).
			return &mcp.CallToolResult{Content: text(`{"error":{"code":"E42"}}`),
				StructuredContent: map[string]any{"error": map[string]any{"code": "E42", "message": "stored error"}}}, nil
		})
		add("rpcerr", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return nil, &jsonrpc.Error{Code: -32050, Message: "quota exhausted"}
		})
		add("big", func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text(strings.Repeat("x", 64<<10))}, nil
		})
		add("slow", func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
			return &mcp.CallToolResult{Content: text("late")}, nil
		})
		// block reports that it runs, then waits to be cancelled (the
		// upstream's timeout is longer than the cancel cases wait).
		add("block", func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			started <- struct{}{}
			select {
			case <-ctx.Done():
			case <-time.After(10 * time.Second):
			}
			return &mcp.CallToolResult{Content: text("not cancelled")}, nil
		})
		// Served by diffWire (notifications during the call); listed here.
		for _, name := range []string{"http401", "http403", "forbidden", "notes"} {
			add(name, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: text("should not run")}, nil
			})
		}
	}
}

// httpFaults answers tools/call of the http401 and http403 tools with that
// HTTP status (the upstream refusing the user's platform token or access),
// and passes everything else to next.
func httpFaults(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost {
			body, _ := io.ReadAll(r.Body)
			r.Body = io.NopCloser(bytes.NewReader(body))
			if bytes.Contains(body, []byte(`"tools/call"`)) {
				for _, code := range []int{401, 403} {
					if bytes.Contains(body, fmt.Appendf(nil, `"name":"http%d"`, code)) {
						http.Error(w, "refused", code)
						return
					}
				}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// diffWire is the wire in front of one side's upstream process: it records
// the upstream request id of each tools/call and the notifications/cancelled
// that arrive, and serves the notes tool by hand, as an upstream that logs
// whether or not logging/setLevel was sent, and reports progress when the
// call carries a progress token: it
// answers with an event stream holding notifications/progress (with a
// token), notifications/message and then the result.
type diffWire struct {
	mu        sync.Mutex
	callIDs   map[string]string     // tool → the upstream id of its last tools/call
	cancelled map[string]diffCancel // upstream request id → its notifications/cancelled
	notFound  int                   // 404 answers to requests on a session id
}

// diffCancel is a notifications/cancelled that reached the upstream.
type diffCancel struct {
	reason string
	at     time.Time
}

func (dw *diffWire) wrap(next http.Handler) http.Handler {
	next = httpFaults(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		var msg struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
			Params struct {
				Name      string          `json:"name"`
				RequestID json.RawMessage `json:"requestId"`
				Reason    string          `json:"reason"`
				Meta      struct {
					ProgressToken json.RawMessage `json:"progressToken"`
				} `json:"_meta"`
			} `json:"params"`
		}
		_ = json.Unmarshal(body, &msg)
		dw.mu.Lock()
		switch msg.Method {
		case "tools/call":
			dw.callIDs[msg.Params.Name] = string(msg.ID)
		case "notifications/cancelled":
			dw.cancelled[string(msg.Params.RequestID)] = diffCancel{msg.Params.Reason, time.Now()}
		}
		dw.mu.Unlock()
		if msg.Method != "tools/call" || msg.Params.Name != "notes" {
			sw := &diffStatusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.code == http.StatusNotFound && r.Header.Get("Mcp-Session-Id") != "" {
				dw.mu.Lock()
				dw.notFound++
				dw.mu.Unlock()
			}
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Mcp-Session-Id", r.Header.Get("Mcp-Session-Id"))
		w.WriteHeader(http.StatusOK)
		event := func(data string) {
			_, _ = io.WriteString(w, "event: message\ndata: "+data+"\n\n")
			w.(http.Flusher).Flush()
		}
		if len(msg.Params.Meta.ProgressToken) > 0 {
			event(`{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":` + string(msg.Params.Meta.ProgressToken) + `,"progress":1,"total":2,"message":"half way"}}`)
		}
		event(`{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","logger":"notes","data":"something to say"}}`)
		event(`{"jsonrpc":"2.0","id":` + string(msg.ID) + `,"result":{"content":[{"type":"text","text":"noted"}]}}`)
	})
}

// diffStatusWriter notes the status of a response.
type diffStatusWriter struct {
	http.ResponseWriter
	code int
}

func (w *diffStatusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *diffStatusWriter) Flush() { w.ResponseWriter.(http.Flusher).Flush() }

func (dw *diffWire) notFoundCount() int {
	dw.mu.Lock()
	defer dw.mu.Unlock()
	return dw.notFound
}

// cancelOf waits up to bound for the notifications/cancelled of the last
// tools/call of tool to reach the upstream, and returns it.
func (dw *diffWire) cancelOf(tool string, bound time.Duration) (c diffCancel, told bool) {
	deadline := time.Now().Add(bound)
	for {
		dw.mu.Lock()
		id, called := dw.callIDs[tool]
		c, told = dw.cancelled[id]
		dw.mu.Unlock()
		if (called && told) || time.Now().After(deadline) {
			return c, told
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// diffSide is one gateway of the differential test, with its own IdP,
// upstream process (on a fixed address that can go down, come back and be
// restarted) and client session.
type diffSide struct {
	env     *muxEnv
	grants  *connectedUsers // the users connected at upstream "grant"
	cs      *mcp.ClientSession
	fs      *flapServer
	wire    *diffWire
	started chan struct{} // the block tool runs
	restart func() http.Handler
}

// diffWaitTimeout is the timeout of upstream "wait" (the same process as
// "diff"): long enough that a cancellation that is not passed on shows as
// such rather than as a timeout.
const diffWaitTimeout = 3 * time.Second

// startDiffSide starts one side. On the go-sdk side (forceSDK) the client
// advertises sampling, which today sends every call of its session through
// go-sdk and changes nothing else the cases look at (the upstream sends no
// sampling request). level, when set, is sent with logging/setLevel first
// (on either side, which also takes the go-sdk path today).
func startDiffSide(t *testing.T, forceSDK bool, level mcp.LoggingLevel, caps *mcp.ClientCapabilities) *diffSide {
	t.Helper()
	g := newGrants()
	g.set("user-alice", true)
	env := startMuxOpts(t, func(c *Config) {
		c.Policy.Rules = slices.Insert(c.Policy.Rules, 0, policy.Rule{Name: "no-forbidden", Effect: "deny", When: `tool == "forbidden"`})
		c.Policy.RateLimits = []policy.RateLimit{{Upstream: "docs", RequestsPerSecond: 0.001, Burst: 1}}
	}, consentOptions(map[string]*connectedUsers{"grant": g}, true, nil))
	d := &diffSide{env: env, grants: g, started: make(chan struct{}, 16),
		wire: &diffWire{callIDs: map[string]string{}, cancelled: map[string]diffCancel{}}}
	d.restart = func() http.Handler {
		return d.wire.wrap(startUpstream(t, env.idp, "diff", diffTools(d.started)).srv.Config.Handler)
	}
	d.fs = newFlapServer(t)
	d.fs.setHandler(d.restart())
	cfg := *env.gw.cfg
	cfg.Upstreams = slices.Clone(cfg.Upstreams)
	for _, uc := range []upstreams.Config{
		{Name: "diff", Timeout: time.Second, MaxResultBytes: 16 << 10},
		{Name: "wait", Timeout: diffWaitTimeout},
		{Name: "grant", Timeout: time.Second}, // per-user grants (gated: consentOptions)
	} {
		uc.Kind, uc.URL = upstreams.KindMCP, d.fs.url()
		uc.Credentials = credentials.Config{Flow: credentials.FlowTokenExchange, TokenURL: env.idp.TokenURL(),
			ClientID: "mandate", ClientSecret: "mandate-secret", Audience: "https://diff.internal"}
		cfg.Upstreams = append(cfg.Upstreams, uc.WithDefaults())
	}
	if _, err := env.gw.g.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	opts := &mcp.ClientOptions{Capabilities: caps}
	if forceSDK {
		opts.CreateMessageHandler = func(context.Context, *mcp.CreateMessageRequest) (*mcp.CreateMessageResult, error) {
			return nil, fmt.Errorf("no sampling in this test")
		}
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1"}, opts)
	cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.aliceTk), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	d.cs = cs
	if level != "" {
		if err := cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: level}); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: the user's listings are cached, the upstream sessions open,
	// and docs's burst of one is spent.
	for _, tool := range []string{"diff_ok", "wait_ok", "docs_who", "grant_ok"} {
		if res, err := callJSON(t, d.cs, tool, map[string]any{}); err != nil || res.IsError {
			t.Fatalf("warm-up %s: %v %v", tool, res, err)
		}
	}
	return d
}

// How the client of a case behaves during its call.
const (
	diffClientWaits       = iota // waits for the answer
	diffClientCancels            // sends notifications/cancelled once the upstream tool runs
	diffClientDisconnects        // closes its HTTP request once the upstream tool runs
)

// diffResult is what one side gave for one case.
type diffResult struct {
	resp    map[string]any   // the JSON-RPC response (error data removed); nil if none
	framing string           // its HTTP status and media type
	notes   []map[string]any // the messages before it on the request's stream
	rec     map[string]any   // the tools/call audit record, timing and ids removed
	fast    uint64           // fast-path calls the case took
	// Cancel cases: notifications/cancelled reached the upstream within
	// half the upstream's timeout of the client's cancel (not as the
	// gateway's timeout), and its reason.
	told bool
	why  string
	// Upstream answers 404 to a request on a session id during the case.
	notFound int
}

// call posts one tools/call (params extra is spliced into params) on the
// side's session, the client behaving as how says, and returns what the
// client saw, the audit record the call left and, for the cancel cases,
// whether the upstream was told.
func (d *diffSide) call(t *testing.T, tool, extra string, how int) (r diffResult) {
	t.Helper()
	before := len(d.env.audit.Lines())
	f0, nf0 := dispatch.ForwardedCalls(), d.wire.notFoundCount()
	for len(d.started) > 0 {
		<-d.started
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body := `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"` + tool + `","arguments":{}` + extra + `}}`
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, d.env.gw.mcpURL, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	for k, v := range sessionHeaders(d.env.aliceTk, d.cs) {
		req.Header.Set(k, v)
	}
	type answer struct {
		body, framing string
		err           error
	}
	done := make(chan answer, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			done <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
		done <- answer{string(b), fmt.Sprintf("%d %s", resp.StatusCode, ct), err}
	}()
	var cancelAt time.Time
	if how != diffClientWaits {
		select {
		case <-d.started:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the upstream tool never ran", tool)
		}
		cancelAt = time.Now()
		if how == diffClientCancels {
			_, _ = d.env.gw.post(t, `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"c-1","reason":"the user gave up"}}`,
				sessionHeaders(d.env.aliceTk, d.cs))
		} else {
			cancel()
		}
	}
	var a answer
	select {
	case a = <-done:
	case <-time.After(2*diffWaitTimeout + 2*time.Second):
		cancel()
		a = answer{err: fmt.Errorf("no answer within %s", 2*diffWaitTimeout+2*time.Second)}
		<-done
	}
	if how == diffClientDisconnects {
		if a.err == nil {
			t.Errorf("%s: the disconnected request completed: %q", tool, a.body)
		}
	} else {
		if a.err != nil {
			t.Fatalf("%s: %v", tool, a.err)
		}
		r.resp, r.notes = diffMessages(t, tool, a.body)
		r.framing = a.framing
	}
	if how != diffClientWaits {
		c, told := d.wire.cancelOf(strings.SplitN(tool, "_", 2)[1], 3*time.Second)
		r.why, r.told = c.reason, told && c.at.Sub(cancelAt) < diffWaitTimeout/2
		t.Logf("%s: notifications/cancelled reached the upstream: %v, %s after the client's cancel, reason %q", tool, told, c.at.Sub(cancelAt).Round(time.Millisecond), c.reason)
	}
	r.rec = d.record(t, tool, before)
	r.fast, r.notFound = dispatch.ForwardedCalls()-f0, d.wire.notFoundCount()-nf0
	return r
}

// diffMessages returns the JSON-RPC response in body (JSON, or the last
// message of an event stream) and the messages before it on the stream.
func diffMessages(t *testing.T, tool, body string) (resp map[string]any, notes []map[string]any) {
	t.Helper()
	var msgs []string
	if strings.HasPrefix(strings.TrimSpace(body), "event:") || strings.HasPrefix(strings.TrimSpace(body), "data:") || strings.HasPrefix(strings.TrimSpace(body), "id:") {
		for _, ev := range strings.Split(strings.ReplaceAll(body, "\r\n", "\n"), "\n\n") {
			var data []string
			for _, l := range strings.Split(ev, "\n") {
				if v, ok := strings.CutPrefix(l, "data:"); ok {
					data = append(data, strings.TrimPrefix(v, " "))
				}
			}
			if len(data) > 0 {
				msgs = append(msgs, strings.Join(data, "\n"))
			}
		}
	} else if strings.TrimSpace(body) != "" {
		msgs = []string{body}
	}
	for i, m := range msgs {
		var v map[string]any
		if err := json.Unmarshal([]byte(m), &v); err != nil {
			t.Fatalf("%s: message %q: %v", tool, m, err)
		}
		if i == len(msgs)-1 && v["id"] != nil {
			resp = v
			break
		}
		notes = append(notes, v)
	}
	if e, ok := resp["error"].(map[string]any); ok {
		delete(e, "data") // compared below where it matters
		e["message"] = diffRetryAfter.ReplaceAllString(fmt.Sprint(e["message"]), "${1}N$2")
	}
	return resp, notes
}

// diffRetryAfter matches the seconds of a rate-limit refusal, which depend on
// when each side's burst was spent (a timing field).
var diffRetryAfter = regexp.MustCompile(`(retry after )[0-9]+(s)`)

// record waits for the one tools/call audit record written since before
// and returns it without timing, ids and the IdP's issuer.
func (d *diffSide) record(t *testing.T, tool string, before int) map[string]any {
	t.Helper()
	var recs []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		recs = recs[:0]
		for _, l := range d.env.audit.Lines()[before:] {
			if l["method"] == "tools/call" {
				recs = append(recs, l)
			}
		}
		if len(recs) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(recs) != 1 {
		t.Fatalf("%s: %d tools/call audit records, want 1: %v", tool, len(recs), recs)
	}
	rec := recs[0]
	if u, ok := rec["user"].(map[string]any); ok {
		delete(u, "issuer") // each side has its own IdP
	}
	for _, k := range []string{"time", "latency_ms", "request_id", "session_id", "seq", "prev_hash", "hash"} {
		delete(rec, k)
	}
	if e, ok := rec["error"].(string); ok {
		rec["error"] = diffRetryAfter.ReplaceAllString(e, "${1}N$2")
	}
	return rec
}

// health is the side's /readyz upstream health, timestamps reduced to
// whether they are set.
func (d *diffSide) health(t *testing.T) map[string]any {
	t.Helper()
	resp, err := http.Get(d.env.gw.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Upstreams map[string]map[string]any `json:"upstreams"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for name, h := range body.Upstreams {
		for _, k := range []string{"last_success", "last_failure"} {
			_, set := h[k]
			h[k] = set
		}
		out[name] = h
	}
	return out
}

// TestFastPathMatchesSDKPath is the differential test of the tools/call
// fast path: every case runs once on a session the fast path serves and
// once on a session the go-sdk path serves (see startDiffSide), each on
// its own gateway and upstream, and must give the same client-visible
// answer (the response and the notifications before it on the request's
// stream), the same audit record (timing and ids aside), the same news to
// the upstream of a cancelled call and the same /readyz upstream health
// afterwards. Cases that reach the upstream must really have taken the
// fast path on the first side (fastCalls), and never on the second.
//
// The cases share one pair of sides, in order; a case marked fresh starts
// a new pair (new gateways and upstreams), so that health an earlier case
// left behind does not carry into it.
func TestFastPathMatchesSDKPath(t *testing.T) {
	const progress = `,"_meta":{"progressToken":"p-1"}`
	var fastSide, sdkSide *diffSide
	for _, tc := range []struct {
		name, tool string
		fast       bool   // the forwarding path takes it (refusals too: one pipeline answers both)
		failure    string // the upstream's fault: in /readyz's last_error
		check      func(t *testing.T, r diffResult)
		// Optional: the params spliced into the call, what the client does,
		// logging/setLevel on both sides (needs fresh), start new sides,
		// and what happens to each side's upstream before the call.
		extra  string
		client int
		level  mcp.LoggingLevel
		caps   *mcp.ClientCapabilities // the clients' capabilities (needs fresh)
		fresh  bool
		before func(d *diffSide)
	}{
		{name: "success", tool: "diff_ok", fast: true, check: outcome("ok", ""), fresh: true},
		{name: "isError result", tool: "diff_fails", fast: true, check: outcome("error", "tool_error")},
		{name: "result holding an error object", tool: "diff_errobj", fast: true, check: outcome("ok", "")},
		{name: "upstream JSON-RPC error", tool: "diff_rpcerr", fast: true, check: rpcError(-32050, "upstream diff: quota exhausted")},
		{name: "upstream 401", tool: "diff_http401", fast: true, check: rpcError(upstreams.CodeUpstreamUnauthorized, "HTTP 401")},
		{name: "upstream 403", tool: "diff_http403", fast: true, check: rpcError(upstreams.CodeUpstreamUnauthorized, "HTTP 403")},
		{name: "oversized answer", tool: "diff_big", fast: true, failure: "max_result_bytes", check: rpcError(upstreams.CodeResultTooLarge, "max_result_bytes")},
		{name: "timeout", tool: "diff_slow", fast: true, failure: "timed out after 1s", check: rpcError(upstreams.CodeUpstreamTimeout, "upstream diff: timed out after 1s")},
		{name: "policy deny", fast: true, tool: "diff_forbidden", check: rpcError(jsonrpc.CodeInvalidParams, `unknown tool "diff_forbidden"`)},
		{name: "unknown tool", fast: true, tool: "diff_nosuch", check: rpcError(jsonrpc.CodeInvalidParams, `unknown tool "diff_nosuch"`)},
		{name: "rate limited", fast: true, tool: "docs_who", check: rpcError(upstreams.CodeRateLimited, "rate limit")},
		// The user must connect their account at the upstream first; a
		// client without URL elicitation is told what to open.
		{name: "consent required, client without URL elicitation", fast: true, tool: "grant_ok",
			check:  outcome("error", "consent_required", diffToolText(diffLink("grant"))),
			before: func(d *diffSide) { d.grants.set("user-alice", false) }},
		// A retry of an input_required answer carries a requestState that
		// Mandate checks (this one is not Mandate's): never forwarded.
		{name: "requestState that is not Mandate's", tool: "diff_ok", extra: `,"requestState":"bm90IG1hbmRhdGUncw"`,
			check: rpcError(jsonrpc.CodeInvalidParams, "requestState is invalid")},

		// Notifications during the call: the upstream logs (without being
		// asked to, and at level error) and, when the call has a progress
		// token, reports progress before its result.
		{name: "notifications during a call, no setLevel", tool: "diff_notes", fast: true, check: outcome("ok", "", diffNotes())},
		{name: "notifications during a call, progress token", tool: "diff_notes", extra: progress,
			check: outcome("ok", "", diffNotes("notifications/progress"))},
		{name: "notifications during a call, setLevel info", tool: "diff_notes", level: "info", fresh: true,
			check: outcome("ok", "", diffNotes("notifications/message"))},
		{name: "notifications during a call, setLevel info and progress token", tool: "diff_notes", extra: progress,
			check: outcome("ok", "", diffNotes("notifications/progress", "notifications/message"))},

		// Client cancel: the upstream is told and the record says cancelled.
		{name: "client cancel (notifications/cancelled)", tool: "wait_block", fast: true, client: diffClientCancels, fresh: true, check: diffCancelled},
		{name: "client cancel (HTTP request closed)", tool: "wait_block", fast: true, client: diffClientDisconnects, fresh: true, check: diffCancelled},

		// Upstream restarted: the process goes away between calls.
		{name: "upstream restarted (old session id: 404)", tool: "diff_ok", fast: true, fresh: true, check: outcome("ok", "", diffSessionLost),
			before: func(d *diffSide) { d.fs.setHandler(d.restart()) }},
		{name: "upstream down", tool: "diff_ok", fast: true, failure: "refused", check: rpcError(upstreams.CodeUpstreamUnavailable, "upstream diff"),
			before: func(d *diffSide) { d.fs.down() }},
		{name: "upstream back on the same address, restarted", tool: "diff_ok", fast: true, check: outcome("ok", ""),
			before: func(d *diffSide) { d.fs.setHandler(d.restart()); d.fs.up() }},

		// A client that declared URL elicitation gets -32042 (its calls
		// never take the forwarding path: it offers elicitation). Last:
		// later cases would run on these clients.
		{name: "consent required, client with URL elicitation", tool: "grant_ok", caps: urlElicitation, fresh: true,
			check:  rpcError(mcp.CodeURLElicitationRequired, "Connect your grant account first"),
			before: func(d *diffSide) { d.grants.set("user-alice", false) }},
	} {
		if tc.fresh {
			fastSide, sdkSide = startDiffSide(t, false, tc.level, tc.caps), startDiffSide(t, true, tc.level, tc.caps)
		}
		t.Run(tc.name, func(t *testing.T) {
			if tc.before != nil {
				tc.before(fastSide)
				tc.before(sdkSide)
			}
			f := fastSide.call(t, tc.tool, tc.extra, tc.client)
			s := sdkSide.call(t, tc.tool, tc.extra, tc.client)
			if want := map[bool]uint64{true: 1, false: 0}[tc.fast]; f.fast != want || s.fast != 0 {
				t.Errorf("fast-path calls: %d on the fast side (want %d), %d on the go-sdk side (want 0)", f.fast, want, s.fast)
			}
			if diff := cmp.Diff(s.resp, f.resp); diff != "" {
				t.Errorf("client-visible answer differs (-go-sdk path +fast path):\n%s", diff)
			}
			if diff := cmp.Diff(s.notes, f.notes); diff != "" {
				t.Errorf("notifications before the answer differ (-go-sdk path +fast path):\n%s", diff)
			}
			if diff := cmp.Diff(s.rec, f.rec); diff != "" {
				t.Errorf("audit record differs (-go-sdk path +fast path):\n%s", diff)
			}
			if tc.client != diffClientWaits && f.told != s.told {
				t.Errorf("notifications/cancelled reached the upstream in time: %v on the go-sdk path (reason %q), %v on the fast path (reason %q)", s.told, s.why, f.told, f.why)
			}
			// The same answer on both paths, and the right one.
			t.Run("go-sdk path", func(t *testing.T) { tc.check(t, s) })
			t.Run("fast path", func(t *testing.T) { tc.check(t, f) })
			// Both are valid Streamable HTTP; a subtest of their own, so that
			// a case that differs only here shows as such.
			t.Run("framing", func(t *testing.T) {
				if s.framing != f.framing {
					t.Errorf("HTTP status and media type of the answer: %q on the go-sdk path, %q on the fast path", s.framing, f.framing)
				}
			})
			fHealth := fastSide.health(t)
			if diff := cmp.Diff(sdkSide.health(t), fHealth); diff != "" {
				t.Errorf("/readyz upstream health differs (-go-sdk path +fast path):\n%s", diff)
			}
			// Failures that are the upstream's fault show on /readyz.
			if h, _ := fHealth["diff"].(map[string]any); tc.failure != "" && !strings.Contains(fmt.Sprint(h["last_error"]), tc.failure) {
				t.Errorf("/readyz health of diff after the call: %v, want last_error with %q", h, tc.failure)
			}
		})
	}
}

// outcome checks a result's audit outcome and error class, and then more.
func outcome(out, class string, more ...func(*testing.T, diffResult)) func(*testing.T, diffResult) {
	return func(t *testing.T, r diffResult) {
		t.Helper()
		if r.resp["result"] == nil {
			t.Fatalf("no result: %v", r.resp)
		}
		if r.rec["outcome"] != out || (r.rec["error_class"] != nil && r.rec["error_class"] != class) || (class != "" && r.rec["error_class"] != class) {
			t.Fatalf("audit outcome %v / %v, want %s / %q", r.rec["outcome"], r.rec["error_class"], out, class)
		}
		for _, f := range more {
			f(t, r)
		}
	}
}

// diffLink is alice's connect link at upstream (testLink).
func diffLink(upstream string) string {
	u, _ := testLink(upstream, "user-alice")
	return u
}

// diffToolText checks that the tool result's text contains want.
func diffToolText(want string) func(*testing.T, diffResult) {
	return func(t *testing.T, r diffResult) {
		t.Helper()
		res, _ := r.resp["result"].(map[string]any)
		if res["isError"] != true || !strings.Contains(fmt.Sprint(res["content"]), want) {
			t.Errorf("result %v, want a tool error containing %q", res, want)
		}
	}
}

// diffNotes checks the methods of the notifications before the answer.
func diffNotes(methods ...string) func(*testing.T, diffResult) {
	return func(t *testing.T, r diffResult) {
		t.Helper()
		var got []string
		for _, n := range r.notes {
			got = append(got, fmt.Sprint(n["method"]))
		}
		if !slices.Equal(got, methods) {
			t.Errorf("notifications before the answer: %v, want %v (%v)", got, methods, r.notes)
		}
	}
}

// rpcError checks the JSON-RPC error's code and part of its message.
func rpcError(code int64, msg string) func(*testing.T, diffResult) {
	return func(t *testing.T, r diffResult) {
		t.Helper()
		e, _ := r.resp["error"].(map[string]any)
		if e == nil || e["code"] != float64(code) || !strings.Contains(e["message"].(string), msg) {
			t.Fatalf("answer %v, want error %d containing %q", r.resp, code, msg)
		}
	}
}

// diffSessionLost checks that the upstream refused the old session id (404)
// during the call.
func diffSessionLost(t *testing.T, r diffResult) {
	t.Helper()
	if r.notFound == 0 {
		t.Errorf("the upstream answered no request with 404: the old session was not tried")
	}
}

// diffCancelled checks that the upstream was told and the call was audited as
// cancelled.
func diffCancelled(t *testing.T, r diffResult) {
	t.Helper()
	if !r.told {
		t.Errorf("notifications/cancelled did not reach the upstream within %s of the client's cancel", diffWaitTimeout/2)
	}
	if r.rec["outcome"] != "error" || r.rec["error_class"] != "cancelled" {
		t.Errorf("audit outcome %v / %v, want error / cancelled", r.rec["outcome"], r.rec["error_class"])
	}
}
