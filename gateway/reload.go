package gateway

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/mandate-gw/mandate/gateway/config"
)

// Reload builds a whole new state from cfg and swaps it in atomically. New
// requests use it at once; downstream sessions re-open upstream sessions
// lazily and are told that lists changed. On error the old state keeps
// serving. Keys that need a restart (server, identity, audit, telemetry)
// are reported in the returned warnings and otherwise ignored.
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
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			warnings = append(warnings, k.name+" changed: takes effect after a restart")
		}
	}
	warnings = append(warnings, cfg.Warnings()...)
	// Keep the parts that need a restart as they are.
	merged := *cfg
	merged.Server, merged.Identity, merged.Audit, merged.Telemetry = old.cfg.Server, old.cfg.Identity, old.cfg.Audit, old.cfg.Telemetry
	st, err := g.buildState(&merged, g.gen.Add(1))
	if err != nil {
		return warnings, err
	}
	if err := g.limiter.Update(merged.Policy.RateLimits); err != nil {
		st.close()
		return warnings, err
	}
	g.state.Store(st)
	// Old adapters finish in-flight calls, then close.
	grace := time.Duration(0)
	for _, u := range old.ups {
		grace = max(grace, u.cfg.Timeout)
	}
	time.AfterFunc(grace+time.Second, old.close)
	// Tell every stateful session its lists may have changed.
	g.sessions.Range(func(_, v any) bool {
		if d := v.(*dsession); d.ss != nil {
			for _, n := range []string{"notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"} {
				g.sendNotification(context.Background(), d.ss, n)
			}
		}
		return true
	})
	g.log.Info("configuration reloaded", "generation", st.gen, "upstreams", len(st.ups))
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

// requireAdmin checks the admin bearer token (constant time).
func (g *Gateway) requireAdmin(c *gin.Context) {
	want, err := g.adminToken()
	if err != nil || want == "" {
		c.AbortWithStatusJSON(http.StatusNotFound, gin.H{"error": "admin API disabled"})
		return
	}
	got := c.GetHeader("Authorization")
	if subtle.ConstantTimeCompare([]byte(got), []byte("Bearer "+want)) != 1 {
		c.Header("WWW-Authenticate", `Bearer realm="mandate-admin"`)
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": "unauthorized"})
		return
	}
	c.Next()
}

// purgeUser drops a revoked user's platform tokens, cached listings and
// open sessions. DELETE /admin/users/:subject[?issuer=...]
func (g *Gateway) purgeUser(c *gin.Context) {
	subject := c.Param("subject")
	issuer := c.DefaultQuery("issuer", g.cfg.Identity.Issuer)
	tokens := g.broker.Purge(issuer, subject)
	key := issuer + "\x00" + subject
	sessions := 0
	g.sessions.Range(func(_, v any) bool {
		d := v.(*dsession)
		if id := d.id.Load(); id != nil && id.Key() == key {
			sessions++
			if d.ss != nil {
				_ = d.ss.Close()
			}
			g.dropSession(d)
		}
		return true
	})
	for _, k := range g.catalog.c.Keys() {
		if k.user == key {
			g.catalog.c.Remove(k)
		}
	}
	g.auth.Forget(issuer, subject)
	g.log.Info("user purged", "issuer", issuer, "subject", subject, "tokens", tokens, "sessions", sessions)
	c.JSON(http.StatusOK, gin.H{"issuer": issuer, "subject": subject, "tokens_dropped": tokens, "sessions_closed": sessions})
}

// reloadHandler: POST /admin/reload re-reads the configuration file.
func (g *Gateway) reloadHandler(c *gin.Context) {
	if g.configPath == "" {
		c.AbortWithStatusJSON(http.StatusConflict, gin.H{"error": "no configuration file to reload"})
		return
	}
	warnings, err := g.ReloadFile(g.configPath)
	if err != nil {
		c.AbortWithStatusJSON(http.StatusUnprocessableEntity, gin.H{"error": fmt.Sprint(err)})
		return
	}
	c.JSON(http.StatusOK, gin.H{"reloaded": true, "warnings": warnings})
}
