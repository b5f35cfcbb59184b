package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// deadSource fails every token request, so fuzzed calls never leave the
// process: anything past argument validation ends in a credentials error.
type deadSource struct{}

func (deadSource) Token(context.Context) (credentials.Result, error) {
	return credentials.Result{}, &credentials.Error{Upstream: "servicenow", Flow: "jwt_bearer", Code: "invalid_grant"}
}
func (deadSource) Invalidate(context.Context, *credentials.Token) {}

// Arbitrary arguments for every tool: never a panic; either a -32602
// protocol error or a tool result (a local validation error, or the
// credentials error that proves validation passed).
func FuzzArguments(f *testing.F) {
	for _, s := range []string{
		`{}`, `{"relation":"caller","active_only":true,"limit":5}`, `{"number":"INC0010001"}`,
		`{"sys_id":"9d385017c611228701d22104cc95c371","state":"6","comments":"x"}`,
		`{"table":"incident","query":"active=true^ORDERBYnumber","fields":["sys_id","caller_id.email"],"offset":3}`,
		`{"short_description":"a\u0000b"}`, `[1]`, `{"limit":1e400}`, `{"table":"incident","query":"a=1\nb=2"}`,
		`{"table":"incident","query":"caller_id=javascript:gs.getUserID()^active=true"}`, `{"table":"incident","query":"caller_id=javascript:gs.getUserID()^^x"}`,
	} {
		f.Add(s)
	}
	a, err := New(upstreams.Config{Name: "servicenow", URL: "https://x.service-now.com"}, Deps{Credentials: deadSource{}})
	if err != nil {
		f.Fatal(err)
	}
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	ctx := identity.NewContext(context.Background(), rita)
	f.Fuzz(func(t *testing.T, args string) {
		for _, tool := range []string{ToolMyIncidents, ToolGetIncident, ToolCreateIncident, ToolUpdateIncident, ToolQueryTable} {
			res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: json.RawMessage(args)})
			if err != nil {
				var rpc *jsonrpc.Error
				if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams {
					t.Fatalf("%s(%q): error %v is not -32602", tool, args, err)
				}
				continue
			}
			if res == nil || !res.IsError {
				t.Fatalf("%s(%q): succeeded without credentials", tool, args)
			}
			if msg := text(res); strings.Contains(msg, "invalid_grant") {
				// Validation passed: the query that would be sent is clean.
				var q struct {
					Query string `json:"query"`
				}
				_ = json.Unmarshal([]byte(args), &q)
				if tool == ToolQueryTable && strings.ContainsAny(q.Query, "\r\n\x00") {
					t.Fatalf("%s(%q): a multi-line or NUL query passed validation", tool, args)
				}
			}
		}
	})
}
