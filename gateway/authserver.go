package gateway

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/errtext"
	"github.com/mandate-gw/mandate/internal/identity"
)

// openStore opens the storage when the authorization server is enabled
// (the only part of Mandate that needs it today: sign-ins and per-user
// grants). It runs before the credentials broker is built, which keeps
// per-user grants in it.
func (g *Gateway) openStore(ctx context.Context, cfg *Config) error {
	if !cfg.AuthorizationServer.Enabled {
		return nil
	}
	st, err := store.Open(ctx, cfg.Storage)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	g.store = st
	return nil
}

// startAuthServer builds the authorization server and the connect pages
// when authorization_server is enabled (openStore opened the storage).
func (g *Gateway) startAuthServer(ctx context.Context, cfg *Config, opts Options) error {
	if g.store == nil {
		return nil
	}
	master, err := cfg.Storage.SealingKey()
	if err != nil {
		return fmt.Errorf("storage.encryption_keys: %w", err)
	}
	as, err := authserver.New(ctx, cfg.AuthorizationServer, authserver.Options{
		Issuer:     strings.TrimSuffix(cfg.Server.PublicURL, "/"),
		Resource:   cfg.MCPURL(),
		IdPIssuer:  cfg.Identity.Issuer,
		Auth:       g.auth,
		Identity:   cfg.Identity,
		Store:      g.store,
		Audit:      g.auditOAuth,
		Logger:     g.log,
		HTTPClient: opts.HTTPClient,
		StateKey:   purposeKey(master, "mandate authorization server state v1"),
	})
	if err != nil {
		return fmt.Errorf("authorization_server: %w", err)
	}
	g.authServer = as
	if err := g.startConnect(ctx, cfg, master); err != nil {
		g.authServer = nil
		return err
	}
	go as.Run(ctx)
	return nil
}

// purposeKey derives the 32-byte key of one purpose (what the
// authorization server, the connect pages or the dispatch round-trip
// through browsers and clients) from the storage's sealing key (HKDF-SHA256).
// Every replica configured alike derives the same keys, so any replica
// opens what another sealed.
func purposeKey(master []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, master, nil, purpose, 32)
	if err != nil { // only for a key length SHA-256 cannot produce
		panic(err)
	}
	return k
}

func (g *Gateway) closeStore() {
	if g.store != nil {
		_ = g.store.Close()
	}
}

// auditOAuth writes the authorization server's records (sign-ins,
// consents, tokens, reuse, revocations, registrations) into the chain.
func (g *Gateway) auditOAuth(ctx context.Context, r *audit.Record) {
	if err := g.audit.Log(ctx, r); err != nil {
		g.log.Error("audit record not written", "method", r.Method, "error", err)
	}
}

// authServerRoutes mounts the authorization server's endpoints: its
// metadata at the RFC 8414 well-known paths for an issuer with the public
// URL's path prefix (and the OpenID paths clients also probe), the rest
// under the prefix.
func (g *Gateway) authServerRoutes(r *gin.Engine) {
	if g.authServer == nil {
		return
	}
	for _, rt := range g.authServer.Routes() {
		handler := rt.Handler
		// The authorization server's records and limits see the client's
		// address as the rest of Mandate does: X-Forwarded-For only from
		// server.trusted_proxies.
		h := func(c *gin.Context) {
			c.Request.RemoteAddr = c.ClientIP()
			handler.ServeHTTP(c.Writer, c.Request)
		}
		switch rt.Path {
		case authserver.PathMetadata, authserver.PathOIDCMetadata:
			r.Handle(rt.Method, rt.Path+g.pathPrefix, h)
			if g.pathPrefix != "" && rt.Path == authserver.PathOIDCMetadata {
				r.Handle(rt.Method, g.pathPrefix+rt.Path, h)
			}
		default:
			r.Handle(rt.Method, g.pathPrefix+rt.Path, h)
		}
	}
}

// authorizationServers is authorization_servers of the protected resource
// metadata: Mandate itself when it is the authorization server, else the
// company IdP.
func (g *Gateway) authorizationServers() []string {
	if g.authServer != nil {
		return []string{strings.TrimSuffix(g.cfg.Server.PublicURL, "/")}
	}
	return []string{g.cfg.Identity.Issuer}
}

// advertisedScopes are scopes_supported of the protected resource metadata
// and the scope of challenges.
func (g *Gateway) advertisedScopes() []string {
	if g.authServer != nil {
		return g.authServer.Scopes()
	}
	return g.cfg.Identity.RequiredScopes
}

// verifyBearer authenticates a request's bearer token: a token Mandate
// issued (when it is the authorization server) is verified against its own
// keys and resolves to the user's IdP sign-in; any other token is verified
// as an IdP token, as before.
func (g *Gateway) verifyBearer(ctx context.Context, authorization []string) (*identity.Identity, *authn.Error) {
	if g.authServer != nil {
		tok, e := authn.BearerToken(authorization)
		if e != nil {
			return nil, e
		}
		if id, ok, e := g.authServer.VerifyAccessToken(ctx, tok); ok {
			return id, e
		}
	}
	return g.auth.Authenticate(ctx, authorization)
}

// storageStatus is the storage check of /readyz: "ok" or why not (without
// addresses: /readyz is unauthenticated).
func (g *Gateway) storageStatus(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := g.store.Ping(ctx); err != nil {
		return errtext.StripAddrs("unavailable: " + err.Error())
	}
	return "ok"
}
