package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/secret"
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

// postgresDSN is the server the PostgreSQL half runs against.
func postgresDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("MANDATE_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("MANDATE_E2E") == "1" {
			t.Fatal("MANDATE_POSTGRES_DSN is not set and MANDATE_E2E=1: the PostgreSQL contract suite must run (bash .ci/test.sh starts a throwaway server)")
		}
		t.Skip("MANDATE_POSTGRES_DSN is not set: skipping the PostgreSQL half of the store suite (bash .ci/test.sh starts a throwaway server)")
	}
	return dsn
}

// freshPostgres creates a schema of its own for the test (dropped at the
// end) so that parallel and repeated runs never share tables.
func freshPostgres(t *testing.T) *backend {
	t.Helper()
	dsn := postgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var rnd [6]byte
	rand.Read(rnd[:])
	schema := "mandate_test_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("creating schema %s on MANDATE_POSTGRES_DSN: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return &backend{driver: DriverPostgres, cfg: Config{Driver: DriverPostgres, DSN: secret.String(withSearchPath(t, dsn, schema))}}
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(t *testing.T, dsn, schema string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			t.Fatalf("MANDATE_POSTGRES_DSN is not a URL: %v", err)
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " search_path=" + schema
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
