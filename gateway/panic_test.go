package gateway

import (
	"context"
	"errors"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// panicAdapter is an upstream whose tool call panics inside Mandate's
// process (a bug in an adapter).
type panicAdapter struct{}

func (panicAdapter) Name() string { return "crm" }
func (panicAdapter) Close() error { return nil }
func (panicAdapter) Open(context.Context, upstreams.OpenOptions) (upstreams.Session, error) {
	return panicSession{}, nil
}

type panicSession struct {
	upstreams.Session // other methods are not used
}

func (panicSession) ListTools(context.Context, *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	return &mcp.ListToolsResult{Tools: []*mcp.Tool{{Name: "boom", InputSchema: map[string]any{"type": "object"}}}}, nil
}
func (panicSession) CallTool(context.Context, *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	panic("adapter bug")
}
func (panicSession) Close() error { return nil }

// TestPanicCostsOneRequest: a panic while serving an MCP request answers
// that request with a JSON-RPC internal error; the process, the session
// and other requests carry on.
func TestPanicCostsOneRequest(t *testing.T) {
	env := startMuxOpts(t, func(c *Config) {
		c.Upstreams = c.Upstreams[:1]
		c.Upstreams[0].Credentials = credentials.Config{Flow: credentials.FlowNone}
	}, Options{NewAdapter: func(upstreams.Config, credentials.Source) (upstreams.Adapter, error) { return panicAdapter{}, nil }})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	for range 2 { // cold, then warm
		_, err := callJSON(t, alice, "crm_boom", map[string]any{})
		var je *jsonrpc.Error
		if !errors.As(err, &je) || je.Code != jsonrpc.CodeInternalError || je.Message != "internal error" {
			t.Fatalf("call that panics: %v, want JSON-RPC internal error", err)
		}
	}
	if res, err := callJSON(t, alice, "whoami", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("the session after a panic: %v %+v", err, res)
	}
	bob := connect(t, env.gw.mcpURL, env.bobTk)
	if _, err := bob.ListTools(context.Background(), nil); err != nil {
		t.Fatalf("another session after a panic: %v", err)
	}
}
