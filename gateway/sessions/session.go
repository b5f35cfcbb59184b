// Package sessions is Mandate's per-client state: one Session per
// downstream MCP session (per user and protocol revision in stateless
// mode) holding the user's upstream sessions, opened lazily, the calls in
// flight (so that an upstream's notifications travel on the right request's
// stream), resource subscriptions and the per-user session caps. It relays
// what upstream sessions send on their own to the client (relay).
package sessions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
)

// Session is Mandate's state for one downstream MCP session: the caller,
// their upstream sessions (opened lazily), and the calls in flight so that
// upstream notifications reach the right request stream.
//
// In stateful mode there is one per Mcp-Session-Id, closed with it. In
// stateless mode every HTTP request is its own go-sdk session, so Mandate
// keeps one Session per (user, protocol version) and reaps it after
// server.session.idle_timeout without requests.
type Session struct {
	store *Store
	key   string
	ss    *mcp.ServerSession // nil in stateless mode
	proto string
	user  string // the identity key it is counted under (stateful)

	id       atomic.Pointer[identity.Identity]
	lastUsed atomic.Int64
	sdkSeen  atomic.Int64 // last request go-sdk served (its idle timer)
	logLevel atomic.Pointer[mcp.LoggingLevel]

	mu     sync.Mutex
	ups    map[string]*upSession // by upstream name
	closed bool

	inflightMu sync.Mutex
	inflight   map[string]*inflightCall // by progress token
	calls      map[*inflightCall]struct{}
	subs       map[string]bool                    // Subscribed resource URIs
	forwarded  map[string]context.CancelCauseFunc // forwarding-path calls by JSON-RPC id
}

// inflightCall is a downstream request being served, for routing upstream
// notifications onto its response stream.
type inflightCall struct {
	ctx      context.Context
	ss       *mcp.ServerSession
	upstream string
}

// upSession is one upstream session of a Session, opened at first use.
type upSession struct {
	u    *catalog.Upstream
	gen  uint64
	once sync.Once
	sess upstreams.Session
	err  error
	done chan struct{}
}

const (
	sessionlessProtocol     = catalog.SessionlessProtocol
	upstreamSessionProtocol = "2025-11-25"
)

// For returns the session of ss for id, creating it on first use.
func (g *Store) For(ctx context.Context, ss *mcp.ServerSession, id *identity.Identity) *Session {
	proto := ""
	if ip := ss.InitializeParams(); ip != nil {
		proto = ip.ProtocolVersion
	}
	if proto >= sessionlessProtocol {
		// Mandate terminates the sessionless revision; upstream sessions
		// speak the newest session-based one (upstreams are stateful
		// servers, and Mandate keeps one session per user and upstream).
		proto = upstreamSessionProtocol
	}
	var key string
	if g.stateless {
		key = "user:" + id.Key() + "\x00" + proto
	} else {
		key = "sid:" + ss.ID()
	}
	if v, ok := g.m.Load(key); ok {
		d := v.(*Session)
		d.Touch(id)
		return d
	}
	d := &Session{store: g, key: key, proto: proto,
		ups: map[string]*upSession{}, inflight: map[string]*inflightCall{},
		calls: map[*inflightCall]struct{}{}, subs: map[string]bool{}}
	if !g.stateless {
		d.ss = ss
	}
	d.sdkSeen.Store(time.Now().UnixNano())
	d.Touch(id)
	if v, loaded := g.m.LoadOrStore(key, d); loaded {
		d = v.(*Session)
		d.Touch(id)
		return d
	}
	g.count.Add(1)
	if !g.stateless {
		d.user = id.Key()
		for _, old := range g.byUser.add(d.user, d, g.maxPerUser) {
			g.log.Info("session closed: the user opened more than server.session.max_per_user",
				"max_per_user", g.maxPerUser, "closed_session", old.key)
			g.closeNow(old)
		}
		go func() {
			_ = ss.Wait()
			g.Drop(d)
		}()
	}
	return d
}

func (d *Session) Touch(id *identity.Identity) {
	d.lastUsed.Store(time.Now().UnixNano())
	if cur := d.id.Load(); cur == nil || cur.RawToken() != id.RawToken() {
		d.id.Store(id)
	}
}

// Drop forgets d and closes its upstream sessions.
func (g *Store) Drop(d *Session) {
	if g.m.CompareAndDelete(d.key, d) {
		g.count.Add(-1)
	}
	if d.user != "" {
		g.byUser.remove(d.user, d)
	}
	d.close()
}

func (d *Session) close() {
	for _, us := range d.shut() {
		us.close()
	}
}

// shut marks d closed — from now on it opens no upstream session and its
// calls fail — and returns the upstream sessions for the caller to close.
func (d *Session) shut() []*upSession {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	ups := d.ups
	d.ups = nil
	var out []*upSession
	for _, us := range ups {
		out = append(out, us)
	}
	return out
}

// ReapIdle closes stateless pseudo-sessions idle for longer than the idle
// timeout, until ctx is done.
func (g *Store) ReapIdle(ctx context.Context) {
	every := g.idle / 4
	if every <= 0 || every > time.Minute {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cutoff := time.Now().Add(-g.idle).UnixNano()
		g.m.Range(func(_, v any) bool {
			d := v.(*Session)
			if d.ss == nil && d.lastUsed.Load() < cutoff {
				g.Drop(d)
			}
			return true
		})
	}
}

// User is the identity key of the session's user (catalog.Opener).
func (d *Session) User() string { return d.id.Load().Key() }

