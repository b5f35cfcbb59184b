package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strconv"
	"sync"
	"time"
)

// Per-user platform grants and outbound client registrations (grants.go)
// for both drivers.

const (
	grantsTable          = "grants"
	outboundClientsTable = "outbound_clients"
)

// grantRowKey is the row key the sealed tokens of a grant are bound to:
// length-prefixed, so that no two (issuer, subject, upstream) encode
// alike. A token moved to another user's or another upstream's row does
// not open.
func grantRowKey(issuer, subject, upstream string) string {
	return strconv.Itoa(len(issuer)) + ":" + issuer + strconv.Itoa(len(subject)) + ":" + subject + upstream
}

func outboundRowKey(issuer, key string) string {
	return strconv.Itoa(len(issuer)) + ":" + issuer + key
}

const grantColumns = `issuer, subject, upstream, config_digest, client_id, access_token, refresh_token, token_type, expiry, scope, platform_subject, created_at, last_used_at, broken, broken_reason`

const grantKeyWhere = ` WHERE issuer = ? AND subject = ? AND upstream = ?`

func checkGrantKey(issuer, subject, upstream string) error {
	if issuer == "" || subject == "" || upstream == "" {
		return errors.New("store: grant: Issuer, Subject and Upstream are required")
	}
	return nil
}

// sealGrant seals the grant's tokens for its row.
func (s *sqlStore) sealGrant(g Grant) (at, rt []byte, err error) {
	row := grantRowKey(g.Issuer, g.Subject, g.Upstream)
	if at, err = s.sealer.Seal(grantsTable, "access_token", row, []byte(g.AccessToken)); err != nil {
		return nil, nil, err
	}
	if rt, err = s.sealer.Seal(grantsTable, "refresh_token", row, []byte(g.RefreshToken)); err != nil {
		return nil, nil, err
	}
	return at, rt, nil
}

// scanGrant reads a row of grantColumns and opens its tokens.
func (s *sqlStore) scanGrant(row interface{ Scan(...any) error }) (Grant, error) {
	var g Grant
	var at, rt []byte
	var exp, created, last, broken int64
	if err := row.Scan(&g.Issuer, &g.Subject, &g.Upstream, &g.ConfigDigest, &g.ClientID, &at, &rt, &g.TokenType, &exp, &g.Scope,
		&g.PlatformSubject, &created, &last, &broken, &g.BrokenReason); err != nil {
		return Grant{}, err
	}
	key := grantRowKey(g.Issuer, g.Subject, g.Upstream)
	plainAT, err := s.sealer.Open(grantsTable, "access_token", key, at)
	if err != nil {
		return Grant{}, err
	}
	plainRT, err := s.sealer.Open(grantsTable, "refresh_token", key, rt)
	if err != nil {
		return Grant{}, err
	}
	g.AccessToken, g.RefreshToken = string(plainAT), string(plainRT)
	g.Expiry, g.CreatedAt, g.LastUsedAt = fromTS(exp), fromTS(created), fromTS(last)
	g.Broken = broken != 0
	return g, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// PutGrant inserts or replaces the grant of (Issuer, Subject, Upstream),
// every field of it. On PostgreSQL it waits for an UpdateGrant of the
// same grant in flight, then replaces what that stored.
func (s *sqlStore) PutGrant(ctx context.Context, g Grant) error {
	if err := checkGrantKey(g.Issuer, g.Subject, g.Upstream); err != nil {
		return err
	}
	at, rt, err := s.sealGrant(g)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO grants (`+grantColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (issuer, subject, upstream) DO UPDATE SET config_digest = excluded.config_digest, client_id = excluded.client_id,
		access_token = excluded.access_token, refresh_token = excluded.refresh_token, token_type = excluded.token_type,
		expiry = excluded.expiry, scope = excluded.scope, platform_subject = excluded.platform_subject,
		created_at = excluded.created_at, last_used_at = excluded.last_used_at, broken = excluded.broken, broken_reason = excluded.broken_reason`,
		g.Issuer, g.Subject, g.Upstream, g.ConfigDigest, g.ClientID, at, rt, g.TokenType, ts(g.Expiry), g.Scope,
		g.PlatformSubject, ts(g.CreatedAt), ts(g.LastUsedAt), boolInt(g.Broken), g.BrokenReason)
	return s.wrap("put grant", err)
}

func (s *sqlStore) GetGrant(ctx context.Context, issuer, subject, upstream string) (Grant, error) {
	g, err := s.scanGrant(s.db.QueryRowContext(ctx, s.q(`SELECT `+grantColumns+` FROM grants`+grantKeyWhere), issuer, subject, upstream))
	if err != nil {
		return Grant{}, s.wrap("get grant", err)
	}
	return g, nil
}

// ListGrants returns the user's grants ordered by upstream.
func (s *sqlStore) ListGrants(ctx context.Context, issuer, subject string) ([]Grant, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+grantColumns+` FROM grants WHERE issuer = ? AND subject = ? ORDER BY upstream`), issuer, subject)
	if err != nil {
		return nil, s.wrap("list grants", err)
	}
	defer rows.Close()
	var out []Grant
	for rows.Next() {
		g, err := s.scanGrant(rows)
		if err != nil {
			return nil, s.wrap("list grants", err)
		}
		out = append(out, g)
	}
	return out, s.wrap("list grants", rows.Err())
}

