package gateway

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/config"
)

// Reload builds a whole new state from cfg and swaps it in atomically. New
// requests use it at once; downstream sessions re-open upstream sessions
// lazily and are told that lists changed. On error the old state keeps
// serving. Keys that need a restart (server, identity, audit, telemetry,
// authorization_server, storage) are reported in the returned warnings and
// otherwise ignored.
func (g *Gateway) Reload(cfg *Config) (warnings []string, err error) {
	g.reloadMu.Lock()
	defer g.reloadMu.Unlock()
	old := g.state.Load()
	for _, k := range []struct {
		name     string
		old, new any
	}{
		{"server", old.cfg.Server, cfg.Server},
		{"identity", old.cfg.Identity, cfg.Identity},
		{"audit", old.cfg.Audit, cfg.Audit},
		{"telemetry", old.cfg.Telemetry, cfg.Telemetry},
		{"authorization_server", old.cfg.AuthorizationServer, cfg.AuthorizationServer},
		{"storage", old.cfg.Storage, cfg.Storage},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			warnings = append(warnings, k.name+" changed: takes effect after a restart")
		}
	}
	warnings = append(warnings, cfg.Warnings()...)
	// Keep the parts that need a restart as they are.
	merged := *cfg
	merged.Server, merged.Identity, merged.Audit, merged.Telemetry = old.cfg.Server, old.cfg.Identity, old.cfg.Audit, old.cfg.Telemetry
	merged.AuthorizationServer, merged.Storage = old.cfg.AuthorizationServer, old.cfg.Storage
	st, err := g.buildState(&merged, g.gen.Add(1))
	if err != nil {
		return warnings, err
	}
	if err := g.limiter.Update(merged.Policy.RateLimits); err != nil {
		st.Close()
		return warnings, err
	}
	g.state.Store(st)
	// Old adapters finish in-flight calls, then close.
	grace := time.Duration(0)
	for _, u := range old.Ups {
		grace = max(grace, u.Cfg.Timeout)
	}
	time.AfterFunc(grace+time.Second, old.Close)
	// Tell every stateful session its lists may have changed.
	g.sessions.NotifyListsChanged()
	g.log.Info("configuration reloaded", "generation", st.Gen, "upstreams", len(st.Ups))
	return warnings, nil
}

// ReloadFile loads, validates and applies a configuration file.
func (g *Gateway) ReloadFile(path string) ([]string, error) {
	cfg, err := LoadConfig(path)
	if err != nil {
		return nil, err
	}
	return g.Reload(cfg)
}

// adminToken is the admin API token, from admin.token or admin.token_file.
func (g *Gateway) adminToken() (string, error) {
	a := g.state.Load().cfg.Admin
	if !a.Token.IsZero() {
		return a.Token.Reveal(), nil
	}
	if a.TokenFile != "" {
		return config.ReadSecretFile(a.TokenFile)
	}
	return "", nil
}