// Upstream returns the session on u, opening it on first use
// (catalog.Opener). A session built for an older state (before a reload)
// is replaced.
func (d *Session) Upstream(ctx context.Context, st *catalog.State, u *catalog.Upstream) (upstreams.Session, error) {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil, fmt.Errorf("session closed")
	}
	us := d.ups[u.Name]
	var stale *upSession
	if us != nil && (us.gen != st.Gen || us.u != u) {
		stale, us = us, nil
	}
	if us == nil {
		us = &upSession{u: u, gen: st.Gen, done: make(chan struct{})}
		d.ups[u.Name] = us
	}
	d.mu.Unlock()
	if stale != nil {
		go stale.close()
	}
	us.once.Do(func() {
		defer close(us.done)
		octx := identity.NewContext(context.WithoutCancel(ctx), d.id.Load())
		octx, cancel := context.WithTimeout(octx, u.Cfg.Timeout)
		defer cancel()
		us.sess, us.err = u.Adapter.Open(octx, upstreams.OpenOptions{
			ProtocolVersion: d.proto,
			Events:          &relay{d: d, u: u},
		})
		if us.err == nil && d.logLevel.Load() != nil {
			_ = us.sess.SetLoggingLevel(octx, &mcp.SetLoggingLevelParams{Level: *d.logLevel.Load()})
		}
	})
	select {
	case <-us.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if us.err != nil {
		// Don't keep a failed open: the next request tries again.
		d.mu.Lock()
		if d.ups[u.Name] == us {
			delete(d.ups, u.Name)
		}
		d.mu.Unlock()
		return nil, us.err
	}
	return us.sess, nil
}

func (us *upSession) close() {
	<-us.done
	if us.sess != nil {
		_ = us.sess.Close()
	}
}

// OpenSessions returns the upstream sessions opened so far.
func (d *Session) OpenSessions() []upstreams.Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []upstreams.Session
	for _, us := range d.ups {
		select {
		case <-us.done:
			if us.sess != nil {
				out = append(out, us.sess)
			}
		default:
		}
	}
	return out
}

// Begin registers an in-flight call; end must be called when it returns.
func (d *Session) Begin(ctx context.Context, ss *mcp.ServerSession, upstream string, progressToken any) (*inflightCall, func()) {
	c := &inflightCall{ctx: ctx, ss: ss, upstream: upstream}
	key := progressKey(progressToken)
	d.inflightMu.Lock()
	if key != "" {
		d.inflight[key] = c
	}
	d.calls[c] = struct{}{}
	d.inflightMu.Unlock()
	return c, func() {
		d.inflightMu.Lock()
		if key != "" && d.inflight[key] == c {
			delete(d.inflight, key)
		}
		delete(d.calls, c)
		d.inflightMu.Unlock()
	}
}

func progressKey(tok any) string {
	switch t := tok.(type) {
	case nil:
		return ""
	case string:
		return "s:" + t
	default:
		return fmt.Sprintf("n:%v", t)
	}
}

// callFor returns an in-flight call on upstream (for log messages and
// server→client requests), or nil.
func (d *Session) callFor(upstream string) *inflightCall {
	d.inflightMu.Lock()
	defer d.inflightMu.Unlock()
	for c := range d.calls {
		if c.upstream == upstream {
			return c
		}
	}
	return nil
}

// Subscribed records (on) or forgets a resource subscription of the
// session: resources/updated from the upstream is relayed only for these.
func (d *Session) Subscribed(uri string, on bool) {
	d.inflightMu.Lock()
	defer d.inflightMu.Unlock()
	if on {
		d.subs[uri] = true
	} else {
		delete(d.subs, uri)
	}
}

// errCancelledByClient is the cause of a forwarded call the client
// cancelled with notifications/cancelled.
var errCancelledByClient = errors.New("the client cancelled the request")

// Forwarding registers a forwarding-path call under its JSON-RPC id so that
// the client's notifications/cancelled can cancel it; stop unregisters it.
func (d *Session) Forwarding(ctx context.Context, id json.RawMessage) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	key := string(id)
	d.inflightMu.Lock()
	if d.forwarded == nil {
		d.forwarded = map[string]context.CancelCauseFunc{}
	}
	d.forwarded[key] = cancel
	d.inflightMu.Unlock()
	return ctx, func() {
		d.inflightMu.Lock()
		delete(d.forwarded, key)
		d.inflightMu.Unlock()
		cancel(nil)
	}
}

// CancelForwarded cancels the forwarding-path call whose JSON-RPC id is
// id (as the client sent it in notifications/cancelled), if any.
func (d *Session) CancelForwarded(id json.RawMessage) {
	if len(id) == 0 {
		return
	}
	d.inflightMu.Lock()
	cancel := d.forwarded[string(id)]
	d.inflightMu.Unlock()
	if cancel != nil {
		cancel(errCancelledByClient)
	}
}

// Identity is the session's user as last authenticated.
func (d *Session) Identity() *identity.Identity { return d.id.Load() }

// ServerSession is the go-sdk session (nil in stateless mode).
func (d *Session) ServerSession() *mcp.ServerSession { return d.ss }

// LogLevel is the level the client set (logging/setLevel), or nil.
func (d *Session) LogLevel() *mcp.LoggingLevel { return d.logLevel.Load() }

// SetLogLevel records the client's logging level; upstream sessions opened
// later get it too.
func (d *Session) SetLogLevel(lv mcp.LoggingLevel) { d.logLevel.Store(&lv) }

// SDKSeen is when go-sdk last served a request of the session (its idle
// timer restarted).
func (d *Session) SDKSeen() time.Time { return time.Unix(0, d.sdkSeen.Load()) }

// MarkSDK records that go-sdk serves a request of the session now.
func (d *Session) MarkSDK() { d.sdkSeen.Store(time.Now().UnixNano()) }

// Closed reports whether the session was closed for calls (evicted,
// purged or shut down); its go-sdk session may still be closing.
func (d *Session) Closed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}
