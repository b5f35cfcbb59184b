// Package upstreams defines the interface every upstream kind implements
// (remote MCP servers, native Salesforce and ServiceNow adapters) and holds
// one subpackage per kind, plus the per-user credential flows.
//
// Kinds register themselves: each kind's package calls RegisterKind in its
// init, and package upstreams/kinds imports every built-in kind for that
// side effect. NewAdapter builds an upstream's adapter by its kind, and
// Config.Validate accepts the registered kinds (Kinds). Optional
// capabilities are interfaces an Adapter or Session may implement:
// HealthReporter (read with HealthOf) and RawCaller.
//
// Upstream adapters never import the gateway. They receive the caller's
// identity in the context of every call (identity.FromContext) and obtain a
// platform token for that user from their credentials.Source.
package upstreams

import (
	"context"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// Adapter is one configured upstream. It is safe for concurrent use; the
// gateway builds one per configured upstream and opens one Session per
// (downstream MCP session, upstream).
type Adapter interface {
	// Name is the upstream's configured name; it is also the namespace of
	// its tools and prompts.
	Name() string
	// Open starts a session on the upstream for one downstream session. The
	// caller's identity is in ctx (identity.FromContext). Sessions of native
	// adapters are cheap; MCP sessions connect lazily or eagerly as the
	// adapter sees fit.
	Open(ctx context.Context, opts OpenOptions) (Session, error)
	// Close releases resources shared by all sessions.
	Close() error
}

// OpenOptions configure one upstream session.
type OpenOptions struct {
	// ProtocolVersion is the downstream session's negotiated MCP protocol
	// version; MCP upstreams are pinned to it. Empty means the adapter's
	// default.
	ProtocolVersion string
	// Events receives what the upstream sends on its own (notifications and
	// server→client requests). Nil drops notifications and refuses requests.
	Events EventHandler
}

// EventHandler receives upstream-initiated messages for one downstream
// session. Methods may be called concurrently.
type EventHandler interface {
	// Notify relays a notification (progress, logging, list_changed,
	// resources/updated). method is the MCP method name.
	Notify(ctx context.Context, method string, params mcp.Params)
	// CreateMessage relays a sampling request; return an error when the
	// downstream client did not advertise sampling.
	CreateMessage(ctx context.Context, params *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error)
	// Elicit relays an elicitation request; return an error when the
	// downstream client did not advertise elicitation.
	Elicit(ctx context.Context, params *mcp.ElicitParams) (*mcp.ElicitResult, error)
}

// Session is one user's session on one upstream. Every method takes the
// caller's identity from ctx. Methods may be called concurrently. Errors that
// the MCP client should see as protocol errors are *jsonrpc.Error; tool
// failures are CallToolResult{IsError: true}.
type Session interface {
	ListTools(ctx context.Context, p *mcp.ListToolsParams) (*mcp.ListToolsResult, error)
	CallTool(ctx context.Context, p *mcp.CallToolParams) (*mcp.CallToolResult, error)
	ListResources(ctx context.Context, p *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error)
	ListResourceTemplates(ctx context.Context, p *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error)
	ReadResource(ctx context.Context, p *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error)
	ListPrompts(ctx context.Context, p *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error)
	GetPrompt(ctx context.Context, p *mcp.GetPromptParams) (*mcp.GetPromptResult, error)
	Complete(ctx context.Context, p *mcp.CompleteParams) (*mcp.CompleteResult, error)
	Subscribe(ctx context.Context, p *mcp.SubscribeParams) error
	Unsubscribe(ctx context.Context, p *mcp.UnsubscribeParams) error
	SetLoggingLevel(ctx context.Context, p *mcp.SetLoggingLevelParams) error
	// Close ends the upstream session.
	Close() error
}

// RawCaller is an optional capability of a Session (the mcp adapter has
// it): it forwards one tools/call request as JSON-RPC bytes, without
// decoding and re-encoding the message through an MCP client on either
// leg, and returns the decoded outcome. It runs through the same session
// bookkeeping as CallTool: identity binding, the upstream's timeout,
// health accounting, max_result_bytes, cancellation (an abandoned call is
// cancelled upstream) and error mapping — an error is what CallTool would
// return for the same failure (a *jsonrpc.Error naming the upstream, or an
// error wrapping the caller's context cancellation). Safe for concurrent
// use, like the Session.
type RawCaller interface {
	// CallToolRaw sends body, a complete JSON-RPC tools/call request for
	// the tool name (as the upstream knows it; for spans and logs) whose id
	// is the JSON value id (a string unique on the session, so that it
	// cannot collide with ids the session's own MCP client uses), and
	// returns the upstream's result. A JSON-RPC error the upstream answered
	// comes back as the error, as from CallTool.
	CallToolRaw(ctx context.Context, name string, id, body []byte) (RawResult, error)
}

// RawForwarder is an optional capability of an Adapter: every session it
// opens is a RawCaller, so the gateway may choose the forwarding path for
// a call before the session exists.
type RawForwarder interface {
	ForwardsRaw() bool
}

// RawResult is the outcome of a RawCaller call.
type RawResult struct {
	// Result is the JSON-RPC result object, verbatim (the caller frames it
	// in its own envelope with its own id).
	Result []byte
	// IsError is the result's isError: the tool reported a failure.
	IsError bool
	// EventStream is true when the upstream answered with an event stream
	// (the caller may answer in kind).
	EventStream bool
}
