package gateway

import (
	"context"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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

func (g *Gateway) newMCPServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "mandate", Title: "Mandate MCP gateway", Version: Version}, &mcp.ServerOptions{
		Logger: g.log,
	})
	mcp.AddTool(s, &mcp.Tool{
		Name:        "whoami",
		Title:       "Who am I",
		Description: "Returns the caller's identity as the gateway sees it: issuer, subject, email, roles, groups and scopes from the verified access token.",
		Annotations: &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: new(false)},
	}, g.whoami)
	return s
}

func (g *Gateway) whoami(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, WhoAmI, error) {
	id := identityFrom(req.Extra.TokenInfo)
	if id == nil {
		return nil, WhoAmI{}, fmt.Errorf("no authenticated identity")
	}
	w := WhoAmI{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email,
		Roles: nonNil(id.Roles), Groups: nonNil(id.Groups), Scopes: nonNil(id.Scopes)}
	text := fmt.Sprintf("You are %s", id.Subject)
	if id.Email != "" {
		text += " <" + id.Email + ">"
	}
	text += fmt.Sprintf(", issued by %s; roles: [%s]; groups: [%s]", id.Issuer, strings.Join(w.Roles, ", "), strings.Join(w.Groups, ", "))
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, w, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
