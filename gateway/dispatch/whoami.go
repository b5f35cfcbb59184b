package dispatch

import (
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
)

// WhoAmI is the result of the built-in whoami tool.
type WhoAmI struct {
	Issuer  string   `json:"issuer"`
	Subject string   `json:"subject"`
	Email   string   `json:"email,omitempty"`
	Roles   []string `json:"roles"`
	Groups  []string `json:"groups"`
	Scopes  []string `json:"scopes"`
}

// WhoAmITool is Mandate's built-in tool: the caller's identity as the
// gateway sees it. It is always listed; it reveals only the caller's own
// token claims.
var WhoAmITool = &mcp.Tool{
	Name:        "whoami",
	Title:       "Who am I",
	Description: "Returns the caller's identity as the gateway sees it: issuer, subject, email, roles, groups and scopes from the verified access token.",
	InputSchema: map[string]any{"type": "object", "properties": map[string]any{}, "additionalProperties": false},
	OutputSchema: map[string]any{"type": "object", "properties": map[string]any{
		"issuer": map[string]any{"type": "string"}, "subject": map[string]any{"type": "string"},
		"email": map[string]any{"type": "string"}, "roles": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"groups": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
		"scopes": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
	}, "required": []string{"issuer", "subject", "roles", "groups", "scopes"}},
	Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)},
}

func whoamiResult(id *identity.Identity) *mcp.CallToolResult {
	w := WhoAmI{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email,
		Roles: nonNil(id.Roles), Groups: nonNil(id.Groups), Scopes: nonNil(id.Scopes)}
	text := fmt.Sprintf("You are %s", id.Subject)
	if id.Email != "" {
		text += " <" + id.Email + ">"
	}
	text += fmt.Sprintf(", issued by %s; roles: [%s]; groups: [%s]", id.Issuer, strings.Join(w.Roles, ", "), strings.Join(w.Groups, ", "))
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, StructuredContent: w}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
