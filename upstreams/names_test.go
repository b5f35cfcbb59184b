package upstreams

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestValidateDefinitions is the one table of what an upstream may list:
// the catalog and the mcp adapter both use these functions.
func TestValidateDefinitions(t *testing.T) {
	obj := map[string]any{"type": "object"}
	tests := []struct {
		name string
		err  error
		ok   bool
	}{
		// Tool and prompt names.
		{"name plain", ValidateName("get_account"), true},
		{"name dots and dashes", ValidateName("crm.get-account"), true},
		{"name non-ASCII letters", ValidateName("résumé"), true},
		{"name 128 bytes", ValidateName(strings.Repeat("a", MaxNameLen)), true},
		{"name empty", ValidateName(""), false},
		{"name 129 bytes", ValidateName(strings.Repeat("a", MaxNameLen+1)), false},
		{"name space", ValidateName("get account"), false},
		{"name tab", ValidateName("get\taccount"), false},
		{"name newline", ValidateName("get\naccount"), false},
		{"name NUL", ValidateName("get\x00"), false},
		{"name DEL", ValidateName("get\x7f"), false},
		{"name C1 control", ValidateName("get\u0085"), false},
		{"name no-break space", ValidateName("get\u00a0account"), false},
		{"name line separator", ValidateName("get\u2028account"), false},
		{"name invalid UTF-8", ValidateName("get\xff"), false},

		// Tools.
		{"tool ok", ValidateTool(&mcp.Tool{Name: "t", InputSchema: obj}), true},
		{"tool with output schema", ValidateTool(&mcp.Tool{Name: "t", InputSchema: obj, OutputSchema: obj}), true},
		{"tool nil", ValidateTool(nil), false},
		{"tool without name", ValidateTool(&mcp.Tool{InputSchema: obj}), false},
		{"tool bad name", ValidateTool(&mcp.Tool{Name: "a b", InputSchema: obj}), false},
		{"tool without schema", ValidateTool(&mcp.Tool{Name: "t"}), false},
		{"tool string schema", ValidateTool(&mcp.Tool{Name: "t", InputSchema: map[string]any{"type": "string"}}), false},
		{"tool schema not an object", ValidateTool(&mcp.Tool{Name: "t", InputSchema: 5}), false},
		{"tool schema without type", ValidateTool(&mcp.Tool{Name: "t", InputSchema: map[string]any{}}), false},
		{"tool array output", ValidateTool(&mcp.Tool{Name: "t", InputSchema: obj, OutputSchema: map[string]any{"type": "array"}}), false},
		{"tool raw JSON schema", ValidateTool(&mcp.Tool{Name: "t", InputSchema: json.RawMessage(`{"type":"object"}`)}), false},

		// Resource URIs.
		{"uri file", ValidateResourceURI("file:///a"), true},
		{"uri https", ValidateResourceURI("https://crm.example.com/accounts/1"), true},
		{"uri custom scheme", ValidateResourceURI("salesforce://Account/001"), true},
		{"uri 4096 bytes", ValidateResourceURI("x:" + strings.Repeat("a", MaxURILen-2)), true},
		{"uri empty", ValidateResourceURI(""), false},
		{"uri relative", ValidateResourceURI("relative/path"), false},
		{"uri unparsable", ValidateResourceURI("::not a uri"), false},
		{"uri too long", ValidateResourceURI("x:" + strings.Repeat("a", MaxURILen-1)), false},

		// Resource URI templates.
		{"template ok", ValidateURITemplate("file:///{path}"), true},
		{"template custom scheme", ValidateURITemplate("salesforce://Account/{id}"), true},
		{"template empty", ValidateURITemplate(""), false},
		{"template space", ValidateURITemplate("file:///{a b}"), false},
		{"template newline", ValidateURITemplate("file:///a\n"), false},
		{"template no scheme", ValidateURITemplate("/accounts/{id}"), false},
		{"template too long", ValidateURITemplate("x:" + strings.Repeat("a", MaxURILen-1)), false},
	}
	for _, tt := range tests {
		if (tt.err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok = %v", tt.name, tt.err, tt.ok)
		}
	}
}

// FuzzValidateTool: upstream tool definitions never panic the validator.
func FuzzValidateTool(f *testing.F) {
	f.Add([]byte(`{"name":"a","inputSchema":{"type":"object"}}`))
	f.Add([]byte(`{"name":"a","inputSchema":{"type":"string"}}`))
	f.Add([]byte(`{"name":"a","inputSchema":5,"outputSchema":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var tool *mcp.Tool
		if json.Unmarshal(raw, &tool) != nil {
			return
		}
		_ = ValidateTool(tool)
	})
}
