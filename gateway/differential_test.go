package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// diffTools are the tools of the differential test's upstream.
func diffTools(s *mcp.Server, _ *testUpstream) {
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
	for _, name := range []string{"http401", "http403", "forbidden"} {
		add(name, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: text("should not run")}, nil
		})
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

// diffSide is one gateway of the differential test, with its own IdP,
// upstream and client session.
type diffSide struct {
	env *muxEnv
	cs  *mcp.ClientSession
}

func startDiffSide(t *testing.T, forceSDK bool) *diffSide {
	t.Helper()
	env := startMux(t, func(c *Config) {
		c.Policy.Rules = slices.Insert(c.Policy.Rules, 0, policy.Rule{Name: "no-forbidden", Effect: "deny", When: `tool == "forbidden"`})
		c.Policy.RateLimits = []policy.RateLimit{{Upstream: "docs", RequestsPerSecond: 0.001, Burst: 1}}
	})
	up := startUpstream(t, env.idp, "diff", diffTools)
	srv := httptest.NewServer(httpFaults(up.srv.Config.Handler))
	t.Cleanup(srv.Close)
	uc := upstreams.Config{Name: "diff", Kind: upstreams.KindMCP, URL: srv.URL + "/mcp", Timeout: time.Second,
		MaxResultBytes: 16 << 10,
		Credentials: credentials.Config{Flow: credentials.FlowTokenExchange, TokenURL: env.idp.TokenURL(),
			ClientID: "mandate", ClientSecret: "mandate-secret", Audience: "https://diff.internal"}}
	cfg := *env.gw.cfg
	cfg.Upstreams = append(slices.Clone(cfg.Upstreams), uc.WithDefaults())
	if _, err := env.gw.g.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	d := &diffSide{env: env, cs: connect(t, env.gw.mcpURL, env.aliceTk)}
	if forceSDK {
		// A session with logging set is served by the go-sdk path.
		if err := d.cs.SetLoggingLevel(context.Background(), &mcp.SetLoggingLevelParams{Level: "error"}); err != nil {
			t.Fatal(err)
		}
	}
	// Warm up: the user's listings are cached, the upstream sessions open,
	// and docs's burst of one is spent.
	for _, tool := range []string{"diff_ok", "docs_who"} {
		if res, err := callJSON(t, d.cs, tool, map[string]any{}); err != nil || res.IsError {
			t.Fatalf("warm-up %s: %v %v", tool, res, err)
		}
	}
	return d
}

