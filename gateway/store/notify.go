package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
)

// Notify and Listen: a small publish/subscribe between replicas, used to
// make a disconnect or an admin revoke take effect on every replica within
// a second.
//
// PostgreSQL: NOTIFY (pg_notify) on the pool; each Listen holds a dedicated
// connection (pgx.ConnectConfig with the Store's DSN) that runs LISTEN and
// waits for notifications. When that connection drops, Listen reconnects
// with back-off (first at once, then 100 ms doubling to 5 s, jittered) and,
// once it listens again, delivers an empty payload: notifications sent
// while it was away are lost, and "" tells the subscriber to resync (for
// example, drop its cached platform tokens). Channels are scoped by the
// database schema (current_schema()), so deployments sharing a database
// in different schemas do not hear each other.
//
// SQLite: an in-process fan-out to the Listen subscribers of the same
// Store (SQLite is the one-replica driver; other Store instances on the
// same file do not hear it). Each subscriber has its own queue, so a slow
// subscriber never blocks Notify; a queue that reaches
// maxSubscriberQueue is replaced by one "" (resync).
//
// Payloads are never empty from Notify (empty is reserved for resync),
// valid UTF-8 without NUL, and at most MaxNotifyPayload bytes (the
// PostgreSQL limit). Channel names are lower-case identifiers:
// [a-z][a-z0-9_]*, at most 63 bytes.

// MaxNotifyPayload is the largest payload Notify accepts (PostgreSQL's
// NOTIFY limit: less than 8000 bytes).
const MaxNotifyPayload = 7999

const maxChannelLen = 63

// maxSubscriberQueue bounds an in-process subscriber's backlog (SQLite).
const maxSubscriberQueue = 4096

// Listener reconnection back-off (PostgreSQL).
const (
	listenBackoffMin   = 100 * time.Millisecond
	listenBackoffMax   = 5 * time.Second
	listenConnTimeout  = 10 * time.Second
	listenApplication  = "mandate listen"
	listenCloseTimeout = time.Second
)

func checkChannel(c string) error {
	if c == "" || len(c) > maxChannelLen || c[0] < 'a' || c[0] > 'z' {
		return fmt.Errorf("store: notify channel %q: must be a lower-case identifier ([a-z][a-z0-9_]*, at most %d bytes)", c, maxChannelLen)
	}
	for i := 1; i < len(c); i++ {
		if b := c[i]; !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_') {
			return fmt.Errorf("store: notify channel %q: must be a lower-case identifier ([a-z][a-z0-9_]*, at most %d bytes)", c, maxChannelLen)
		}
	}
	return nil
}

func checkPayload(p string) error {
	switch {
	case p == "":
		return errors.New("store: notify payload: empty (reserved for the resync signal)")
	case len(p) > MaxNotifyPayload:
		return fmt.Errorf("store: notify payload: %d bytes, at most %d", len(p), MaxNotifyPayload)
	case !utf8.ValidString(p) || strings.IndexByte(p, 0) >= 0:
		return errors.New("store: notify payload: must be valid UTF-8 without NUL")
	}
	return nil
}

// startNotify prepares Notify/Listen after the database is open.
func (s *sqlStore) startNotify(ctx context.Context) error {
	s.life, s.stop = context.WithCancel(context.Background())
	if s.pgConfig == nil {
		s.hub = &hub{subs: make(map[string]map[*subscriber]struct{})}
		return nil
	}
	var schema sql.NullString
	if err := s.db.QueryRowContext(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		s.stop()
		return fmt.Errorf("reading current_schema(): %w", err)
	}
	s.schema = schema.String
	return nil
}

