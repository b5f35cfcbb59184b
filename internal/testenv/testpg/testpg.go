// Package testpg gives tests a PostgreSQL schema of their own on the
// server named by MANDATE_POSTGRES_DSN (bash .ci/test.sh starts a throwaway
// PostgreSQL 15 cluster and exports it). Without it a test skips — except
// under MANDATE_E2E=1, where it fails: CI must run the PostgreSQL tests.
package testpg

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

// DSN returns MANDATE_POSTGRES_DSN, or skips (fails under MANDATE_E2E=1).
func DSN(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("MANDATE_POSTGRES_DSN")
	if dsn == "" {
		if os.Getenv("MANDATE_E2E") == "1" {
			t.Fatal("MANDATE_POSTGRES_DSN is not set and MANDATE_E2E=1: the PostgreSQL tests must run (bash .ci/test.sh starts a throwaway server)")
		}
		t.Skip("MANDATE_POSTGRES_DSN is not set: skipping a PostgreSQL test (bash .ci/test.sh starts a throwaway server)")
	}
	return dsn
}

// Schema creates a schema of the test's own (dropped at the end), so that
// parallel and repeated runs never share tables, and returns a DSN whose
// search_path is that schema. Every connection made from the DSN — several
// replicas of a test included — sees the same tables.
func Schema(t testing.TB) string {
	t.Helper()
	dsn := DSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	schema := "mandate_test_" + hex.EncodeToString(rnd[:])
	if _, err := admin.Exec(`CREATE SCHEMA ` + schema); err != nil {
		t.Fatalf("creating schema %s on MANDATE_POSTGRES_DSN: %v", schema, err)
	}
	t.Cleanup(func() {
		if _, err := admin.Exec(`DROP SCHEMA ` + schema + ` CASCADE`); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
	})
	return withSearchPath(t, dsn, schema)
}

// withSearchPath adds search_path to a URL or key=value DSN.
func withSearchPath(t testing.TB, dsn, schema string) string {
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