// requireAdmin checks the admin bearer token (constant time). A refused
// request is audited like an authentication failure (rate-limited per
// address).
func (g *Gateway) requireAdmin(c *gin.Context) {
	want, err := g.adminToken()
	if err != nil || want == "" {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "admin API disabled"})
		return
	}
	got := c.GetHeader("Authorization")
	if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+want)) != 1 {
		if remote := c.ClientIP(); g.authAudit.Allow(remote) {
			g.offer(c.Request.Context(), &audit.Record{RequestID: c.GetString(RequestIDHeader), Method: audit.MethodAuth,
				RemoteAddr: remote, Outcome: audit.OutcomeUnauthenticated, ErrorClass: "admin_unauthorized",
				Error: c.Request.Method + " " + c.Request.URL.Path + ": wrong or missing admin token"})
		}
		c.Header("WWW-Authenticate", `Bearer realm="mandate-admin"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "unauthorized"})
		return
	}
	c.Next()
}

// adminUser is the audit identity of admin API calls: one shared bearer
// token (admin.token) identifies no person, so the records carry the
// caller's address too.
var adminUser = audit.UserRef{Subject: "admin"}

// auditAdmin records an admin action (Log: the action has happened).
func (g *Gateway) auditAdmin(ctx context.Context, rec *audit.Record) {
	if err := g.audit.Log(context.WithoutCancel(ctx), rec); err != nil {
		// Admin actions run even while the audit sink fails (a purge must
		// not be blocked by a full disk); the record stays queued.
		g.log.Error("audit record of an admin action not written yet", "method", rec.Method, "error", err.Error())
	}
}

// purgeUser drops a revoked user's platform tokens, cached listings and
// open sessions. DELETE /admin/users/{subject}[?issuer=...]; the subject
// is the rest of the path, so it may contain "/" (raw or escaped as %2F).
func (g *Gateway) purgeUser(c *gin.Context) {
	start := time.Now()
	subject := strings.TrimPrefix(c.Param("subject"), "/")
	if subject == "" {
		c.AbortWithStatusJSON(http.StatusBadRequest, gin.H{"error": "missing subject: DELETE /admin/users/{subject}"})
		return
	}
	issuer := c.DefaultQuery("issuer", g.cfg.Identity.Issuer)
	key := issuer + "\x00" + subject
	// Listings first: none fetched across this point is cached later.
	g.catalog.Purge(key)
	tokens := g.broker.Purge(issuer, subject)
	sessions := g.sessions.CloseUser(key)
	g.auth.Forget(issuer, subject)
	if g.authServer != nil {
		// Mandate-issued tokens and refresh tokens of the user stop working
		// on every replica (the revocation is in the shared store).
		if err := g.authServer.RevokeUser(c.Request.Context(), issuer, subject); err != nil {
			g.log.Error("user purge: revoking the user's sign-ins failed", "issuer", issuer, "subject", subject, "error", err)
			c.AbortWithStatusJSON(http.StatusInternalServerError, gin.H{"error": "revoking the user's sign-ins failed; retry"})
			return
		}
		g.connectUserPurged(c.Request.Context(), issuer, subject)
	}
	g.log.Info("user purged", "issuer", issuer, "subject", subject, "tokens", tokens, "sessions", sessions, "remote", c.ClientIP())
	g.auditAdmin(c.Request.Context(), &audit.Record{Time: start, RequestID: c.GetString(RequestIDHeader), User: adminUser,
		RemoteAddr: c.ClientIP(), Method: "admin/purge_user", Target: &audit.UserRef{Issuer: issuer, Subject: subject},
		Outcome: audit.OutcomeOK, LatencyMS: float64(time.Since(start).Microseconds()) / 1000})
	c.JSON(http.StatusOK, gin.H{"issuer": issuer, "subject": subject, "tokens_dropped": tokens, "sessions_closed": sessions})
}

// reloadHandler: POST /admin/reload re-reads the configuration file.
func (g *Gateway) reloadHandler(c *gin.Context) {
	if g.configPath == "" {
		c.AbortWithStatusJSON(http.StatusConflict, gin.H{"error": "no configuration file to reload"})
		return
	}
	warnings, err := g.reloadAudited(c.Request.Context(), "admin API", c.ClientIP(), c.GetString(RequestIDHeader))
	if err != nil {
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, gin.H{"error": fmt.Sprint(err)})
		return
	}
	c.JSON(http.StatusOK, gin.H{"reloaded": true, "warnings": warnings})
}

// reloadAudited reloads the configuration file and records it in the audit
// chain: who asked (trigger: "admin API", "SIGHUP", "file change"; the
// caller's address for the admin API) and whether it was applied.
func (g *Gateway) reloadAudited(ctx context.Context, trigger, remote, requestID string) ([]string, error) {
	start := time.Now()
	warnings, err := g.ReloadFile(g.configPath)
	rec := &audit.Record{Time: start, RequestID: requestID, User: adminUser, RemoteAddr: remote, Client: trigger,
		Method: "admin/reload", Outcome: audit.OutcomeOK, LatencyMS: float64(time.Since(start).Microseconds()) / 1000}
	if err != nil {
		rec.Outcome, rec.ErrorClass, rec.Error = audit.OutcomeError, "config_rejected", err.Error()
	} else if len(warnings) > 0 {
		rec.Error = strings.Join(warnings, "; ")
	}
	g.auditAdmin(ctx, rec)
	return warnings, err
}