// pgChannel is the PostgreSQL channel of a Mandate channel in this
// schema: "<schema>.<channel>", or a digest of it when that is longer than
// an identifier may be.
func (s *sqlStore) pgChannel(channel string) string {
	name := s.schema + "." + channel
	if len(name) <= maxChannelLen {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return "mandate." + hex.EncodeToString(sum[:16])
}

func listenStatement(pgChannel string) string {
	return "LISTEN " + pgx.Identifier{pgChannel}.Sanitize()
}

func (s *sqlStore) Notify(ctx context.Context, channel, payload string) error {
	if err := checkChannel(channel); err != nil {
		return err
	}
	if err := checkPayload(payload); err != nil {
		return err
	}
	if s.hub != nil {
		s.hub.publish(channel, payload)
		return nil
	}
	_, err := s.db.ExecContext(ctx, `SELECT pg_notify($1, $2)`, s.pgChannel(channel), payload)
	return s.wrap("notify", err)
}

// Listen subscribes to channel. It returns once the subscription is in
// place (PostgreSQL: LISTEN ran), so a Notify after it returns is
// delivered. The channel closes when ctx ends or the Store is closed.
func (s *sqlStore) Listen(ctx context.Context, channel string) (<-chan string, error) {
	if err := checkChannel(channel); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(s.life, cancel)
	done := func() { stop(); cancel() }
	out := make(chan string)
	if s.hub != nil {
		sub := s.hub.subscribe(channel)
		go func() {
			defer close(out)
			defer done()
			defer s.hub.unsubscribe(channel, sub)
			sub.forward(lctx, out)
		}()
		return out, nil
	}
	name := s.pgChannel(channel)
	conn, err := s.listenConn(lctx, name)
	if err != nil {
		done()
		return nil, fmt.Errorf("store (%s): listen: %w", s.d.name, err)
	}
	go func() {
		defer close(out)
		defer done()
		s.listenLoop(lctx, name, conn, out)
	}()
	return out, nil
}

// listenConn opens a dedicated connection and runs LISTEN on it.
func (s *sqlStore) listenConn(ctx context.Context, name string) (*pgx.Conn, error) {
	cfg := s.pgConfig.Copy()
	cfg.RuntimeParams["application_name"] = listenApplication
	cctx, cancel := context.WithTimeout(ctx, listenConnTimeout)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(cctx, listenStatement(name)); err != nil {
		closeConn(conn)
		return nil, err
	}
	return conn, nil
}

func closeConn(conn *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), listenCloseTimeout)
	defer cancel()
	_ = conn.Close(ctx)
}

// listenLoop delivers notifications from conn to out until ctx ends,
// reconnecting when the connection drops.
func (s *sqlStore) listenLoop(ctx context.Context, name string, conn *pgx.Conn, out chan<- string) {
	defer func() {
		if conn != nil {
			closeConn(conn)
		}
	}()
	var wait time.Duration // before the next connection attempt
	for {
		if conn == nil {
			if wait > 0 {
				t := time.NewTimer(wait/2 + rand.N(wait/2+1))
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
					return
				}
			}
			c, err := s.listenConn(ctx, name)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				wait = min(max(2*wait, listenBackoffMin), listenBackoffMax)
				continue
			}
			conn, wait = c, 0
			if !send(ctx, out, "") { // resync: what was sent meanwhile is lost
				return
			}
		}
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			closeConn(conn)
			conn = nil
			if ctx.Err() != nil {
				return
			}
			continue
		}
		if !send(ctx, out, n.Payload) {
			return
		}
	}
}

func send(ctx context.Context, out chan<- string, v string) bool {
	select {
	case out <- v:
		return true
	case <-ctx.Done():
		return false
	}
}

// ---------------------------------------------------------------- in-process hub (SQLite)

type hub struct {
	mu   sync.Mutex
	subs map[string]map[*subscriber]struct{}
}

type subscriber struct {
	mu    sync.Mutex
	queue []string
	wake  chan struct{} // 1-buffered: the queue may be non-empty
}

func (h *hub) subscribe(channel string) *subscriber {
	sub := &subscriber{wake: make(chan struct{}, 1)}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs[channel] == nil {
		h.subs[channel] = make(map[*subscriber]struct{})
	}
	h.subs[channel][sub] = struct{}{}
	return sub
}

func (h *hub) unsubscribe(channel string, sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs[channel], sub)
	if len(h.subs[channel]) == 0 {
		delete(h.subs, channel)
	}
}

func (h *hub) publish(channel, payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for sub := range h.subs[channel] {
		sub.push(payload)
	}
}

func (sub *subscriber) push(p string) {
	sub.mu.Lock()
	if len(sub.queue) >= maxSubscriberQueue {
		sub.queue = append(sub.queue[:0], "") // overflow: resync
	}
	sub.queue = append(sub.queue, p)
	sub.mu.Unlock()
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// forward delivers the queue to out, in order, until ctx ends.
func (sub *subscriber) forward(ctx context.Context, out chan<- string) {
	for {
		select {
		case <-sub.wake:
		case <-ctx.Done():
			return
		}
		for {
			sub.mu.Lock()
			if len(sub.queue) == 0 {
				sub.queue = nil
				sub.mu.Unlock()
				break
			}
			p := sub.queue[0]
			sub.queue = sub.queue[1:]
			sub.mu.Unlock()
			if !send(ctx, out, p) {
				return
			}
		}
	}
}