func (s *sqlStore) DeleteGrant(ctx context.Context, issuer, subject, upstream string) error {
	n, err := s.exec(ctx, `DELETE FROM grants`+grantKeyWhere, issuer, subject, upstream)
	if err != nil {
		return s.wrap("delete grant", err)
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// TouchGrant sets LastUsedAt to at unless it was set less than a minute
// before at (a busy grant costs one write a minute). ErrNotFound for an
// unknown grant.
func (s *sqlStore) TouchGrant(ctx context.Context, issuer, subject, upstream string, at time.Time) error {
	n, err := s.exec(ctx, `UPDATE grants SET last_used_at = ?`+grantKeyWhere+` AND last_used_at < ?`,
		ts(at), issuer, subject, upstream, ts(at.Add(-touchEvery)))
	if err != nil {
		return s.wrap("touch grant", err)
	}
	if n == 0 {
		var one int
		if err := s.db.QueryRowContext(ctx, s.q(`SELECT 1 FROM grants`+grantKeyWhere), issuer, subject, upstream).Scan(&one); err != nil {
			return s.wrap("touch grant", err)
		}
	}
	return nil
}

// grantWriteTimeout bounds storing fn's result once fn succeeded. The
// write does not end with the caller's ctx: fn may have rotated the
// refresh token at the platform, and losing the new one would break the
// grant.
const grantWriteTimeout = 10 * time.Second

// UpdateGrant runs fn under the grant's row lock and stores its result.
//
// Locking, in order (every wait ends with ctx):
//  1. an in-process lock per grant, so a replica spends at most one
//     database connection on one grant;
//  2. PostgreSQL: one of maxGrantUpdates slots, so UpdateGrants whose fn
//     waits on a slow platform never hold all the replica's connections;
//     SQLite: the Store's single writer slot;
//  3. the transaction: PostgreSQL SELECT … FOR UPDATE (excludes every
//     other UpdateGrant, PutGrant, DeleteGrant and RevokeUser of the row on
//     every replica, and nothing else); SQLite BEGIN IMMEDIATE (the
//     database's one write lock).
//
// fn runs while all three are held. On SQLite that means every other
// write of the process — other users' UpdateGrants, sign-ins, touches —
// waits until fn returns (SQLite is the one-replica driver; a platform's
// token endpoint timeout bounds the wait). fn must therefore not write
// to this Store itself: that write would wait for the writer slot fn's
// own UpdateGrant holds, until ctx ends. Reads from fn are fine.
//
// A transaction is retried (serialization failure, SQLite busy) only
// before fn ran: fn is called at most once per UpdateGrant. Once fn
// succeeded its result is written and committed even if ctx ends
// meanwhile (bounded by grantWriteTimeout).
func (s *sqlStore) UpdateGrant(ctx context.Context, issuer, subject, upstream string, fn func(Grant) (Grant, error)) (Grant, error) {
	if err := ctx.Err(); err != nil {
		return Grant{}, err
	}
	if err := checkGrantKey(issuer, subject, upstream); err != nil {
		return Grant{}, err
	}
	unlockKey, err := s.grantLocks.lock(ctx, grantRowKey(issuer, subject, upstream))
	if err != nil {
		return Grant{}, err
	}
	defer unlockKey()
	if s.grantSem != nil {
		select {
		case s.grantSem <- struct{}{}:
			defer func() { <-s.grantSem }()
		case <-ctx.Done():
			return Grant{}, ctx.Err()
		}
	}
	unlock, err := s.lockWrite(ctx)
	if err != nil {
		return Grant{}, err
	}
	defer unlock()
	for attempt := 0; ; attempt++ {
		g, called, err := s.updateGrant1(ctx, issuer, subject, upstream, fn)
		if err != nil && !called && attempt < 4 && s.d.retryable(err) && ctx.Err() == nil {
			time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
			continue
		}
		if err != nil && !called {
			if cerr := ctx.Err(); cerr != nil {
				return Grant{}, cerr
			}
			return Grant{}, s.wrap("update grant", err)
		}
		return g, err
	}
}

// updateGrant1 is one attempt; called reports whether fn ran (fn's error
// is returned as it is).
func (s *sqlStore) updateGrant1(ctx context.Context, issuer, subject, upstream string, fn func(Grant) (Grant, error)) (g Grant, called bool, err error) {
	tx, err := s.beginGrantTx(ctx)
	if err != nil {
		return Grant{}, false, err
	}
	defer tx.end() // rolls back unless committed; runs if fn panics
	cur, err := s.scanGrant(tx.q.QueryRowContext(ctx, s.q(`SELECT `+grantColumns+` FROM grants`+grantKeyWhere+`{{forupdate}}`), issuer, subject, upstream))
	if err != nil {
		return Grant{}, false, err
	}
	if err := ctx.Err(); err != nil {
		return Grant{}, false, err
	}
	next, err := fn(cur)
	if err != nil {
		return Grant{}, true, err
	}
	if next.Issuer != issuer || next.Subject != subject || next.Upstream != upstream {
		return Grant{}, true, errors.New("store: update grant: fn changed the grant's issuer, subject or upstream")
	}
	at, rt, err := s.sealGrant(next)
	if err != nil {
		return Grant{}, true, err
	}
	// From here on the caller's ctx no longer counts (grantWriteTimeout).
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grantWriteTimeout)
	defer cancel()
	_, err = tx.q.ExecContext(wctx, s.q(`UPDATE grants SET config_digest = ?, client_id = ?, access_token = ?, refresh_token = ?, token_type = ?,
		expiry = ?, scope = ?, platform_subject = ?, created_at = ?, last_used_at = ?, broken = ?, broken_reason = ?`+grantKeyWhere),
		next.ConfigDigest, next.ClientID, at, rt, next.TokenType, ts(next.Expiry), next.Scope, next.PlatformSubject,
		ts(next.CreatedAt), ts(next.LastUsedAt), boolInt(next.Broken), next.BrokenReason, issuer, subject, upstream)
	if err == nil {
		err = tx.commit(wctx)
	}
	if err != nil {
		return Grant{}, true, s.wrap("update grant: storing fn's result", err)
	}
	return next, true, nil
}

// grantTx is UpdateGrant's transaction. Its lifetime is not bound to the
// caller's ctx (database/sql rolls a transaction back when the ctx given
// to BeginTx ends): the statements before fn are run with the caller's
// ctx, the write after fn with a ctx of its own.
type grantTx struct {
	q interface {
		QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	}
	commit func(context.Context) error
	end    func() // rollback unless committed, release the connection
}

func (s *sqlStore) beginGrantTx(ctx context.Context) (*grantTx, error) {
	if s.d.name == DriverPostgres {
		// READ COMMITTED; the row lock comes from SELECT … FOR UPDATE.
		tx, err := s.db.BeginTx(context.WithoutCancel(ctx), nil)
		if err != nil {
			return nil, err
		}
		return &grantTx{q: tx, commit: func(context.Context) error { return tx.Commit() }, end: func() { _ = tx.Rollback() }}, nil
	}
	// SQLite: BEGIN IMMEDIATE on a connection of our own, so that waiting
	// for another process's write lock ends with ctx (busy_timeout
	// otherwise) while the transaction itself does not.
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `BEGIN IMMEDIATE`); err != nil {
		conn.Close()
		return nil, err
	}
	done := false
	return &grantTx{
		q: conn,
		commit: func(ctx context.Context) error {
			_, err := conn.ExecContext(ctx, `COMMIT`)
			done = err == nil
			return err
		},
		end: func() {
			if !done {
				rctx, cancel := context.WithTimeout(context.Background(), grantWriteTimeout)
				if _, err := conn.ExecContext(rctx, `ROLLBACK`); err != nil {
					// The connection's state is unknown: discard it.
					_ = conn.Raw(func(any) error { return driver.ErrBadConn })
				}
				cancel()
			}
			conn.Close()
		},
	}, nil
}

