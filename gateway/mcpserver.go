package gateway

import (
	"context"
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

// whoamiTool is Mandate's built-in tool: the caller's identity as the
// gateway sees it. It is always listed; it reveals only the caller's own
// token claims.
var whoamiTool = &mcp.Tool{
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

func (g *Gateway) newMCPServer() *mcp.Server {
	var sessionID func() string // go-sdk's random ids
	if g.peers != nil {
		sessionID = g.peers.NewID // ids that name this replica
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "mandate", Title: "Mandate MCP gateway", Version: Version}, &mcp.ServerOptions{
		Logger:       g.log,
		GetSessionID: sessionID,
		// Subscriptions are forwarded upstream by the middleware; go-sdk
		// only needs handlers to accept them.
		SubscribeHandler:   func(context.Context, *mcp.SubscribeRequest) error { return nil },
		UnsubscribeHandler: func(context.Context, *mcp.UnsubscribeRequest) error { return nil },
		Capabilities: &mcp.ServerCapabilities{
			Tools:       &mcp.ToolCapabilities{ListChanged: true},
			Resources:   &mcp.ResourceCapabilities{ListChanged: true, Subscribe: true},
			Prompts:     &mcp.PromptCapabilities{ListChanged: true},
			Logging:     &mcp.LoggingCapabilities{},
			Completions: &mcp.CompletionCapabilities{},
		},
	})
	// Capture go-sdk's sending path so that per-session notifications
	// (list_changed, resources/updated) can be sent to one session.
	s.AddSendingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		g.sessions.SetSender(next)
		return next
	})
	s.AddReceivingMiddleware(g.middleware)
	return s
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
