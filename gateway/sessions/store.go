package sessions

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/catalog"
)

// Options configure a Store.
type Options struct {
	// Stateless: every request is its own go-sdk session; the Store keeps
	// one Session per (user, protocol revision) and reaps it when idle.
	Stateless bool
	// IdleTimeout is server.session.idle_timeout.
	IdleTimeout time.Duration
	// MaxPerUser is server.session.max_per_user (stateful).
	MaxPerUser int
	Logger     *slog.Logger
	// Catalog is told when an upstream says a list changed.
	Catalog *catalog.Cache
}

// Store holds the sessions of one gateway.
type Store struct {
	m          sync.Map // key → *Session
	count      atomic.Int64
	byUser     userSessions
	stateless  bool
	idle       time.Duration
	maxPerUser int
	log        *slog.Logger
	catalog    *catalog.Cache

	// sendHandler is go-sdk's sending path, for notifications to one
	// session (SetSender).
	sendHandler mcp.MethodHandler
}

// NewStore returns an empty store.
func NewStore(o Options) *Store {
	return &Store{stateless: o.Stateless, idle: o.IdleTimeout, maxPerUser: o.MaxPerUser, log: o.Logger, catalog: o.Catalog}
}

// SetSender captures go-sdk's sending path (sending middleware), through
// which per-session notifications are sent.
func (g *Store) SetSender(h mcp.MethodHandler) { g.sendHandler = h }

// Lookup returns the stateful session with Mcp-Session-Id sid.
func (g *Store) Lookup(sid string) (*Session, bool) {
	v, ok := g.m.Load("sid:" + sid)
	if !ok {
		return nil, false
	}
	return v.(*Session), true
}

// Range calls f for every session until it returns false.
func (g *Store) Range(f func(*Session) bool) {
	g.m.Range(func(_, v any) bool { return f(v.(*Session)) })
}

// Count is the number of sessions.
func (g *Store) Count() int64 { return g.count.Load() }

// UserCount is the number of stateful sessions of user (an identity key).
func (g *Store) UserCount(user string) int { return g.byUser.count(user) }

// Users are the identity keys with stateful sessions.
func (g *Store) Users() []string {
	g.byUser.mu.Lock()
	defer g.byUser.mu.Unlock()
	out := make([]string, 0, len(g.byUser.m))
	for k := range g.byUser.m {
		out = append(out, k)
	}
	return out
}

// CloseAll drops every session (shutdown).
func (g *Store) CloseAll() {
	g.Range(func(d *Session) bool {
		g.Drop(d)
		return true
	})
}

// CloseUser closes every session of user (an identity key) at once for
// calls, and in the background its upstream sessions and go-sdk session;
// it returns how many there were.
func (g *Store) CloseUser(user string) int {
	n := 0
	g.Range(func(d *Session) bool {
		if id := d.id.Load(); id != nil && id.Key() == user {
			n++
			g.closeNow(d)
		}
		return true
	})
	return n
}

// NotifyListsChanged tells every stateful session that its lists may have
// changed (after a reload).
func (g *Store) NotifyListsChanged() {
	g.Range(func(d *Session) bool {
		if d.ss != nil {
			for _, n := range []string{"notifications/tools/list_changed", "notifications/prompts/list_changed", "notifications/resources/list_changed"} {
				g.Notify(context.Background(), d.ss, n)
			}
		}
		return true
	})
}

// closeNow closes d for calls at once (its next request is refused: an
// eviction or a purge means it), then for good in the background. Closing
// a go-sdk session waits for its requests in flight: the upstream sessions
// close first (they end those requests), and the caller waits for neither.
func (g *Store) closeNow(d *Session) {
	ups := d.shut()
	go func() {
		for _, us := range ups {
			us.close()
		}
		g.Drop(d)
		if d.ss != nil {
			_ = d.ss.Close()
		}
	}()
}
