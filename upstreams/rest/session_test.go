package rest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

func testService() *Service {
	echo := func(c *Call, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
		var args struct {
			Path string `json:"path"`
		}
		if err := DecodeArgs(p.Name, p.Arguments, &args); err != nil {
			return nil, err
		}
		resp, err := c.Do(http.MethodGet, args.Path, nil, nil)
		if err != nil {
			return c.ToolFailure(err)
		}
		var v map[string]any
		if err := c.DecodeJSON(resp.Body, &v); err != nil {
			return c.ToolFailure(err)
		}
		return Result(string(resp.Body), v), nil
	}
	return &Service{
		Tools: NewTools([]Tool{
			{Def: &mcp.Tool{Name: "zeta", InputSchema: Object(map[string]any{"path": map[string]any{"type": "string"}}, "path")}, Run: echo},
			{Def: &mcp.Tool{Name: "alpha", InputSchema: Object(nil)}, Run: echo},
		}),
		Resources: []*mcp.Resource{{URI: "acme://r", Name: "r"}},
		Templates: []*mcp.ResourceTemplate{{URITemplate: "acme://things/{kind}/{id}", Name: "thing"}},
		Read: func(c *Call, uri string) (*mcp.ReadResourceResult, error) {
			return c.JSONResource(uri, map[string]string{"uri": uri})
		},
		Completion: Completion{URI: "acme://things/{kind}/{id}", Argument: "kind", Values: []string{"Account", "account_team", "Case"}},
		OnDemand:   "Acme things",
	}
}

func TestSession(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/text" {
			_, _ = io.WriteString(w, "not json")
			return
		}
		_, _ = io.WriteString(w, `{"n":1}`)
	}, upstreams.Config{}, testPlatform())
	s, err := e.cl.Open(testService())
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := userCtx(t)

	lt, err := s.ListTools(ctx, nil)
	if err != nil || len(lt.Tools) != 2 || lt.Tools[0].Name != "zeta" {
		t.Fatalf("ListTools = %v, %v", lt, err)
	}
	lt.Tools[0].Name = "renamed"
	if again, _ := s.ListTools(ctx, nil); again.Tools[0].Name != "zeta" {
		t.Error("ListTools hands out its own definitions; a caller renamed one")
	}
	lr, _ := s.ListResources(ctx, nil)
	lr.Resources[0].Name = "renamed"
	if again, _ := s.ListResources(ctx, nil); again.Resources[0].Name != "r" {
		t.Error("ListResources hands out its own definitions")
	}

	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "zeta", Arguments: json.RawMessage(`{"path":"/ok"}`)})
	if err != nil || res.IsError || res.StructuredContent.(map[string]any)["n"] == nil {
		t.Fatalf("CallTool = %v, %v", res, err)
	}
	res, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "zeta", Arguments: json.RawMessage(`{"path":"/text"}`)})
	if err != nil || !res.IsError || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, "Acme answered with a body that is not the expected JSON") {
		t.Errorf("non-JSON body: %v, %v", res, err)
	}

	var rpc *jsonrpc.Error
	_, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "nope"})
	if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams || rpc.Message != `upstream acme (acme): unknown tool "nope" (this upstream has alpha, zeta)` {
		t.Errorf("unknown tool: %v", err)
	}
	_, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "zeta", Arguments: json.RawMessage(`[1]`)})
	if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("bad arguments: %v", err)
	}
	_, err = s.CallTool(context.Background(), &mcp.CallToolParams{Name: "zeta", Arguments: json.RawMessage(`{"path":"/ok"}`)})
	if !errors.As(err, &rpc) || !strings.Contains(rpc.Message, "no authenticated user in the request context; Acme is only called as a signed-in user") {
		t.Errorf("no identity: %v", err)
	}
	if _, err := s.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "acme://r"}); err == nil {
		t.Error("ReadResource without an identity succeeded")
	}
	rr, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "acme://r"})
	if err != nil || rr.Contents[0].MIMEType != "application/json" || !strings.Contains(rr.Contents[0].Text, `"uri": "acme://r"`) {
		t.Errorf("ReadResource = %v, %v", rr, err)
	}

	cr, _ := s.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: "acme://things/{kind}/{id}"}, Argument: mcp.CompleteParamsArgument{Name: "kind", Value: "AC"}})
	if diff := cmp.Diff([]string{"Account", "account_team"}, cr.Completion.Values); diff != "" || cr.Completion.Total != 2 {
		t.Errorf("Complete (-want +got):\n%s", diff)
	}
	cr, _ = s.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: "acme://other"}, Argument: mcp.CompleteParamsArgument{Name: "kind"}})
	if cr.Completion.Values == nil || len(cr.Completion.Values) != 0 {
		t.Errorf("Complete of another template = %v, want []", cr.Completion.Values)
	}
	if err := s.Subscribe(ctx, nil); !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeMethodNotFound || !strings.HasSuffix(rpc.Message, "(Acme things are read on demand)") {
		t.Errorf("Subscribe = %v", err)
	}
	if _, err := s.GetPrompt(ctx, &mcp.GetPromptParams{Name: "p"}); !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams {
		t.Errorf("GetPrompt = %v", err)
	}

	if s.Close() != nil || s.Close() != nil {
		t.Error("Close is not idempotent")
	}
	if _, err := s.ListTools(ctx, nil); !errors.As(err, &rpc) || rpc.Code != upstreams.CodeSessionClosed {
		t.Errorf("ListTools on a closed session = %v", err)
	}
	_, err = s.CallTool(ctx, &mcp.CallToolParams{Name: "zeta", Arguments: json.RawMessage(`{"path":"/ok"}`)})
	if !errors.As(err, &rpc) || rpc.Code != upstreams.CodeSessionClosed {
		t.Errorf("CallTool on a closed session = %v", err)
	}

	s2, _ := e.cl.Open(testService())
	_ = e.cl.Close()
	if _, err := s2.ListResourceTemplates(ctx, nil); !errors.As(err, &rpc) || rpc.Code != upstreams.CodeSessionClosed {
		t.Errorf("a session of a closed client = %v", err)
	}
	if _, err := e.cl.Open(testService()); !errors.As(err, &rpc) || rpc.Message != "upstream acme (acme): the adapter is closed" {
		t.Errorf("Open on a closed client = %v", err)
	}
}

func TestNewToolsPanicsOnDuplicates(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Error("no panic for a duplicate tool name")
		}
	}()
	h := func(*Call, *mcp.CallToolParams) (*mcp.CallToolResult, error) { return nil, nil }
	NewTools([]Tool{{Def: &mcp.Tool{Name: "a"}, Run: h}, {Def: &mcp.Tool{Name: "a"}, Run: h}})
}
