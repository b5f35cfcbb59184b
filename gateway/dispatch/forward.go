package dispatch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/sessions"
	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
)

// fastSeq numbers forwarded upstream request ids; fastCalls counts calls
// the forwarding path served (tests).
var fastSeq, fastCalls atomic.Uint64

// Forward is the forwarding path's envelope handling: for the common
// tools/call it skips decoding and re-encoding the message through go-sdk
// on both legs. It takes a call only when the envelope alone shows that
// the answer is one JSON-RPC message (a stateful session of the same
// user, no progress token, no logging level, a client that offers neither
// sampling nor elicitation, a tool of an upstream whose sessions forward
// raw messages); then the call goes through the same dispatch pipeline as
// on the go-sdk path — route, authorize, admit, session, record — and only
// invoke differs: the upstream session's RawCaller gets the message with
// the name and id rewritten and returns the result's bytes and isError.
// The gateway frames the result with the client's id, as JSON or as one
// event, like go-sdk does. Everything else goes to go-sdk.
func (g *Dispatcher) Forward(c *gin.Context) {
	in := inboundOfGin(c)
	if g.Stateless || in == nil || in.env == nil {
		return
	}
	sid := c.GetHeader("Mcp-Session-Id")
	if sid == "" {
		return
	}
	d, ok := g.Sessions.Lookup(sid)
	if !ok || d.Closed() {
		return
	}
	handled := false
	defer func() {
		if !handled { // go-sdk serves this request: its idle timer restarts
			d.MarkSDK()
		}
	}()
	env := in.env
	if env.Method == "notifications/cancelled" {
		d.CancelForwarded(env.Params["requestId"]) // go-sdk answers the notification
		return
	}
	cur, ss := d.Identity(), d.ServerSession()
	if cur == nil || cur.Key() != in.id.Key() || ss == nil || d.LogLevel() != nil ||
		sessions.ClientSupports(ss, "sampling") || sessions.ClientSupports(ss, "elicitation") {
		return
	}
	// go-sdk closes sessions that see no requests for idle_timeout: let one
	// request through it now and then to keep the downstream session alive.
	if time.Since(d.SDKSeen()) > g.IdleTimeout/4 {
		return
	}
	if env.JSONRPC != "2.0" || env.Method != "tools/call" || env.Params == nil || !plainID(env.ID) {
		return
	}
	var name string
	st := g.State()
	if json.Unmarshal(env.Params["name"], &name) != nil || st.IsWhoAmI(name) {
		return
	}
	meta := env.Params["_meta"]
	if len(meta) > 0 && bytes.Contains(meta, []byte(`"progressToken"`)) {
		return
	}
	if _, retry := env.Params["requestState"]; retry {
		return // the retry of an input_required answer: checked on the go-sdk path
	}
	if _, retry := env.Params["inputResponses"]; retry {
		return
	}
	args, hasArgs := env.Params["arguments"]
	if hasArgs && !jsonObject(args) {
		return // go-sdk's decoding answers with invalid params
	}
	if u, _, ok := st.Route(name); !ok || !u.Raw {
		return
	}

	handled = true
	fastCalls.Add(1)
	d.Touch(in.id)
	o := &call{start: time.Now(), method: "tools/call", id: in.id, d: d, ss: ss, st: st,
		requestID: in.requestID, sessionID: sid, name: name, rawArgs: args, fast: true}
	if ip := ss.InitializeParams(); ip != nil {
		o.proto = ip.ProtocolVersion
	}
	// notifications/cancelled for this id cancels the call (go-sdk, which
	// does not know the request, cannot).
	ctx, stop := d.Forwarding(c.Request.Context(), env.ID)
	defer stop()
	ctx = identity.NewContext(ctx, in.id)
	ctx, o.info = callinfo.NewContext(ctx)
	if g.Tel.TP != nil {
		o.rpcID = in.rpcID()
		ctx = g.startSpan(ctx, o, c.Request.Header, rawMetaTrace(meta))
	}

	var raw upstreams.RawResult
	res, err := g.guard(o, func() (mcp.Result, error) {
		return g.dispatch(ctx, o, func(ctx context.Context, sess upstreams.Session) (mcp.Result, bool, error) {
			rc, ok := sess.(upstreams.RawCaller)
			if !ok {
				// Not a forwarding session after all: the typed call
				// (bounded here: invoke leaves that to RawCallers), whose
				// result is encoded here as go-sdk would.
				ctx, cancel := context.WithTimeoutCause(ctx, o.u.Cfg.Timeout, upstreams.ErrTimeout)
				defer cancel()
				res, err := sess.CallTool(ctx, &mcp.CallToolParams{Meta: hopMeta(rawMeta(meta)), Name: o.tool, Arguments: args})
				if err != nil {
					return nil, false, err
				}
				return res, res.IsError, nil
			}
			body, upID, err := forwardBody(env, o.tool)
			if err != nil {
				return nil, false, err
			}
			raw, err = rc.CallToolRaw(ctx, o.tool, upID, body)
			return nil, raw.IsError, err
		})
	})
	if aerr := g.record(ctx, o, err); aerr != nil {
		res, err = nil, aerr
	}
	c.Header("Mcp-Session-Id", sid)
	switch {
	case err != nil:
		msg, _ := json.Marshal(rpcErrorBody(env.ID, err))
		writeEvent(c, msg)
	case res != nil:
		msg, _ := json.Marshal(gin.H{"jsonrpc": "2.0", "id": env.ID, "result": res})
		writeEvent(c, msg)
	default:
		writeResult(c, env.ID, raw)
	}
}

