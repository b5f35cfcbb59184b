package gateway

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
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
