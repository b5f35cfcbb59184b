package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/front"
	"github.com/mandate-gw/mandate/internal/identity"
)

// Inbound is what the HTTP front knows about one authenticated request to
// the MCP endpoint: the verified identity, the request id, the HTTP
// request's context (done when the client goes away) and, for a POST, the
// message, read and decoded once. It reaches go-sdk's handler through
// TokenInfo.Extra, go-sdk's per-request channel (tokenInfoBridge), and the
// forwarding path through the request's context.
type Inbound struct {
	ctx       context.Context
	header    http.Header
	id        *identity.Identity
	requestID string
	body      []byte
	env       *envelope // nil when the body is not one JSON-RPC object
}

type inboundKey struct{}

// InboundExtra is the TokenInfo.Extra key of the Inbound request.
const InboundExtra = "mandate.inbound"

// NewInbound is an authenticated request, from the front.
func NewInbound(ctx context.Context, header http.Header, id *identity.Identity, requestID string) *Inbound {
	return &Inbound{ctx: ctx, header: header, id: id, requestID: requestID}
}

// WithInbound returns ctx carrying in (for the handlers after the front).
func WithInbound(ctx context.Context, in *Inbound) context.Context {
	return context.WithValue(ctx, inboundKey{}, in)
}

// InboundFrom returns the Inbound request of ctx, or nil.
func InboundFrom(ctx context.Context) *Inbound {
	in, _ := ctx.Value(inboundKey{}).(*Inbound)
	return in
}

// Identity is the verified identity of the request.
func (in *Inbound) Identity() *identity.Identity { return in.id }

// envelope is a JSON-RPC message with its params kept raw.
type envelope struct {
	JSONRPC string                     `json:"jsonrpc"`
	ID      json.RawMessage            `json:"id"`
	Method  string                     `json:"method"`
	Params  map[string]json.RawMessage `json:"params"`
}

// rpcID is the message's JSON-RPC id as text (spans), "" when it has none
// or an odd one.
func (in *Inbound) rpcID() string {
	if in == nil || in.env == nil || !plainID(in.env.ID) {
		return ""
	}
	return strings.Trim(string(in.env.ID), `"`)
}

func inboundOfGin(c *gin.Context) *Inbound {
	in, _ := c.Request.Context().Value(inboundKey{}).(*Inbound)
	return in
}

// inboundOf returns the Inbound request of one go-sdk request.
func inboundOf(req mcp.Request) *Inbound {
	ex := req.GetExtra()
	if ex == nil || ex.TokenInfo == nil {
		return nil
	}
	in, _ := ex.TokenInfo.Extra[InboundExtra].(*Inbound)
	return in
}

// ReadMessage reads a POST's body once (bounded by limitBody) and decodes
// its envelope once, for the forwarding path and spans; go-sdk reads the
// same bytes from memory.
func ReadMessage(c *gin.Context) {
	in := inboundOfGin(c)
	if in == nil {
		return
	}
	body, ok := front.ReadBody(c)
	if !ok {
		return
	}
	in.body = body
	var env envelope
	if json.Unmarshal(body, &env) == nil {
		in.env = &env
	}
}

// requestScoped returns ctx, cancelled as well when the client's HTTP
// request for this message ends; stop releases it. In stateful mode go-sdk
// does not cancel a handler when the client's POST goes away (it keeps the
// stream for resumption, which needs an event store Mandate does not
// keep), so the router cancels the routed call itself, and the upstream is
// told (notifications/cancelled) instead of running on for nobody.
func requestScoped(ctx context.Context, in *Inbound) (_ context.Context, stop func()) {
	if in == nil || in.ctx == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(in.ctx, func() { cancel(errClientGone) })
	return ctx, func() { unhook(); cancel(nil) }
}

// errClientGone is the cause of a call cancelled because its client left.
var errClientGone = errors.New("the client closed the request")
