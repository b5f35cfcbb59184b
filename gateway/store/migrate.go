package store

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// migration is one schema version. Its SQL is shared by the drivers, with
// {{blob}} (BLOB / BYTEA) and {{int}} (INTEGER / BIGINT) markers. Never edit
// a released migration: add the next version.
type migration struct {
	version int
	name    string
	stmts   []string
}

// migrations, oldest first. Times are Unix microseconds (0 = unset);
// hashes are SHA-256 given by the caller; sealed columns hold Sealer
// output.
var migrations = []migration{
	{1, "authorization server state", []string{
		`CREATE TABLE clients (
			id TEXT PRIMARY KEY,
			metadata {{blob}} NOT NULL,
			secret_hash {{blob}} NOT NULL,
			created_at {{int}} NOT NULL,
			last_used_at {{int}} NOT NULL)`,
		`CREATE INDEX clients_last_used_at ON clients (last_used_at)`,
		`CREATE TABLE codes (
			hash {{blob}} PRIMARY KEY,
			client_id TEXT NOT NULL,
			session_id TEXT NOT NULL,
			redirect_uri TEXT NOT NULL,
			code_challenge TEXT NOT NULL,
			resource TEXT NOT NULL,
			scope TEXT NOT NULL,
			family_id TEXT NOT NULL,
			expires_at {{int}} NOT NULL,
			used_at {{int}} NOT NULL DEFAULT 0)`,
		`CREATE INDEX codes_expires_at ON codes (expires_at)`,
		`CREATE INDEX codes_client_id ON codes (client_id)`,
		`CREATE INDEX codes_session_id ON codes (session_id)`,
		`CREATE TABLE refresh_families (
			id TEXT PRIMARY KEY,
			client_id TEXT NOT NULL,
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			expires_at {{int}} NOT NULL,
			revoked_at {{int}} NOT NULL DEFAULT 0)`,
		`CREATE INDEX refresh_families_user ON refresh_families (issuer, subject)`,
		`CREATE INDEX refresh_families_client_id ON refresh_families (client_id)`,
		`CREATE INDEX refresh_families_revoked_at ON refresh_families (revoked_at)`,
		`CREATE INDEX refresh_families_expires_at ON refresh_families (expires_at)`,
		`CREATE TABLE refresh_tokens (
			hash {{blob}} PRIMARY KEY,
			family_id TEXT NOT NULL REFERENCES refresh_families (id) ON DELETE CASCADE,
			client_id TEXT NOT NULL,
			session_id TEXT NOT NULL,
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			scope TEXT NOT NULL,
			resource TEXT NOT NULL,
			issued_at {{int}} NOT NULL,
			expires_at {{int}} NOT NULL,
			rotated_at {{int}} NOT NULL DEFAULT 0)`,
		`CREATE INDEX refresh_tokens_family_id ON refresh_tokens (family_id)`,
		`CREATE INDEX refresh_tokens_expires_at ON refresh_tokens (expires_at)`,
		`CREATE TABLE consents (
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			client_id TEXT NOT NULL,
			scope TEXT NOT NULL,
			granted_at {{int}} NOT NULL,
			expires_at {{int}} NOT NULL,
			PRIMARY KEY (issuer, subject, client_id))`,
		`CREATE INDEX consents_client_id ON consents (client_id)`,
		`CREATE TABLE idp_sessions (
			id TEXT PRIMARY KEY,
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			kind TEXT NOT NULL,
			claims {{blob}} NOT NULL,
			access_token {{blob}} NOT NULL,
			refresh_token {{blob}} NOT NULL,
			id_token {{blob}} NOT NULL,
			token_expiry {{int}} NOT NULL,
			created_at {{int}} NOT NULL,
			updated_at {{int}} NOT NULL,
			revoked {{int}} NOT NULL DEFAULT 0)`,
		`CREATE INDEX idp_sessions_user ON idp_sessions (issuer, subject)`,
		`CREATE TABLE signing_keys (
			id TEXT PRIMARY KEY,
			algorithm TEXT NOT NULL,
			private {{blob}} NOT NULL,
			created_at {{int}} NOT NULL,
			retired_at {{int}} NOT NULL DEFAULT 0)`,
		`CREATE TABLE jtis (
			issuer TEXT NOT NULL,
			jti TEXT NOT NULL,
			expires_at {{int}} NOT NULL,
			PRIMARY KEY (issuer, jti))`,
		`CREATE INDEX jtis_expires_at ON jtis (expires_at)`,
	}},
	{2, "per-user platform grants", []string{
		// access_token and refresh_token are sealed, bound to the row
		// (issuer, subject, upstream): see grantRowKey.
		`CREATE TABLE grants (
			issuer TEXT NOT NULL,
			subject TEXT NOT NULL,
			upstream TEXT NOT NULL,
			config_digest TEXT NOT NULL,
			client_id TEXT NOT NULL,
			access_token {{blob}} NOT NULL,
			refresh_token {{blob}} NOT NULL,
			token_type TEXT NOT NULL,
			expiry {{int}} NOT NULL,
			scope TEXT NOT NULL,
			platform_subject TEXT NOT NULL,
			created_at {{int}} NOT NULL,
			last_used_at {{int}} NOT NULL,
			broken {{int}} NOT NULL DEFAULT 0,
			broken_reason TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (issuer, subject, upstream))`,
		// metadata is sealed (it may hold a client secret), bound to
		// (issuer, registration_key).
		`CREATE TABLE outbound_clients (
			issuer TEXT NOT NULL,
			registration_key TEXT NOT NULL,
			metadata {{blob}} NOT NULL,
			created_at {{int}} NOT NULL,
			PRIMARY KEY (issuer, registration_key))`,
	}},
}

// SchemaVersion is the schema version this build migrates to.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrate applies the missing migrations in one transaction, recording each
// in schema_migrations. PostgreSQL replicas starting at once serialize on
// an advisory lock; SQLite's BEGIN IMMEDIATE does the same. A database
// migrated by a newer Mandate is refused.
func (s *sqlStore) migrate(ctx context.Context) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if s.d.lockMigrations != "" {
			if _, err := tx.ExecContext(ctx, s.d.lockMigrations); err != nil {
				return fmt.Errorf("taking the migration lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`CREATE TABLE IF NOT EXISTS schema_migrations (
			version {{int}} PRIMARY KEY,
			name TEXT NOT NULL,
			applied_at {{int}} NOT NULL)`)); err != nil {
			return fmt.Errorf("creating schema_migrations: %w", err)
		}
		var current sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&current); err != nil {
			return fmt.Errorf("reading schema_migrations: %w", err)
		}
		if int(current.Int64) > SchemaVersion() {
			return fmt.Errorf("the database schema is version %d, newer than this Mandate knows (%d): run a newer Mandate, or restore a backup", current.Int64, SchemaVersion())
		}
		for _, m := range migrations {
			if m.version <= int(current.Int64) {
				continue
			}
			for _, st := range m.stmts {
				if _, err := tx.ExecContext(ctx, s.q(st)); err != nil {
					return fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
				m.version, m.name, ts(time.Now())); err != nil {
				return fmt.Errorf("recording migration %d: %w", m.version, err)
			}
		}
		return nil
	})
}