// call posts one tools/call on the side's session and returns the
// JSON-RPC response (from JSON or an event stream), the audit record it
// left (timing and ids removed) and the number of fast-path calls it took.
func (d *diffSide) call(t *testing.T, tool string) (resp, rec map[string]any, fast uint64) {
	t.Helper()
	before := len(d.env.audit.Lines())
	f0 := fastCalls.Load()
	_, body := d.env.gw.post(t, `{"jsonrpc":"2.0","id":"c-1","method":"tools/call","params":{"name":"`+tool+`","arguments":{}}}`,
		sessionHeaders(d.env.aliceTk, d.cs))
	fast = fastCalls.Load() - f0
	msg := body
	if i := strings.LastIndex(body, "data: "); i >= 0 && strings.HasPrefix(strings.TrimSpace(body), "event:") {
		msg = strings.TrimSpace(body[i+len("data: "):])
	}
	if err := json.Unmarshal([]byte(msg), &resp); err != nil {
		t.Fatalf("%s: response %q: %v", tool, body, err)
	}
	if e, ok := resp["error"].(map[string]any); ok {
		delete(e, "data") // compared below where it matters
	}
	lines := d.env.audit.Lines()
	var recs []map[string]any
	for _, l := range lines[before:] {
		if l["method"] == "tools/call" {
			recs = append(recs, l)
		}
	}
	if len(recs) != 1 {
		t.Fatalf("%s: %d tools/call audit records, want 1: %v", tool, len(recs), recs)
	}
	rec = recs[0]
	if u, ok := rec["user"].(map[string]any); ok {
		delete(u, "issuer") // each side has its own IdP
	}
	for _, k := range []string{"time", "latency_ms", "request_id", "session_id", "seq", "prev_hash", "hash"} {
		delete(rec, k)
	}
	return resp, rec, fast
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
// once on a session the go-sdk path serves (logging set), each on its own
// gateway and upstream, and must give the same client-visible answer, the
// same audit record (timing and ids aside) and the same /readyz upstream
// health afterwards. Cases that reach the upstream must really have taken
// the fast path on the first side (fastCalls), and never on the second.
func TestFastPathMatchesSDKPath(t *testing.T) {
	fastSide := startDiffSide(t, false)
	sdkSide := startDiffSide(t, true)
	for _, tc := range []struct {
		name, tool string
		fast       bool   // the forwarding path takes it (refusals too: one pipeline answers both)
		failure    string // the upstream's fault: in /readyz's last_error
		check      func(t *testing.T, resp, rec map[string]any)
	}{
		{"success", "diff_ok", true, "", outcome("ok", "")},
		{"isError result", "diff_fails", true, "", outcome("error", "tool_error")},
		{"result holding an error object", "diff_errobj", true, "", outcome("ok", "")},
		{"upstream JSON-RPC error", "diff_rpcerr", true, "", rpcError(-32050, "upstream diff: quota exhausted")},
		{"upstream 401", "diff_http401", true, "", rpcError(upstreams.CodeUpstreamUnauthorized, "HTTP 401")},
		{"upstream 403", "diff_http403", true, "", rpcError(upstreams.CodeUpstreamUnauthorized, "HTTP 403")},
		{"oversized answer", "diff_big", true, "max_result_bytes", rpcError(upstreams.CodeResultTooLarge, "max_result_bytes")},
		{"timeout", "diff_slow", true, "timed out after 1s", rpcError(upstreams.CodeUpstreamTimeout, "upstream diff: timed out after 1s")},
		{"policy deny", "diff_forbidden", true, "", rpcError(jsonrpc.CodeInvalidParams, `unknown tool "diff_forbidden"`)},
		{"unknown tool", "diff_nosuch", true, "", rpcError(jsonrpc.CodeInvalidParams, `unknown tool "diff_nosuch"`)},
		{"rate limited", "docs_who", true, "", rpcError(upstreams.CodeRateLimited, "rate limit")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fResp, fRec, fFast := fastSide.call(t, tc.tool)
			sResp, sRec, sFast := sdkSide.call(t, tc.tool)
			if want := map[bool]uint64{true: 1, false: 0}[tc.fast]; fFast != want || sFast != 0 {
				t.Fatalf("fast-path calls: %d on the fast side (want %d), %d on the go-sdk side (want 0)", fFast, want, sFast)
			}
			tc.check(t, sResp, sRec)
			if diff := cmp.Diff(sResp, fResp); diff != "" {
				t.Errorf("client-visible answer differs (-go-sdk path +fast path):\n%s", diff)
			}
			if diff := cmp.Diff(sRec, fRec); diff != "" {
				t.Errorf("audit record differs (-go-sdk path +fast path):\n%s", diff)
			}
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

// outcome checks the audit record's outcome and error class of a result.
func outcome(out, class string) func(*testing.T, map[string]any, map[string]any) {
	return func(t *testing.T, resp, rec map[string]any) {
		t.Helper()
		if resp["result"] == nil {
			t.Fatalf("no result: %v", resp)
		}
		if rec["outcome"] != out || (rec["error_class"] != nil && rec["error_class"] != class) || (class != "" && rec["error_class"] != class) {
			t.Fatalf("audit outcome %v / %v, want %s / %q", rec["outcome"], rec["error_class"], out, class)
		}
	}
}

// rpcError checks the JSON-RPC error's code and part of its message.
func rpcError(code int64, msg string) func(*testing.T, map[string]any, map[string]any) {
	return func(t *testing.T, resp, _ map[string]any) {
		t.Helper()
		e, _ := resp["error"].(map[string]any)
		if e == nil || e["code"] != float64(code) || !strings.Contains(e["message"].(string), msg) {
			t.Fatalf("answer %v, want error %d containing %q", resp, code, msg)
		}
	}
}
