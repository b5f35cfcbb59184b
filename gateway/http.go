package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/internal/errtext"
	"github.com/mandate-gw/mandate/internal/identity"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = "X-Request-Id"

func init() { gin.SetMode(gin.ReleaseMode) }

// routes builds the gin engines: the main one and, with
// server.admin_listen, the admin one (nil otherwise). Only this package
// imports gin.
func (g *Gateway) routes() (main, admin *gin.Engine) {
	r := g.newEngine()
	if g.cfg.Server.AdminListen == "" {
		g.adminRoutes(r)
	} else {
		admin = g.newEngine()
		g.adminRoutes(admin)
	}
	r.GET("/.well-known/oauth-protected-resource", g.protectedResourceMetadata)
	r.GET("/.well-known/oauth-protected-resource"+g.mcpPath(), g.protectedResourceMetadata)
	mcpH := gin.WrapH(g.mcpHandler)
	for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodOptions} {
		r.Handle(m, g.mcpPath(), g.checkSessionID, g.checkOrigin, g.limitBody, g.routeSession, g.authenticate, mcpH)
	}
	r.POST(g.mcpPath(), g.checkSessionID, g.checkOrigin, g.limitBody, g.routeSession, g.authenticate, g.admitSession, readMessage, g.fastPath, mcpH)
	return r, admin
}

// newEngine is a gin engine with Mandate's middleware, a JSON 404, the
// probes, and the client IP taken from X-Forwarded-For only when the
// connection's peer is one of server.trusted_proxies (gin trusts every
// peer by default, so anyone could choose the IP logs and audit show).
func (g *Gateway) newEngine() *gin.Engine {
	r := gin.New()
	r.ContextWithFallback = true
	r.RemoteIPHeaders = []string{"X-Forwarded-For"}
	// Validate checked every entry; nil trusts no peer.
	_ = r.SetTrustedProxies(g.cfg.Server.TrustedProxies)
	r.Use(g.recovery(), requestID())
	r.NoRoute(func(c *gin.Context) { c.JSON(http.StatusNotFound, gin.H{"error": "not found"}) })
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", g.readyz)
	return r
}

// adminRoutes adds /metrics and /admin/ to r.
func (g *Gateway) adminRoutes(r *gin.Engine) {
	if g.metricsHandler != nil {
		r.GET("/metrics", gin.WrapH(g.metricsHandler))
	}
	admin := r.Group("/admin", g.requireAdmin)
	admin.DELETE("/users/*subject", g.purgeUser) // subjects may contain "/"
	admin.POST("/reload", g.reloadHandler)
}

// mcpPath is the MCP endpoint path on this server: public_url's path + /mcp.
func (g *Gateway) mcpPath() string { return g.pathPrefix + MCPPath }

func (g *Gateway) recovery() gin.HandlerFunc {
	return func(c *gin.Context) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				// Never log request headers: they hold bearer tokens.
				g.log.Error("panic serving request", "method", c.Request.Method, "path", c.Request.URL.Path,
					"request_id", c.GetString(RequestIDHeader), "panic", rec, "stack", string(debug.Stack()))
				if !c.Writer.Written() {
					c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "internal error"})
				} else {
					c.Abort()
				}
			}
		}()
		c.Next()
	}
}

// requestID accepts a sane incoming X-Request-Id or makes one, and echoes it.
func requestID() gin.HandlerFunc {
	return func(c *gin.Context) {
		id := c.GetHeader(RequestIDHeader)
		if !validRequestID(id) {
			var b [12]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		c.Set(RequestIDHeader, id)
		c.Header(RequestIDHeader, id)
		c.Next()
	}
}

func validRequestID(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// maxSessionIDLen bounds Mcp-Session-Id. go-sdk's ids are 26 characters;
// with peer routing an id carries the owner's sealed peer URL: 3 + 4/3 ×
// (44 + len(peer_url)) characters (131 for an IPv6 pod URL), so
// server.session.peer_url is limited to maxPeerURLLen.
const (
	maxSessionIDLen = 256
	maxPeerURLLen   = 140
)

// checkSessionID refuses a malformed Mcp-Session-Id before anything else
// (authentication, audit): session ids are visible ASCII (0x21-0x7E), at
// most maxSessionIDLen bytes, one value. An empty value counts as absent.
func (g *Gateway) checkSessionID(c *gin.Context) {
	vals := c.Request.Header.Values("Mcp-Session-Id")
	if len(vals) == 0 || len(vals) == 1 && vals[0] == "" {
		return
	}
	if len(vals) == 1 && validSessionID(vals[0]) {
		return
	}
	c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"jsonrpc": "2.0", "id": nil, "error": gin.H{
		"code":    jsonrpc.CodeInvalidRequest,
		"message": fmt.Sprintf("invalid Mcp-Session-Id header: want one value of 1-%d visible ASCII characters", maxSessionIDLen),
	}})
}

