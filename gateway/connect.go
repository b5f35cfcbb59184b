package gateway

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"strings"

	"github.com/gin-gonic/gin"

	connectpages "github.com/mandate-gw/mandate/gateway/connect"
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
	// Its own key, derived like the authorization server's.
	key, err := hkdf.Key(sha256.New, master, nil, "mandate connect state v1", 32)
	if err != nil {
		return err
	}
	svc, err := connectpages.New(ctx, connectpages.Options{
		Issuer:    strings.TrimSuffix(cfg.Server.PublicURL, "/"),
		Auth:      g.authServer,
		Connector: g.connector,
		Upstreams: g.grantUpstreams,
		Store:     g.store,
		OnChange:  g.grantChanged,
		Audit:     g.auditOAuth,
		Logger:    g.log,
		StateKey:  key,
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
// TODO(grantflow): the flow's Connector per upstream from the broker.
func (g *Gateway) connector(upstream string) (credentials.Connector, bool) {
	return nil, false
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
// replica. upstream "" means all of them.
// TODO(grantflow): Broker.PurgeUpstream(issuer, subject, upstream) when upstream != "".
func (g *Gateway) grantChanged(issuer, subject, upstream string) {
	if issuer == "" && subject == "" {
		// Notifications were lost. TODO(grantflow): purge every per-user
		// grant token (the broker has no such purge yet); until then they
		// live until they expire.
		g.log.Warn("grant change notifications may have been lost; cached platform tokens of per-user grants live until they expire")
		return
	}
	g.broker.Purge(issuer, subject)
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
}

// connectUserPurged tells every replica that an admin purged a user (their
// grants are gone from the store with RevokeUser): they drop the user's
// cached platform tokens.
func (g *Gateway) connectUserPurged(ctx context.Context, issuer, subject string) {
	if g.connect != nil {
		g.connect.UserRemoved(ctx, issuer, subject)
	}
}
