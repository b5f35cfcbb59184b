package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"modernc.org/sqlite"

	"github.com/mandate-gw/mandate/internal/secret"
)

// Open validates cfg (after WithDefaults), opens the configured database,
// applies missing migrations and returns the Store. It needs at least one
// encryption key. Close the Store when done.
func Open(ctx context.Context, cfg Config) (Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sealer, err := NewSealer(cfg.EncryptionKeys)
	if err != nil {
		return nil, err
	}
	var s *sqlStore
	switch cfg.Driver {
	case DriverSQLite:
		s, err = openSQLite(cfg.Path)
	case DriverPostgres:
		s, err = openPostgres(cfg.DSN)
	default:
		return nil, fmt.Errorf("storage.driver: unknown driver %q", cfg.Driver)
	}
	if err != nil {
		return nil, err
	}
	s.sealer = sealer
	s.now = time.Now
	if err := s.db.PingContext(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("storage (%s): connecting: %w", cfg.Driver, err)
	}
	if err := s.migrate(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("storage (%s): migrating the schema: %w", cfg.Driver, err)
	}
	if err := s.startNotify(ctx); err != nil {
		s.db.Close()
		return nil, fmt.Errorf("storage (%s): %w", cfg.Driver, err)
	}
	return s, nil
}

// OpenSQLite opens (creating it if missing) the SQLite database at path,
// for tests and tools. Without keys it seals under a random key that lives
// only in this Store: the database cannot be reopened with its sealed
// values readable.
func OpenSQLite(path string, keys ...EncryptionKey) (Store, error) {
	if len(keys) == 0 {
		k, err := GenerateKey("ephemeral")
		if err != nil {
			return nil, err
		}
		keys = []EncryptionKey{k}
	}
	return Open(context.Background(), Config{Driver: DriverSQLite, Path: path, EncryptionKeys: keys})
}

// GenerateKey returns a new random AES-256 key with the given id.
func GenerateKey(id string) (EncryptionKey, error) {
	b := make([]byte, KeySize)
	if _, err := rand.Read(b); err != nil {
		return EncryptionKey{}, err
	}
	return EncryptionKey{ID: id, Key: secret.String(base64.StdEncoding.EncodeToString(b))}, nil
}

// ---------------------------------------------------------------- SQLite

// sqliteDialect: INTEGER/BLOB, max(), no row locks (one writer at a time).
var sqliteDialect = &dialect{
	name:     DriverSQLite,
	markers:  strings.NewReplacer("{{blob}}", "BLOB", "{{int}}", "INTEGER", "{{forupdate}}", "", "{{greatest}}", "max"),
	conflict: sqliteConflict,
	retryable: func(err error) bool {
		var e *sqlite.Error
		return errors.As(err, &e) && e.Code()&0xff == 5 // SQLITE_BUSY (another process held the lock past busy_timeout)
	},
}

func sqliteConflict(err error) bool {
	var e *sqlite.Error
	// SQLITE_CONSTRAINT_PRIMARYKEY (1555), SQLITE_CONSTRAINT_UNIQUE (2067)
	return errors.As(err, &e) && (e.Code() == 1555 || e.Code() == 2067)
}

// sqliteBusyTimeout is how long a write waits for another process's
// transaction (writers of this process queue in Go first).
const sqliteBusyTimeout = 10 * time.Second

func openSQLite(path string) (*sqlStore, error) {
	if path == "" {
		return nil, errors.New("storage.path: required for driver sqlite")
	}
	// Create the file 0600 ourselves (SQLite would use 0644, and gives its
	// -wal and -shm files the database file's mode).
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
		f.Close()
	} else if !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("storage.path: %w", err)
	}
	dsn := path + fmt.Sprintf("?_txlock=immediate&_busy_timeout=%d&_journal_mode=WAL&_foreign_keys=1", sqliteBusyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("storage (sqlite): %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &sqlStore{db: db, d: sqliteDialect, writeSem: make(chan struct{}, 1)}, nil
}

// ---------------------------------------------------------------- PostgreSQL

// postgresDialect: BIGINT/BYTEA, GREATEST, row locks; migrations serialize
// on an advisory lock keyed by the schema.
var postgresDialect = &dialect{
	name:     DriverPostgres,
	numbered: true,
	markers:  strings.NewReplacer("{{blob}}", "BYTEA", "{{int}}", "BIGINT", "{{forupdate}}", " FOR UPDATE", "{{greatest}}", "GREATEST"),
	conflict: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && e.Code == "23505" // unique_violation
	},
	retryable: func(err error) bool {
		var e *pgconn.PgError
		return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01") // serialization_failure, deadlock_detected
	},
	lockMigrations: `SELECT pg_advisory_xact_lock(hashtext('mandate-store-migrations:' || current_schema()))`,
}

// postgresMaxConns bounds a replica's connections; maxGrantUpdates of them
// at most are held by UpdateGrants (each holds one while its fn calls a
// platform), so the other operations always find connections.
const (
	postgresMaxConns = 16
	maxGrantUpdates  = postgresMaxConns / 2
)

func openPostgres(dsn secret.String) (*sqlStore, error) {
	cc, err := pgx.ParseConfig(dsn.Reveal())
	if err != nil {
		return nil, errors.New("storage.dsn: not a valid PostgreSQL connection string")
	}
	db := stdlib.OpenDB(*cc)
	db.SetMaxOpenConns(postgresMaxConns)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	return &sqlStore{db: db, d: postgresDialect, pgConfig: cc, grantSem: make(chan struct{}, maxGrantUpdates)}, nil
}
