package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"time"
)

// Lock takes a named lock that excludes every other holder of the same
// name in every replica sharing the database (PostgreSQL: a session
// advisory lock on a connection of its own, scoped to the schema; SQLite,
// one replica: a lock in this process), waiting until ctx ends. The caller
// must call unlock. It serialises work that is not one row's update, such
// as refreshing a user's IdP tokens: the IdP rotates the refresh token, so
// two replicas refreshing at once would present a spent one.
func (s *sqlStore) Lock(ctx context.Context, name string) (unlock func(), err error) {
	if name == "" {
		return nil, errors.New("store: lock: empty name")
	}
	release, err := s.namedLocks.lock(ctx, name)
	if err != nil {
		return nil, err
	}
	if s.d.name != DriverPostgres {
		return release, nil
	}
	conn, err := s.db.Conn(ctx)
	if err != nil {
		release()
		return nil, s.wrap("lock", err)
	}
	const key = `hashtext('mandate-lock:' || current_schema() || ':' || $1)`
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(`+key+`)`, name); err != nil {
		_ = conn.Close()
		release()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, s.wrap("lock", err)
	}
	return func() {
		uctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// Closing the connection would release the lock too; unlocking
		// first lets the pool keep the connection.
		if _, err := conn.ExecContext(uctx, `SELECT pg_advisory_unlock(`+key+`)`, name); err != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn }) // drop the connection: it may still hold the lock
		}
		_ = conn.Close()
		release()
	}, nil
}