// forwardBody is the upstream message: the client's tools/call with the
// upstream's tool name, a fresh id, and the per-hop protocol keys of _meta
// removed (as the go-sdk path does).
func forwardBody(env *envelope, tool string) (body, upID []byte, err error) {
	var idBuf [24]byte
	upID = append(strconv.AppendUint(append(idBuf[:0], `"mx-`...), fastSeq.Add(1), 36), '"')
	params := env.Params // the request's own: nothing reads it after this
	params["name"], _ = json.Marshal(tool)
	if raw, ok := params["_meta"]; ok && bytes.Contains(raw, []byte(`"io.modelcontextprotocol/`)) {
		var meta mcp.Meta
		if err := json.Unmarshal(raw, &meta); err != nil {
			return nil, nil, &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "invalid _meta"}
		}
		params["_meta"], _ = json.Marshal(hopMeta(meta))
	}
	p, err := json.Marshal(params)
	if err != nil {
		return nil, nil, err
	}
	out := make([]byte, 0, len(p)+64)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, upID...)
	out = append(out, `,"method":"tools/call","params":`...)
	out = append(out, p...)
	return append(out, '}'), upID, nil
}

// writeResult frames a forwarded result with the client's id.
func writeResult(c *gin.Context, id json.RawMessage, res upstreams.RawResult) {
	msg := make([]byte, 0, len(res.Result)+len(id)+40)
	msg = append(msg, `{"jsonrpc":"2.0","id":`...)
	msg = append(msg, id...)
	msg = append(msg, `,"result":`...)
	msg = append(msg, res.Result...)
	msg = append(msg, '}')
	writeEvent(c, msg)
}

// writeEvent answers with one JSON-RPC message as an event stream of one
// event, as go-sdk answers a request (results and errors alike).
func writeEvent(c *gin.Context, msg []byte) {
	c.Header("Content-Type", "text/event-stream")
	c.Header("Cache-Control", "no-cache")
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write([]byte("event: message\ndata: "))
	_, _ = c.Writer.Write(msg)
	_, _ = c.Writer.Write([]byte("\n\n"))
	c.Abort()
}

// rawMeta decodes _meta for the typed fallback (nil when absent or bad).
func rawMeta(raw json.RawMessage) mcp.Meta {
	if len(raw) == 0 {
		return nil
	}
	var m mcp.Meta
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}

// jsonObject reports whether raw is a JSON object (or null: no arguments).
func jsonObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && (raw[0] == '{' || bytes.Equal(raw, []byte("null")))
}

func rpcErrorBody(id json.RawMessage, err error) gin.H {
	code, msg := int64(CodeUpstream), err.Error()
	var je *jsonrpc.Error
	if errors.As(err, &je) {
		code, msg = je.Code, je.Message
		if len(je.Data) > 0 { // as go-sdk writes it on the other path
			return gin.H{"jsonrpc": "2.0", "id": id, "error": gin.H{"code": code, "message": msg, "data": je.Data}}
		}
	}
	return gin.H{"jsonrpc": "2.0", "id": id, "error": gin.H{"code": code, "message": msg}}
}

// plainID reports whether a JSON-RPC id is a string or a number (what the
// forwarding path echoes back verbatim); anything else goes to go-sdk.
func plainID(id json.RawMessage) bool {
	if len(id) == 0 || len(id) > 256 {
		return false
	}
	switch c := id[0]; {
	case c == '"':
		var s string
		return json.Unmarshal(id, &s) == nil
	case c == '-' || (c >= '0' && c <= '9'):
		var n json.Number
		return json.Unmarshal(id, &n) == nil
	}
	return false
}

// ForwardedCalls is how many calls the forwarding path has served in this
// process (tests use it to tell which path served a call).
func ForwardedCalls() uint64 { return fastCalls.Load() }
