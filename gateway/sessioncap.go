package gateway

import (
	"net/http"
	"strconv"
	"sync"

	"github.com/gin-gonic/gin"
)

// Session caps (stateful mode). A session costs memory and, once used,
// one upstream session per upstream; one token must not be able to open
// thousands. Per user, opening one more than server.session.max_per_user
// closes that user's least recently used session (its client gets 404 on
// its next request and, as the spec says, starts a new session): a user
// is never locked out by their own stale sessions. Per replica, beyond
// server.session.max_total a new session is refused with 503 and
// Retry-After before it is created.

// sessionCapRetryAfter is the Retry-After of a refused new session.
const sessionCapRetryAfter = 30

// userSessions indexes stateful sessions by user.
type userSessions struct {
	mu sync.Mutex
	m  map[string]map[*dsession]struct{}
}

// add registers d for user and returns the sessions of that user to close
// to stay within max (the least recently used, never d itself).
func (us *userSessions) add(user string, d *dsession, max int) []*dsession {
	us.mu.Lock()
	defer us.mu.Unlock()
	if us.m == nil {
		us.m = map[string]map[*dsession]struct{}{}
	}
	set := us.m[user]
	if set == nil {
		set = map[*dsession]struct{}{}
		us.m[user] = set
	}
	set[d] = struct{}{}
	var evict []*dsession
	for len(set) > max {
		var lru *dsession
		for o := range set {
			if o != d && (lru == nil || o.lastUsed.Load() < lru.lastUsed.Load()) {
				lru = o
			}
		}
		if lru == nil {
			break
		}
		delete(set, lru)
		evict = append(evict, lru)
	}
	return evict
}

func (us *userSessions) remove(user string, d *dsession) {
	us.mu.Lock()
	defer us.mu.Unlock()
	if set := us.m[user]; set != nil {
		delete(set, d)
		if len(set) == 0 {
			delete(us.m, user)
		}
	}
}

func (us *userSessions) count(user string) int {
	us.mu.Lock()
	defer us.mu.Unlock()
	return len(us.m[user])
}

// admitSession refuses a request that would open a new stateful session
// (a POST without Mcp-Session-Id) while this replica is at
// server.session.max_total.
func (g *Gateway) admitSession(c *gin.Context) {
	if g.stateless || c.GetHeader("Mcp-Session-Id") != "" || g.sessionCount.Load() < int64(g.cfg.Server.Session.MaxTotal) {
		return
	}
	g.log.Warn("session refused: this replica is at server.session.max_total", "max_total", g.cfg.Server.Session.MaxTotal)
	c.Header("Retry-After", strconv.Itoa(sessionCapRetryAfter))
	c.AbortWithStatusJSON(http.StatusServiceUnavailable, gin.H{"jsonrpc": "2.0", "id": nil,
		"error": gin.H{"code": -32000, "message": "Mandate is at its session limit; retry later"}})
}
