package gateway

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

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
	s.AddReceivingMiddleware(g.dispatch.Middleware)
	return s
}
