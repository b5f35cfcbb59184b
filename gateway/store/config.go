package store

import "github.com/mandate-gw/mandate/internal/secret"

// Config is the `storage` section.
type Config struct {
	// Driver is sqlite (default: embedded, one replica) or postgres
	// (several replicas share it).
	Driver string `yaml:"driver"`
	// Path is the SQLite database file. Default mandate.db beside the
	// audit log, or in the working directory.
	Path string `yaml:"path"`
	// DSN is the PostgreSQL connection string
	// (postgres://user:pass@host:5432/db?sslmode=verify-full); use ${ENV}.
	DSN secret.String `yaml:"dsn"`
	// EncryptionKeys seal secrets at rest (AES-256-GCM). The first key
	// seals; every key listed opens (rotation: put the new key first, keep
	// the old one until rows were re-sealed or expired). Required when the
	// authorization server is on.
	EncryptionKeys []EncryptionKey `yaml:"encryption_keys"`
}

// EncryptionKey is one AES-256 key with its id (stored beside each sealed
// value). Exactly one of Key (base64 of 32 bytes, from ${ENV}) and KeyFile.
type EncryptionKey struct {
	ID      string        `yaml:"id"`
	Key     secret.String `yaml:"key"`
	KeyFile string        `yaml:"key_file"`
}
