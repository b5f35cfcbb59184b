package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
)

// fastSeq numbers fast-path upstream request ids; fastCalls counts calls
// the fast path served (tests).
var fastSeq, fastCalls atomic.Uint64

// fastPath serves the common tools/call without decoding and re-encoding
// the message through go-sdk on both legs: it reads the envelope (method,
// id, name), applies the same checks as the router (session owner,
// namespacing, policy, rate limit, the user's listing), rewrites the name
// and the id, and hands the bytes to the upstream session's RawCaller,
// which runs the call with the session's own bookkeeping (health, error
// mapping, max_result_bytes, cancellation) and returns the decoded outcome.
// The gateway keeps only the envelope: the client's id around the result,
// event-stream framing, the audit outcome from isError. Anything it does not
// handle — other methods, progress tokens, sessions with logging,
// sampling or elicitation, native adapters, any refusal or error — falls
// through to the go-sdk path, which produces the precise answer.
func (g *Gateway) fastPath(c *gin.Context) {
	if g.stateless || c.Request.Method != http.MethodPost {
		return
	}
	sid := c.GetHeader("Mcp-Session-Id")
	if sid == "" {
		return
	}
	v, ok := g.sessions.Load("sid:" + sid)
	if !ok {
		return
	}
	d := v.(*dsession)
	handled := false
	defer func() {
		if !handled { // go-sdk serves this request: its idle timer restarts
			d.sdkSeen.Store(time.Now().UnixNano())
		}
	}()
	id := identity.FromContext(c.Request.Context())
	cur := d.id.Load()
	if id == nil || cur == nil || cur.Key() != id.Key() || d.ss == nil || d.logLevel.Load() != nil ||
		clientSupports(d.ss, "sampling") || clientSupports(d.ss, "elicitation") {
		return
	}
	// go-sdk closes sessions that see no requests for idle_timeout: let one
	// request through it now and then to keep the downstream session alive.
	if time.Since(time.Unix(0, d.sdkSeen.Load())) > g.cfg.Server.Session.IdleTimeout/4 {
		return
	}
	body, ok := readBody(c)
	if !ok {
		handled = true
		return
	}
	var env struct {
		JSONRPC string                     `json:"jsonrpc"`
		ID      json.RawMessage            `json:"id"`
		Method  string                     `json:"method"`
		Params  map[string]json.RawMessage `json:"params"`
	}
	if json.Unmarshal(body, &env) != nil || env.JSONRPC != "2.0" || env.Method != "tools/call" || env.Params == nil || !plainID(env.ID) {
		return
	}
	var name string
	st := g.state.Load()
	if json.Unmarshal(env.Params["name"], &name) != nil || st.isWhoAmI(name) {
		return
	}
	if meta, ok := env.Params["_meta"]; ok && bytes.Contains(meta, []byte(`"progressToken"`)) {
		return
	}
	if args, ok := env.Params["arguments"]; ok && upstreams.CheckArguments(args) != nil {
		return // not an object, or ambiguous: go-sdk's path answers with invalid params
	}
	u, inner, ok := st.route(name)
	if !ok || u.cfg.Kind != upstreams.KindMCP || st.usesArgs || u.cfg.AuditArguments {
		return
	}
	ctx := identity.NewContext(c.Request.Context(), id)
	opStart := time.Now()
	dec := st.policy.Evaluate(ctx, policy.Input{User: policy.UserFrom(id), Upstream: u.name, Method: "tools/call", Tool: inner})
	polEnd := time.Now()
	// Only warm calls: the user's listing is cached (a listing to fetch,
	// and its failures, are the go-sdk path's business). The go-sdk path
	// also answers when the audit sink cannot write (admitAudit).
	if has, cached := g.cachedTool(d, st, u, inner); !dec.Allow || !has || !cached || !g.audit.Writable() {
		return
	}
	sess, err := d.upstream(ctx, st, u)
	if err != nil {
		return
	}
	rc, ok := sess.(upstreams.RawCaller)
	if !ok {
		return
	}
	if ok, _ := g.limiter.Allow(id.Key(), u.name); !ok {
		return // the go-sdk path answers with the rate-limit error
	}

	o := &op{start: opStart, method: "tools/call", id: id, d: d, ss: d.ss, requestID: c.GetString(RequestIDHeader),
		upstream: u.name, tool: inner, exposed: name, fast: true}
	ctx, o.info = callinfo.NewContext(ctx)
	if g.tel.tp != nil {
		ctx = g.startFastSpan(ctx, o, c.Request.Header, env.Params["_meta"], env.ID, dec, opStart, polEnd)
	}
	o.decision = &dec
	handled = true
	fastCalls.Add(1)
	d.touch(id)

	var idBuf [24]byte
	upID := append(strconv.AppendUint(append(idBuf[:0], `"mx-`...), fastSeq.Add(1), 36), '"')
	nameJSON, _ := json.Marshal(inner)
	env.Params["name"] = nameJSON
	if raw, ok := env.Params["_meta"]; ok && bytes.Contains(raw, []byte(`"io.modelcontextprotocol/`)) {
		var meta mcp.Meta // strip per-hop protocol keys, as the go-sdk path does
		if json.Unmarshal(raw, &meta) != nil {
			return
		}
		env.Params["_meta"], _ = json.Marshal(hopMeta(meta))
	}
	params, _ := json.Marshal(env.Params)
	out := make([]byte, 0, len(params)+64)
	out = append(out, `{"jsonrpc":"2.0","id":`...)
	out = append(out, upID...)
	out = append(out, `,"method":"tools/call","params":`...)
	out = append(out, params...)
	out = append(out, '}')

	// The RawCaller bounds the call by the upstream's timeout itself.
	cctx, done := g.upstreamCall(ctx, o, u, "tools/call", inner)
	res, err := rc.CallToolRaw(cctx, inner, upID, out)
	done(err)
	if err != nil {
		r, ferr := g.toolFailure(o, u, err) // as callTool: credential problems become actionable tool errors
		g.fastFail(c, o, env.ID, r, ferr)
		return
	}
	if res.IsError {
		o.outcome, o.errClass = audit.OutcomeError, "tool_error"
	}
	if aerr := g.finish(ctx, o, nil); aerr != nil {
		c.AbortWithStatusJSON(http.StatusOK, rpcErrorBody(env.ID, aerr))
		return
	}
	msg := make([]byte, 0, len(res.Result)+len(env.ID)+40)
	msg = append(msg, `{"jsonrpc":"2.0","id":`...)
	msg = append(msg, env.ID...)
	msg = append(msg, `,"result":`...)
	msg = append(msg, res.Result...)
	msg = append(msg, '}')
	c.Header("Mcp-Session-Id", sid)
	if res.EventStream {
		c.Header("Content-Type", "text/event-stream")
		c.Header("Cache-Control", "no-cache")
		c.Status(http.StatusOK)
		_, _ = c.Writer.Write([]byte("event: message\ndata: "))
		_, _ = c.Writer.Write(msg)
		_, _ = c.Writer.Write([]byte("\n\n"))
	} else {
		c.Data(http.StatusOK, "application/json", msg)
	}
	c.Abort()
}

// fastFail answers a fast-path call that failed after it was sent
// upstream (it cannot fall through: the call may have run).
func (g *Gateway) fastFail(c *gin.Context, o *op, id json.RawMessage, res mcp.Result, err error) {
	if aerr := g.finish(c.Request.Context(), o, err); aerr != nil {
		res, err = nil, aerr
	}
	c.Header("Mcp-Session-Id", c.GetHeader("Mcp-Session-Id"))
	if err == nil && res != nil {
		c.AbortWithStatusJSON(http.StatusOK, gin.H{"jsonrpc": "2.0", "id": id, "result": res})
		return
	}
	c.AbortWithStatusJSON(http.StatusOK, rpcErrorBody(id, err))
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
// fast path echoes back verbatim); anything else goes to go-sdk.
// readBody reads the request body and puts it back for the handlers after
// this one. A body over the limit gets 413 and one that cannot be read
// 400; then the request is aborted and ok is false.
func readBody(c *gin.Context) (body []byte, ok bool) {
	body, err := io.ReadAll(c.Request.Body)
	c.Request.Body = io.NopCloser(bytes.NewReader(body))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": "request body too large"})
		} else {
			c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "reading request body failed"})
		}
		return nil, false
	}
	return body, true
}

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
