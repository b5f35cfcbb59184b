package gateway

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Session caps (stateful mode; the per-user index is in package sessions). A session costs memory and, once used,
// one upstream session per upstream; one token must not be able to open
// thousands. Per user, opening one more than server.session.max_per_user
// closes that user's least recently used session (its client gets 404 on
// its next request and, as the spec says, starts a new session): a user
// is never locked out by their own stale sessions. Per replica, beyond
// server.session.max_total a new session is refused with 503 and
// Retry-After before it is created.

// sessionCapRetryAfter is the Retry-After of a refused new session.
const sessionCapRetryAfter = 30

// admitSession refuses a request that would open a new stateful session
// (a POST without Mcp-Session-Id) while this replica is at
// server.session.max_total.
func (g *Gateway) admitSession(c *gin.Context) {
	if g.stateless || c.GetHeader("Mcp-Session-Id") != "" || g.sessions.Count() < int64(g.cfg.Server.Session.MaxTotal) {
		return
	}
	g.log.Warn("session refused: this replica is at server.session.max_total", "max_total", g.cfg.Server.Session.MaxTotal)
	c.Header("Retry-After", strconv.Itoa(sessionCapRetryAfter))
	c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"jsonrpc": "2.0", "id": nil,
		"error": gin.H{"code": -32000, "message": "Mandate is at its session limit; retry later"}})
}