func validSessionID(s string) bool {
	if s == "" || len(s) > maxSessionIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkOrigin enforces server.allowed_origins (CSRF protection for browser
// clients) and refuses DNS rebinding. Requests without Origin (non-browser
// clients), same-origin requests and the origin of public_url pass. On a
// loopback connection the Host must be a loopback name or public_url's
// host: a hostile name resolving to 127.0.0.1 is refused, while a sidecar
// or local proxy forwarding the public Host still works.
func (g *Gateway) checkOrigin(c *gin.Context) {
	if !g.hostAllowed(c.Request) {
		c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "invalid Host header"})
		return
	}
	o := c.GetHeader("Origin")
	if o == "" || o == g.origin || slices.Contains(g.cfg.Server.AllowedOrigins, o) || sameOrigin(o, c.Request) {
		c.Next()
		return
	}
	c.AbortWithStatusJSON(http.StatusForbidden, gin.H{"error": "origin not allowed"})
}

func (g *Gateway) hostAllowed(r *http.Request) bool {
	la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	if !ok {
		return true
	}
	ta, ok := la.(*net.TCPAddr)
	if !ok || !ta.IP.IsLoopback() {
		return true
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") || strings.EqualFold(host, g.publicHost) {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// sameOrigin reports whether origin names the host the request was sent to.
func sameOrigin(origin string, r *http.Request) bool {
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

func (g *Gateway) limitBody(c *gin.Context) {
	if c.Request.ContentLength > g.cfg.Server.MaxBodyBytes {
		c.AbortWithStatusJSON(http.StatusRequestEntityTooLarge, gin.H{"error": "request body too large"})
		return
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, g.cfg.Server.MaxBodyBytes)
	// A body sent byte by byte must not hold a connection: the read deadline
	// is lifted at the body's end only (an unread rest, discarded by the
	// server after the answer, stays bounded by it).
	if t := g.cfg.Server.ReadBodyTimeout; t > 0 && c.Request.Method == http.MethodPost {
		rc := http.NewResponseController(c.Writer)
		if rc.SetReadDeadline(time.Now().Add(t)) == nil {
			c.Request.Body = &deadlineBody{ReadCloser: c.Request.Body, rc: rc, left: c.Request.ContentLength}
		}
	}
	c.Next()
}

// deadlineBody lifts the connection's read deadline when the body ends:
// at EOF, or once Content-Length bytes are in (a reader that knows the
// length, such as the peer-forwarding proxy, never asks for the EOF).
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	left int64 // bytes still expected; -1: unknown length
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.left >= 0 {
		b.left -= int64(n)
	}
	if !b.done && (err == io.EOF || b.left == 0) {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// authenticate verifies the bearer token and writes Mandate's own
// challenges (RFC 6750 / RFC 9728 / MCP authorization).
func (g *Gateway) authenticate(c *gin.Context) {
	if c.Request.Method == http.MethodOptions {
		c.Next()
		return
	}
	id, aerr := g.auth.Authenticate(c.Request.Context(), c.Request.Header.Values("Authorization"))
	if aerr != nil {
		g.challenge(c, aerr)
		return
	}
	in := &inbound{ctx: c.Request.Context(), header: c.Request.Header, id: id, requestID: c.GetString(RequestIDHeader)}
	c.Request = c.Request.WithContext(context.WithValue(identity.NewContext(c.Request.Context(), id), inboundKey{}, in))
	c.Next()
}

func (g *Gateway) challenge(c *gin.Context, e *authn.Error) {
	if e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
		c.AbortWithStatusJSON(e.Status, gin.H{"error": "temporarily_unavailable", "error_description": e.Description})
		return
	}
	c.Header("WWW-Authenticate", e.Challenge(g.resourceMetadataURL(), g.cfg.Identity.RequiredScopes))
	body := gin.H{"error": e.Code, "error_description": e.Description}
	if e.Code == "" {
		body["error"] = "unauthorized"
	}
	g.log.Info("authentication failed", "request_id", c.GetString(RequestIDHeader), "status", e.Status,
		"error", e.Code, "reason", e.Description, "remote", c.ClientIP())
	if g.onAuthFailure != nil {
		g.onAuthFailure(c.Request, e, c.GetString(RequestIDHeader), c.ClientIP())
	}
	c.AbortWithStatusJSON(e.Status, body)
}

// resourceMetadataURL is the RFC 9728 metadata URL for the MCP endpoint.
func (g *Gateway) resourceMetadataURL() string {
	return g.origin + "/.well-known/oauth-protected-resource" + g.mcpPath()
}

// ProtectedResourceMetadata is the RFC 9728 document.
type ProtectedResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceSigningAlgs    []string `json:"resource_signing_alg_values_supported,omitempty"`
}

func (g *Gateway) protectedResourceMetadata(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, ProtectedResourceMetadata{
		Resource:               g.cfg.MCPURL(),
		AuthorizationServers:   []string{g.cfg.Identity.Issuer},
		ScopesSupported:        g.cfg.Identity.RequiredScopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "Mandate MCP gateway",
	})
}

func (g *Gateway) readyz(c *gin.Context) {
	// The audit sink gates readiness: while it cannot write, operations
	// are refused, so traffic is better sent to another replica.
	auditStatus := g.audit.Status()
	// /readyz is unauthenticated: no internal addresses in what it shows.
	checks := map[string]string{"identity_provider": errtext.StripAddrs(g.auth.Status()), "audit": auditStatus}
	ready := g.auth.Ready() && auditStatus == "ok"
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	// Upstream health is reported, not gating: one failing upstream must
	// not take the gateway out of rotation for every other upstream.
	c.JSON(status, gin.H{"ready": ready, "checks": checks, "upstreams": g.upstreamDetails()})
}

// inbound is what the HTTP front knows about one authenticated request to
// the MCP endpoint: the verified identity, the request id, the HTTP
// request's context (done when the client goes away) and, for a POST, the
// message, read and decoded once. It reaches go-sdk's handler through
// TokenInfo.Extra, go-sdk's per-request channel (tokenInfoBridge), and the
// forwarding path through the request's context.
type inbound struct {
	ctx       context.Context
	header    http.Header
	id        *identity.Identity
	requestID string
	body      []byte
	env       *envelope // nil when the body is not one JSON-RPC object
}

type inboundKey struct{}

// envelope is a JSON-RPC message with its params kept raw.
type envelope struct {
	JSONRPC string                     `json:"jsonrpc"`
	ID      json.RawMessage            `json:"id"`
	Method  string                     `json:"method"`
	Params  map[string]json.RawMessage `json:"params"`
}

// rpcID is the message's JSON-RPC id as text (spans), "" when it has none
// or an odd one.
func (in *inbound) rpcID() string {
	if in == nil || in.env == nil || !plainID(in.env.ID) {
		return ""
	}
	return strings.Trim(string(in.env.ID), `"`)
}

func inboundOfGin(c *gin.Context) *inbound {
	in, _ := c.Request.Context().Value(inboundKey{}).(*inbound)
	return in
}

// inboundOf returns the inbound request of one go-sdk request.
func inboundOf(req mcp.Request) *inbound {
	ex := req.GetExtra()
	if ex == nil || ex.TokenInfo == nil {
		return nil
	}
	in, _ := ex.TokenInfo.Extra[inboundExtra].(*inbound)
	return in
}

// readMessage reads a POST's body once (bounded by limitBody) and decodes
// its envelope once, for the forwarding path and spans; go-sdk reads the
// same bytes from memory.
func readMessage(c *gin.Context) {
	in := inboundOfGin(c)
	if in == nil {
		return
	}
	body, ok := readBody(c)
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
func requestScoped(ctx context.Context, in *inbound) (_ context.Context, stop func()) {
	if in == nil || in.ctx == nil {
		return ctx, func() {}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	unhook := context.AfterFunc(in.ctx, func() { cancel(errClientGone) })
	return ctx, func() { unhook(); cancel(nil) }
}

// errClientGone is the cause of a call cancelled because its client left.
var errClientGone = errors.New("the client closed the request")

// tokenInfoBridge hands the identity Mandate verified to the go-sdk
// handler, which binds sessions to TokenInfo.UserID (another user's token on
// the session gets 403), and the inbound request to Mandate's handlers
// (req.Extra.TokenInfo). Verification already happened in authenticate;
// this never sees an unverified request.
func (g *Gateway) tokenInfoBridge(next http.Handler) http.Handler {
	return auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		in, _ := r.Context().Value(inboundKey{}).(*inbound)
		if in == nil || in.id == nil {
			return nil, errors.Join(auth.ErrInvalidToken, errors.New("unauthenticated"))
		}
		return &auth.TokenInfo{
			UserID:     in.id.Key(),
			Scopes:     in.id.Scopes,
			Expiration: in.id.Expiry,
			Extra:      map[string]any{inboundExtra: in},
		}, nil
	}, &auth.RequireBearerTokenOptions{ClockSkew: g.cfg.Identity.ClockSkew})(next)
}

const inboundExtra = "mandate.inbound"
