package gateway

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/modelcontextprotocol/go-sdk/auth"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/gateway/front"
	"github.com/mandate-gw/mandate/internal/errtext"
	"github.com/mandate-gw/mandate/internal/identity"
)

// RequestIDHeader carries the request id in both directions.
const RequestIDHeader = front.RequestIDHeader

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
	g.authServerRoutes(r)
	g.connectRoutes(r)
	r.GET("/.well-known/oauth-protected-resource", g.protectedResourceMetadata)
	r.GET("/.well-known/oauth-protected-resource"+g.mcpPath(), g.protectedResourceMetadata)
	mcpH := gin.WrapH(g.mcpHandler)
	for _, m := range []string{http.MethodGet, http.MethodDelete, http.MethodOptions} {
		r.Handle(m, g.mcpPath(), g.front(g.authenticate, mcpH)...)
	}
	r.POST(g.mcpPath(), g.front(g.authenticate, g.admitSession, dispatch.ReadMessage, g.dispatch.Forward, mcpH)...)
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
	r.Use(front.Recovery(g.log), front.RequestID())
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

// front is the MCP endpoint's chain: the HTTP front's checks (session id,
// Host and Origin, body limit, routing to the replica holding the session),
// then the handlers.
func (g *Gateway) front(then ...gin.HandlerFunc) []gin.HandlerFunc {
	chain := []gin.HandlerFunc{front.CheckSessionID, g.origins().Check, front.LimitBody(g.cfg.Server.MaxBodyBytes, g.cfg.Server.ReadBodyTimeout)}
	if g.peers != nil {
		chain = append(chain, g.peers.Route(g.log))
	}
	return append(chain, then...)
}

// origins is what the MCP endpoint's Host and Origin checks accept.
func (g *Gateway) origins() *front.Origins {
	return &front.Origins{Origin: g.origin, PublicHost: g.publicHost, Allowed: g.cfg.Server.AllowedOrigins}
}

// mcpPath is the MCP endpoint path on this server: public_url's path + /mcp.
func (g *Gateway) mcpPath() string { return g.pathPrefix + MCPPath }

// authenticate verifies the bearer token and writes Mandate's own
// challenges (RFC 6750 / RFC 9728 / MCP authorization).
func (g *Gateway) authenticate(c *gin.Context) {
	if c.Request.Method == http.MethodOptions {
		c.Next()
		return
	}
	id, aerr := g.verifyBearer(c.Request.Context(), c.Request.Header.Values("Authorization"))
	if aerr != nil {
		g.challenge(c, aerr)
		return
	}
	in := dispatch.NewInbound(c.Request.Context(), c.Request.Header, id, c.GetString(RequestIDHeader))
	c.Request = c.Request.WithContext(dispatch.WithInbound(identity.NewContext(c.Request.Context(), id), in))
	c.Next()
}

func (g *Gateway) challenge(c *gin.Context, e *authn.Error) {
	if e.Status == http.StatusServiceUnavailable {
		c.Header("Retry-After", "5")
		c.AbortWithStatusJSON(e.Status, gin.H{"error": "temporarily_unavailable", "error_description": e.Description})
		return
	}
	c.Header("WWW-Authenticate", e.Challenge(g.resourceMetadataURL(), g.advertisedScopes()))
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
		AuthorizationServers:   g.authorizationServers(),
		ScopesSupported:        g.advertisedScopes(),
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
	if g.store != nil {
		// Reported, not gating: calls with tokens already verified keep
		// working while the database is away; sign-ins and refreshes fail.
		checks["storage"] = g.storageStatus(c.Request.Context())
	}
	ready := g.auth.Ready() && auditStatus == "ok"
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	// Upstream health is reported, not gating: one failing upstream must
	// not take the gateway out of rotation for every other upstream.
	c.JSON(status, gin.H{"ready": ready, "checks": checks, "upstreams": g.upstreamDetails()})
}

// tokenInfoBridge hands the identity Mandate verified to the go-sdk
// handler, which binds sessions to TokenInfo.UserID (another user's token on
// the session gets 403), and the inbound request to Mandate's handlers
// (req.Extra.TokenInfo). Verification already happened in authenticate;
// this never sees an unverified request.
func (g *Gateway) tokenInfoBridge(next http.Handler) http.Handler {
	return auth.RequireBearerToken(func(_ context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		in := dispatch.InboundFrom(r.Context())
		if in == nil || in.Identity() == nil {
			return nil, errors.Join(auth.ErrInvalidToken, errors.New("unauthenticated"))
		}
		id := in.Identity()
		return &auth.TokenInfo{
			UserID:     id.Key(),
			Scopes:     id.Scopes,
			Expiration: id.Expiry,
			Extra:      map[string]any{dispatch.InboundExtra: in},
		}, nil
	}, &auth.RequireBearerTokenOptions{ClockSkew: g.cfg.Identity.ClockSkew})(next)
}
