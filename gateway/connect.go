package gateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mandate-gw/mandate/gateway/audit"
	connectpages "github.com/mandate-gw/mandate/gateway/connect"
	grantstore "github.com/mandate-gw/mandate/gateway/grants"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// FlowAuthorizationCode is the credential flow of per-user grants (the
// user's own consent at the platform): it needs the authorization server
// (the connect pages sign the user in through it) and the storage.
const FlowAuthorizationCode = "authorization_code"

// startConnect builds the connect pages (per-user grants: the link a call
// answers with, the platform's callback, My connections) beside the
// authorization server, and listens for grant changes from other replicas.
func (g *Gateway) startConnect(ctx context.Context, cfg *Config, master []byte) error {
	svc, err := connectpages.New(ctx, connectpages.Options{
		Issuer:    strings.TrimSuffix(cfg.Server.PublicURL, "/"),
		Auth:      g.authServer,
		Connector: g.connector,
		Upstreams: g.grantUpstreams,
		Store:     g.store,
		OnChange:  g.grantChanged,
		Audit:     g.auditOAuth,
		Logger:    g.log,
		StateKey:  purposeKey(master, "mandate connect state v1"),
	})
	if err != nil {
		return fmt.Errorf("connect pages: %w", err)
	}
	g.connect = svc
	go svc.Run(ctx)
	return nil
}

// connector returns the Connector of an upstream whose flow is
// authorization_code in the configuration in force.
func (g *Gateway) connector(upstream string) (credentials.Connector, bool) {
	return g.broker.Connector(upstream)
}

// brokerOptions are the credentials broker's: per-user grants live in the
// storage (when the authorization server is on); the platforms send the
// user back to the connect callback; Mandate's client metadata document
// (for platforms that accept them) is served by the gateway.
func (g *Gateway) brokerOptions(cfg *Config, opts Options) credentials.BrokerOptions {
	bo := credentials.BrokerOptions{
		HTTPClient:     &http.Client{Transport: g.upTrans, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		Logger:         opts.Logger,
		TracerProvider: g.tel.tp,
		OnExchange:     g.tel.onExchange,
	}
	if g.store != nil {
		bo.OnGrantRefresh = g.auditGrantRefresh
		gs := grantstore.Store{S: g.store}
		base := strings.TrimSuffix(cfg.Server.PublicURL, "/")
		bo.Grants, bo.Clients = gs, gs
		bo.RedirectURL = base + connectpages.PathCallback
		bo.ClientMetadataURL = base + PathClientMetadata
		bo.ClientName = "Mandate"
	}
	return bo
}

// PathClientMetadata is where Mandate publishes its own client ID metadata
// document, the client_id it uses at platform authorization servers that
// accept metadata documents (per-user grants with discover).
const PathClientMetadata = "/connect/client-metadata.json"

// clientMetadata serves Mandate's client ID metadata document.
func (g *Gateway) clientMetadata(c *gin.Context) {
	base := strings.TrimSuffix(g.cfg.Server.PublicURL, "/")
	c.Header("Cache-Control", "public, max-age=3600")
	c.JSON(http.StatusOK, gin.H{
		"client_id":                  base + PathClientMetadata,
		"client_name":                "Mandate",
		"client_uri":                 base,
		"redirect_uris":              []string{base + connectpages.PathCallback},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
}

// grantUpstreams lists the upstreams of the configuration in force that
// use per-user grants (My connections shows them).
func (g *Gateway) grantUpstreams() []string {
	st := g.state.Load()
	if st == nil {
		return nil
	}
	var out []string
	for _, u := range st.cfg.Upstreams {
		if u.Credentials.Flow == FlowAuthorizationCode {
			out = append(out, u.Name)
		}
	}
	return out
}

// grantChanged drops this replica's cached platform tokens of a user whose
// grant changed (connected, disconnected, or the user was purged) on any
// replica. upstream "" means all of them; an empty user means that
// notifications may have been lost: every per-user grant upstream's
// cached tokens are dropped (they are re-read from the storage).
func (g *Gateway) grantChanged(issuer, subject, upstream string) {
	switch {
	case issuer == "" && subject == "":
		n := 0
		for _, u := range g.grantUpstreams() {
			n += g.broker.PurgeUpstreamAll(u)
		}
		g.log.Warn("grant change notifications may have been lost: dropped the cached tokens of per-user grants", "tokens", n)
	case upstream == "":
		g.broker.Purge(issuer, subject)
	default:
		g.broker.PurgeUpstream(issuer, subject, upstream)
	}
}

// connectRoutes mounts the connect pages under the public URL's prefix.
func (g *Gateway) connectRoutes(r *gin.Engine) {
	if g.connect == nil {
		return
	}
	for _, rt := range g.connect.Routes() {
		handler := rt.Handler
		r.Handle(rt.Method, g.pathPrefix+rt.Path, func(c *gin.Context) {
			c.Request.RemoteAddr = c.ClientIP()
			handler.ServeHTTP(c.Writer, c.Request)
		})
	}
	r.GET(g.pathPrefix+PathClientMetadata, g.clientMetadata)
}

// connectUserPurged tells every replica that an admin purged a user (their
// grants are gone from the store with RevokeUser): they drop the user's
// cached platform tokens.
func (g *Gateway) connectUserPurged(ctx context.Context, issuer, subject string) {
	if g.connect != nil {
		g.connect.UserRemoved(ctx, issuer, subject)
	}
}

// auditGrantRefresh records a refresh of a user's grant at a platform in
// the audit chain: renewed, or refused (the grant is broken and the user
// will be asked to connect again).
func (g *Gateway) auditGrantRefresh(ctx context.Context, e credentials.GrantRefresh) {
	r := &audit.Record{Time: time.Now().Add(-e.Duration), Method: audit.MethodConnectRefresh, Upstream: e.Upstream,
		User:       audit.UserRef{Issuer: e.Issuer, Subject: e.Subject},
		Credential: &audit.CredentialRef{Flow: credentials.FlowAuthorizationCode, PlatformSubject: e.PlatformSubject},
		Outcome:    audit.OutcomeOK, LatencyMS: float64(e.Duration.Microseconds()) / 1000}
	if e.Broken {
		r.Outcome, r.ErrorClass, r.Error = audit.OutcomeError, "grant_broken", e.Reason
	}
	g.auditOAuth(ctx, r)
}
