package sessions

import (
	"context"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/upstreams"
)

// relay carries what one upstream session sends on its own to the
// downstream session: notifications, and sampling/elicitation requests.
type relay struct {
	d *Session
	u *catalog.Upstream
}

var _ upstreams.EventHandler = (*relay)(nil)

// target picks the downstream session and context for a message from the
// upstream: the in-flight call it belongs to (so it travels on that
// request's stream), else the session's standalone stream.
func (r *relay) target(progressToken any) (context.Context, *mcp.ServerSession) {
	d := r.d
	if k := progressKey(progressToken); k != "" {
		d.inflightMu.Lock()
		c := d.inflight[k]
		d.inflightMu.Unlock()
		if c != nil {
			return c.ctx, c.ss
		}
	}
	if c := d.callFor(r.u.Name); c != nil {
		return c.ctx, c.ss
	}
	if d.ss != nil {
		return context.Background(), d.ss
	}
	return nil, nil
}

func (r *relay) Notify(ctx context.Context, method string, params mcp.Params) {
	g := r.d.store
	switch method {
	case "notifications/progress":
		p, ok := params.(*mcp.ProgressNotificationParams)
		if !ok {
			return
		}
		if tctx, ss := r.target(p.ProgressToken); ss != nil {
			_ = ss.NotifyProgress(tctx, p)
		}
	case "notifications/message":
		p, ok := params.(*mcp.LoggingMessageParams)
		if !ok {
			return
		}
		if tctx, ss := r.target(nil); ss != nil {
			// Downstream level filtering happens in go-sdk (the client's
			// logging/setLevel reaches both the upstream and this session).
			if p.Logger == "" {
				p.Logger = r.u.Name
			}
			_ = ss.Log(tctx, p)
		}
	case "notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed":
		if id := r.d.id.Load(); id != nil {
			g.catalog.Invalidate(id.Key(), r.u.Name, catalog.KindOf(method))
		}
		if ss := r.d.ss; ss != nil {
			g.Notify(context.Background(), ss, method)
		}
	case "notifications/resources/updated":
		p, ok := params.(*mcp.ResourceUpdatedNotificationParams)
		if !ok || r.d.ss == nil {
			return
		}
		r.d.inflightMu.Lock()
		subscribed := r.d.subs[p.URI]
		r.d.inflightMu.Unlock()
		if subscribed {
			_ = g.send(context.Background(), r.d.ss, method, p)
		}
	}
}

func (r *relay) CreateMessage(ctx context.Context, p *mcp.CreateMessageParams) (*mcp.CreateMessageResult, error) {
	tctx, ss := r.target(nil)
	if ss == nil || !ClientSupports(ss, "sampling") {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "the MCP client did not advertise sampling"}
	}
	return ss.CreateMessage(tctx, p)
}

func (r *relay) Elicit(ctx context.Context, p *mcp.ElicitParams) (*mcp.ElicitResult, error) {
	tctx, ss := r.target(nil)
	if ss == nil || !ClientSupports(ss, "elicitation") {
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeMethodNotFound, Message: "the MCP client did not advertise elicitation"}
	}
	return ss.Elicit(tctx, p)
}

// ClientSupports reports whether the client of ss offered sampling or
// elicitation.
func ClientSupports(ss *mcp.ServerSession, what string) bool {
	ip := ss.InitializeParams()
	if ip == nil || ip.Capabilities == nil {
		return false
	}
	switch what {
	case "sampling":
		return ip.Capabilities.Sampling != nil
	case "elicitation":
		return ip.Capabilities.Elicitation != nil
	}
	return false
}

// Notify sends a parameterless list_changed notification to one session.
func (g *Store) Notify(ctx context.Context, ss *mcp.ServerSession, method string) {
	var err error
	switch method {
	case "notifications/tools/list_changed":
		err = g.send(ctx, ss, method, &mcp.ToolListChangedParams{})
	case "notifications/prompts/list_changed":
		err = g.send(ctx, ss, method, &mcp.PromptListChangedParams{})
	case "notifications/resources/list_changed":
		err = g.send(ctx, ss, method, &mcp.ResourceListChangedParams{})
	default:
		err = fmt.Errorf("unsupported notification %s", method)
	}
	if err != nil {
		g.log.Debug("notification not delivered", "method", method, "error", err)
	}
}

// send delivers one message to one downstream session through go-sdk's
// sending path (captured at server construction), so that per-session
// notifications need no server-wide broadcast.
func (g *Store) send(ctx context.Context, ss *mcp.ServerSession, method string, p mcp.Params) error {
	if g.sendHandler == nil {
		return fmt.Errorf("no sending handler")
	}
	var req mcp.Request
	switch p := p.(type) {
	case *mcp.ToolListChangedParams:
		req = &mcp.ServerRequest[*mcp.ToolListChangedParams]{Session: ss, Params: p}
	case *mcp.PromptListChangedParams:
		req = &mcp.ServerRequest[*mcp.PromptListChangedParams]{Session: ss, Params: p}
	case *mcp.ResourceListChangedParams:
		req = &mcp.ServerRequest[*mcp.ResourceListChangedParams]{Session: ss, Params: p}
	case *mcp.ResourceUpdatedNotificationParams:
		req = &mcp.ServerRequest[*mcp.ResourceUpdatedNotificationParams]{Session: ss, Params: p}
	default:
		return fmt.Errorf("unsupported params %T", p)
	}
	_, err := g.sendHandler(ctx, method, req)
	return err
}
