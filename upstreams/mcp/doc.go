// Package mcp is the upstream adapter for kind mcp: a remote MCP server
// reached over streamable HTTP with go-sdk's client, called as each user with
// the platform token the credentials broker obtained for that user.
//
// One Adapter per configured upstream; one Session per (downstream MCP
// session, upstream), bound to the user in the context of Open. A session
// connects on its first call (concurrent first calls share one attempt; a
// failed attempt is not remembered), pins the upstream protocol version to
// the downstream one, and reconnects transparently when its upstream session
// breaks (logging level and resource subscriptions are restored).
//
//	a, err := mcp.New(cfg, mcp.Deps{Credentials: src, Logger: log})
//	s, err := a.Open(identity.NewContext(ctx, id), upstreams.OpenOptions{
//		ProtocolVersion: downstreamVersion, Events: relay})
//	res, err := s.CallTool(identity.NewContext(ctx, id), &sdkmcp.CallToolParams{
//		Name: "search", Arguments: json.RawMessage(rawArgs)})
//	defer s.Close()
//
// # What goes upstream
//
// Every HTTP request carries "Authorization: Bearer <platform token>" from
// credentials.Transport (never the user's inbound token), a 401 makes that
// transport fetch a fresh token and retry once. Requests go-sdk issues on
// background contexts (the standalone event stream, DELETE, responses to
// sampling/elicitation) get the session's latest identity. With a
// TracerProvider or Propagator, W3C traceparent goes into the HTTP headers
// and into params._meta.
//
// # Errors
//
// A JSON-RPC error from the upstream passes through with its code and data,
// the message prefixed with "upstream <name>: ". Failures of the upstream
// become *jsonrpc.Error with one of the Code* constants and a message naming
// the upstream and the cause. A cancelled caller gets an error wrapping
// context.Canceled.
//
// # Notifications
//
// Progress, log messages, list_changed and resources/updated go to
// OpenOptions.Events.Notify; sampling and elicitation requests to its
// CreateMessage and Elicit (an error from those goes back to the upstream as
// a JSON-RPC error: return *jsonrpc.Error to choose the code). A call whose
// _meta has a progressToken, and every call on a session that uses logging,
// returns only after every progress/log notification that preceded its
// result has been relayed (see noteTracker): go-sdk's client can otherwise
// deliver the result first. Notify runs on the upstream connection's
// notification queue: keep it quick (it delays later notifications).
package mcp
