package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/mandate-gw/mandate/policy"
)

// TestHostileJSON: deeply nested or huge JSON-RPC bodies get an error and
// the gateway keeps serving.
// Tracing on and off: with tracing, every message's params are read for
// trace context (a tools/list without params once crashed the process).
func TestHostileJSON(t *testing.T) {
	for _, traced := range []bool{false, true} {
		t.Run(map[bool]string{false: "untraced", true: "traced"}[traced], func(t *testing.T) {
			opts := Options{}
			if traced {
				opts.TracerProvider = sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			}
			hostileJSON(t, startMuxOpts(t, nil, opts))
		})
	}
}

func hostileJSON(t *testing.T, env *muxEnv) {
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	hdr := bearer(env.aliceTk)
	hdr["Mcp-Session-Id"] = alice.ID()
	hdr["Mcp-Protocol-Version"] = "2025-06-18"
	depth := 1_000_000
	nested := strings.Repeat("[", depth) + strings.Repeat("]", depth)
	cases := map[string]string{
		"deeply nested arguments":   `{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"crm_echo","arguments":{"a":` + nested + `}}}`,
		"deeply nested params":      `{"jsonrpc":"2.0","id":6,"method":"tools/call","params":` + strings.Repeat(`{"a":`, 200_000) + `1` + strings.Repeat("}", 200_000) + `}`,
		"not json":                  `{"jsonrpc":"2.0","id":7,"method":`,
		"wrong types":               `{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":42}}`,
		"tools/list without params": `{"jsonrpc":"2.0","id":9,"method":"tools/list"}`,
		"tools/call without params": `{"jsonrpc":"2.0","id":10,"method":"tools/call"}`,
		"prompts/list null params":  `{"jsonrpc":"2.0","id":11,"method":"prompts/list","params":null}`,
		"resources/list no params":  `{"jsonrpc":"2.0","id":12,"method":"resources/list"}`,
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			resp, out := env.gw.post(t, body, hdr)
			if resp.StatusCode >= 500 {
				t.Errorf("status %d: %.200s", resp.StatusCode, out)
			}
			if res, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil || res.IsError {
				t.Fatalf("gateway stopped serving after %s: %v", name, err)
			}
		})
	}
	_ = http.StatusOK
}

// TestFastPathOddIDs: ids the fast path does not echo verbatim (objects,
// arrays, null, huge) are answered by go-sdk, never crash or mix answers.
func TestFastPathOddIDs(t *testing.T) {
	env := startMux(t, nil)
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil { // warm: the session exists
		t.Fatal(err)
	}
	hdr := bearer(env.aliceTk)
	hdr["Mcp-Session-Id"] = alice.ID()
	hdr["Mcp-Protocol-Version"] = "2025-06-18"
	for _, id := range []string{`{"a":1}`, `[1]`, `null`, `"` + strings.Repeat("x", 300) + `"`, `"mx-1"`, `42`, `"q\"uote"`} {
		resp, out := env.gw.post(t, `{"jsonrpc":"2.0","id":`+id+`,"method":"tools/call","params":{"name":"crm_who","arguments":{}}}`, hdr)
		if resp.StatusCode >= 500 {
			t.Errorf("id %s: status %d %s", id, resp.StatusCode, out)
		}
		if (id == `42` || id == `"mx-1"` || id == `"q\"uote"`) && !strings.Contains(out, `"id":`+id) {
			t.Errorf("id %s not echoed: %s", id, out)
		}
	}
	if res, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("after odd ids: %v", err)
	}
}

// TestNonObjectArguments: arguments that are not a JSON object never reach
// an upstream (fast or go-sdk path): the caller gets invalid params.
func TestNonObjectArguments(t *testing.T) {
	env := startMux(t, nil)
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range []string{`[1,2]`, `"s"`, `42`, `true`} {
		_, err := callJSON(t, alice, "crm_echo", json.RawMessage(args))
		if err == nil || !strings.Contains(err.Error(), "object") {
			t.Errorf("arguments %s: %v, want invalid params", args, err)
		}
	}
}

// TestAmbiguousArgumentsRefused: arguments whose keys differ only in case
// (or repeat) are refused with invalid params before policy and before any
// upstream, on the go-sdk path (a policy that reads arguments) and on the
// fast path (one that does not): a deny rule on arguments.table cannot be
// passed with {"table":"incident","TABLE":"sys_user"}, which Go servers
// and Mandate's native adapters read as sys_user.
func TestAmbiguousArgumentsRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		rules []policy.Rule
	}{
		{"policy reads arguments", []policy.Rule{
			{Name: "no-sys-user", Effect: "deny", When: `has(arguments.table) && arguments.table == "sys_user"`},
			{Name: "employees", Effect: "allow", When: `user.subject.startsWith("user-")`},
		}},
		{"fast path", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := startMux(t, func(c *Config) {
				if tc.rules != nil {
					c.Policy.Rules = tc.rules
				}
			})
			alice := connect(t, env.gw.mcpURL, env.aliceTk)
			if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
				t.Fatal(err)
			}
			if tc.rules != nil { // the rule works on plain arguments
				res, err := callJSON(t, alice, "crm_echo", map[string]any{"table": "sys_user"})
				if err == nil && !res.IsError {
					t.Fatalf("deny rule did not apply: %v", toolText(res))
				}
			}
			for _, args := range []string{
				`{"table":"incident","TABLE":"sys_user"}`,
				`{"table":"incident","table":"sys_user"}`,
				`{"q":{"Table":"incident","table":"sys_user"}}`,
			} {
				env.crm.mu.Lock()
				before := len(env.crm.tokens)
				env.crm.mu.Unlock()
				res, err := callJSON(t, alice, "crm_echo", json.RawMessage(args))
				if err == nil {
					t.Fatalf("arguments %s reached the upstream: %v", args, toolText(res))
				}
				if je := (*jsonrpc.Error)(nil); !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams {
					t.Errorf("arguments %s: %v, want invalid params", args, err)
				}
				if !strings.Contains(err.Error(), "case") && !strings.Contains(err.Error(), "more than once") {
					t.Errorf("arguments %s: error %q does not say what is wrong", args, err)
				}
				env.crm.mu.Lock()
				after := len(env.crm.tokens)
				env.crm.mu.Unlock()
				if after != before {
					t.Errorf("arguments %s: the upstream got %d requests", args, after-before)
				}
			}
			var refused int
			for _, l := range env.audit.Lines() {
				if l["tool"] == "echo" && l["error_class"] == "invalid_arguments" {
					refused++
				}
			}
			if refused != 3 {
				t.Errorf("%d audit records with error_class invalid_arguments, want 3", refused)
			}
		})
	}
}

// TestAmbiguousPromptArgumentsRefused: prompt argument keys that differ
// only in case are refused before policy and the upstream.
func TestAmbiguousPromptArgumentsRefused(t *testing.T) {
	env := startMux(t, nil)
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	ctx := t.Context()
	if _, err := alice.GetPrompt(ctx, &mcp.GetPromptParams{Name: "docs_greet", Arguments: map[string]string{"who": "a"}}); err != nil {
		t.Fatal(err)
	}
	_, err := alice.GetPrompt(ctx, &mcp.GetPromptParams{Name: "docs_greet", Arguments: map[string]string{"who": "a", "WHO": "b"}})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != jsonrpc.CodeInvalidParams || !strings.Contains(je.Message, "differ only in case") {
		t.Fatalf("ambiguous prompt arguments: %v, want -32602 naming the keys", err)
	}
}