// ---------------------------------------------------------------- outbound clients

// PutOutboundClient inserts or replaces the registration of (Issuer, Key).
func (s *sqlStore) PutOutboundClient(ctx context.Context, c OutboundClient) error {
	if c.Issuer == "" || c.Key == "" {
		return errors.New("store: put outbound client: Issuer and Key are required")
	}
	sealed, err := s.sealer.Seal(outboundClientsTable, "metadata", outboundRowKey(c.Issuer, c.Key), c.Metadata)
	if err != nil {
		return err
	}
	_, err = s.exec(ctx, `INSERT INTO outbound_clients (issuer, registration_key, metadata, created_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (issuer, registration_key) DO UPDATE SET metadata = excluded.metadata, created_at = excluded.created_at`,
		c.Issuer, c.Key, sealed, ts(c.CreatedAt))
	return s.wrap("put outbound client", err)
}

func (s *sqlStore) GetOutboundClient(ctx context.Context, issuer, key string) (OutboundClient, error) {
	c := OutboundClient{Issuer: issuer, Key: key}
	var sealed []byte
	var created int64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT metadata, created_at FROM outbound_clients WHERE issuer = ? AND registration_key = ?`), issuer, key).
		Scan(&sealed, &created)
	if err != nil {
		return OutboundClient{}, s.wrap("get outbound client", err)
	}
	if c.Metadata, err = s.sealer.Open(outboundClientsTable, "metadata", outboundRowKey(issuer, key), sealed); err != nil {
		return OutboundClient{}, err
	}
	c.Metadata = nilIfEmpty(c.Metadata)
	c.CreatedAt = fromTS(created)
	return c, nil
}

// ---------------------------------------------------------------- keyed locks

// keyedLocks is a mutex per key, taken with a ctx; entries live while
// someone holds or waits for them. The zero value is ready.
type keyedLocks struct {
	mu sync.Mutex
	m  map[string]*keyedLock
}

type keyedLock struct {
	ch   chan struct{} // holds one token while locked
	refs int
}

func (k *keyedLocks) lock(ctx context.Context, key string) (func(), error) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[string]*keyedLock)
	}
	l := k.m[key]
	if l == nil {
		l = &keyedLock{ch: make(chan struct{}, 1)}
		k.m[key] = l
	}
	l.refs++
	k.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
		return func() { <-l.ch; k.release(key, l) }, nil
	case <-ctx.Done():
		k.release(key, l)
		return nil, ctx.Err()
	}
}

func (k *keyedLocks) release(key string, l *keyedLock) {
	k.mu.Lock()
	if l.refs--; l.refs == 0 {
		delete(k.m, key)
	}
	k.mu.Unlock()
}
