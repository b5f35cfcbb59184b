package store

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mandate-gw/mandate/internal/secret"
)

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

// Drivers and defaults.
const (
	DriverSQLite   = "sqlite"
	DriverPostgres = "postgres"

	// DefaultDriver is the embedded database.
	DefaultDriver = DriverSQLite
	// DefaultSQLitePath is the database file when storage.path is empty and
	// the caller did not choose one (the gateway puts it beside the audit
	// log when there is one).
	DefaultSQLitePath = "mandate.db"
	// KeySize is the size of an encryption key: AES-256.
	KeySize = 32
	// maxKeyIDLen bounds a key id (it is stored beside every sealed value).
	maxKeyIDLen = 64
)

// WithDefaults returns c with defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Driver == "" {
		c.Driver = DefaultDriver
	}
	if c.Driver == DriverSQLite && c.Path == "" {
		c.Path = DefaultSQLitePath
	}
	return c
}

// Validate reports every problem with its key path (storage.…). It has no
// side effects other than reading key files to check their size. It does
// not require encryption keys (the authorization server's config does;
// Open refuses to start without one).
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("storage.%s: %s", key, fmt.Sprintf(format, args...)))
	}
	switch c.Driver {
	case "", DriverSQLite:
		if c.DSN != "" {
			bad("dsn", "only for driver postgres (driver is sqlite)")
		}
		if strings.ContainsRune(c.Path, '?') {
			bad("path", "%q must not contain '?'", c.Path)
		}
	case DriverPostgres:
		if c.Path != "" {
			bad("path", "only for driver sqlite (driver is postgres)")
		}
		if c.DSN.IsZero() {
			bad("dsn", "required for driver postgres: a connection string such as postgres://user:pass@host:5432/db?sslmode=verify-full (use ${ENV})")
		} else if _, err := pgx.ParseConfig(c.DSN.Reveal()); err != nil {
			// pgx's parse errors redact the password; still, name no part
			// of the DSN.
			bad("dsn", "not a valid PostgreSQL connection string (postgres://… URL or key=value list)")
		}
	default:
		bad("driver", "unknown driver %q (sqlite or postgres)", c.Driver)
	}
	seen := map[string]bool{}
	for i, k := range c.EncryptionKeys {
		key := fmt.Sprintf("encryption_keys[%d]", i)
		switch {
		case k.ID == "":
			bad(key+".id", "required: a name for the key, stored beside every value it seals (e.g. 2026-01)")
		case len(k.ID) > maxKeyIDLen || strings.IndexFunc(k.ID, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0:
			bad(key+".id", "%q must be at most %d printable ASCII characters without spaces", k.ID, maxKeyIDLen)
		case seen[k.ID]:
			bad(key+".id", "%q is listed twice", k.ID)
		}
		seen[k.ID] = true
		switch {
		case k.Key.IsZero() && k.KeyFile == "":
			bad(key, "one of key (base64 of %d random bytes, from ${ENV}; is the variable set?) and key_file is required", KeySize)
		case !k.Key.IsZero() && k.KeyFile != "":
			bad(key, "key and key_file are exclusive")
		default:
			if _, err := k.material(); err != nil {
				bad(key+"."+k.source(), "%v", err)
			}
		}
	}
	return errors.Join(errs...)
}

func (k EncryptionKey) source() string {
	if k.KeyFile != "" {
		return "key_file"
	}
	return "key"
}

// material returns the key's 32 bytes: Key is base64 (standard or URL
// alphabet, padded or not); KeyFile holds either base64 text or exactly 32
// raw bytes. Errors never contain key material.
func (k EncryptionKey) material() ([]byte, error) {
	if k.KeyFile != "" {
		data, err := secret.ReadFile(k.KeyFile)
		if err != nil {
			return nil, err
		}
		if len(data) == KeySize {
			return data, nil // raw bytes (base64 of 32 bytes is 43 or 44 characters)
		}
		b, err := decodeKey(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", k.KeyFile, err)
		}
		return b, nil
	}
	return decodeKey(k.Key.Reveal())
}

func decodeKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			if len(b) != KeySize {
				return nil, fmt.Errorf("decodes to %d bytes, want %d (generate one with: openssl rand -base64 32)", len(b), KeySize)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("not base64 (generate a key with: openssl rand -base64 32)")
}

// SealingKey returns the material of the first encryption key (the one
// that seals). The gateway derives purpose-specific keys from it (HKDF),
// so every replica configured alike derives the same ones.
func (c Config) SealingKey() ([]byte, error) {
	if len(c.EncryptionKeys) == 0 {
		return nil, errors.New("no encryption key configured")
	}
	return c.EncryptionKeys[0].material()
}
