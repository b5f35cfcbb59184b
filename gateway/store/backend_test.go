package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/internal/testenv/testpg"
)

// backend is one fresh, empty database of one driver; open returns a new
// Store instance on it each time (two instances = two replicas).
type backend struct {
	driver string
	cfg    Config // without keys
}

func (b *backend) open(t *testing.T, keys ...EncryptionKey) Store {
	t.Helper()
	s, err := b.tryOpen(keys...)
	if err != nil {
		t.Fatalf("Open(%s): %v", b.driver, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func (b *backend) tryOpen(keys ...EncryptionKey) (Store, error) {
	if len(keys) == 0 {
		keys = []EncryptionKey{testKey1}
	}
	cfg := b.cfg
	cfg.EncryptionKeys = keys
	return Open(context.Background(), cfg)
}

// Fixed test keys (base64 of 32 bytes).
var (
	testKey1 = EncryptionKey{ID: "k1", Key: secret.String("MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=")}
	testKey2 = EncryptionKey{ID: "k2", Key: secret.String("MjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjIyMjI=")}
)

// backends lists a fresh-database constructor per driver. The PostgreSQL
// one skips (or fails, under MANDATE_E2E=1) without MANDATE_POSTGRES_DSN.
var backends = []struct {
	name  string
	fresh func(t *testing.T) *backend
}{
	{DriverSQLite, freshSQLite},
	{DriverPostgres, freshPostgres},
}

func freshSQLite(t *testing.T) *backend {
	return &backend{driver: DriverSQLite, cfg: Config{Driver: DriverSQLite, Path: filepath.Join(t.TempDir(), "mandate.db")}}
}

// freshPostgres gives the test a schema of its own (testpg.Schema).
func freshPostgres(t *testing.T) *backend {
	t.Helper()
	return &backend{driver: DriverPostgres, cfg: Config{Driver: DriverPostgres, DSN: secret.String(testpg.Schema(t))}}
}

// raw is the Store's database handle, for tests that read rows directly.
func raw(s Store) (*sql.DB, func(string) string) {
	ss := s.(*sqlStore)
	return ss.db, ss.q
}

// eachBackend runs f as a subtest per driver, each on a fresh database.
func eachBackend(t *testing.T, f func(t *testing.T, b *backend)) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { f(t, be.fresh(t)) })
	}
}

func readFileIfExists(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	return data, err
}
