package store

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/secret"
)

func TestConfigWithDefaults(t *testing.T) {
	c := Config{}.WithDefaults()
	if c.Driver != DriverSQLite || c.Path != DefaultSQLitePath {
		t.Fatalf("defaults = %+v", c)
	}
	p := Config{Driver: DriverPostgres, DSN: "postgres://h/db"}.WithDefaults()
	if p.Path != "" {
		t.Fatalf("postgres got a path: %q", p.Path)
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	raw32 := filepath.Join(dir, "raw")
	b64 := filepath.Join(dir, "b64")
	short := filepath.Join(dir, "short")
	os.WriteFile(raw32, bytes.Repeat([]byte{0xfe}, 32), 0o600)
	os.WriteFile(b64, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600)
	os.WriteFile(short, []byte("c2hvcnQ=\n"), 0o600)
	const secretDSN = "postgres://u:hunter2-pw@h:5432/db?sslmode=bogus"
	for _, c := range []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none = valid
	}{
		{"empty", Config{}, nil},
		{"sqlite with keys", Config{Driver: "sqlite", Path: "/var/lib/mandate/m.db", EncryptionKeys: []EncryptionKey{testKey1, testKey2}}, nil},
		{"key files", Config{EncryptionKeys: []EncryptionKey{{ID: "raw", KeyFile: raw32}, {ID: "b64", KeyFile: b64}}}, nil},
		{"postgres", Config{Driver: "postgres", DSN: "postgres://u:p@h:5432/db?sslmode=verify-full"}, nil},
		{"unknown driver", Config{Driver: "mysql"}, []string{`storage.driver: unknown driver "mysql"`}},
		{"postgres without dsn", Config{Driver: "postgres"}, []string{"storage.dsn: required for driver postgres"}},
		{"postgres with path", Config{Driver: "postgres", DSN: "postgres://h/db", Path: "x.db"}, []string{"storage.path: only for driver sqlite"}},
		{"sqlite with dsn", Config{DSN: "postgres://h/db"}, []string{"storage.dsn: only for driver postgres"}},
		{"bad dsn", Config{Driver: "postgres", DSN: secretDSN}, []string{"storage.dsn: not a valid PostgreSQL connection string"}},
		{"path with ?", Config{Path: "m.db?mode=ro"}, []string{"storage.path:"}},
		{"key problems", Config{EncryptionKeys: []EncryptionKey{
			{Key: testKey1.Key},
			{ID: "k1", Key: testKey1.Key},
			{ID: "k1", Key: testKey2.Key},
			{ID: "both", Key: testKey1.Key, KeyFile: raw32},
			{ID: "none"},
			{ID: "short", Key: "c2hvcnQ="},
			{ID: "notb64", Key: "!!!not base64!!!"},
			{ID: "shortfile", KeyFile: short},
			{ID: "missing", KeyFile: filepath.Join(dir, "nope")},
			{ID: "has space", Key: testKey1.Key},
		}}, []string{
			"storage.encryption_keys[0].id: required",
			`storage.encryption_keys[2].id: "k1" is listed twice`,
			"storage.encryption_keys[3]: key and key_file are exclusive",
			"storage.encryption_keys[4]: one of key",
			"storage.encryption_keys[5].key: decodes to 5 bytes, want 32",
			"storage.encryption_keys[6].key: not base64",
			"storage.encryption_keys[7].key_file: " + short + ": decodes to 5 bytes",
			"storage.encryption_keys[8].key_file:",
			`storage.encryption_keys[9].id: "has space"`,
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate accepted %+v", c.cfg)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			for _, leak := range []string{"hunter2", testKey1.Key.Reveal(), "MTEx"} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error leaks a secret (%q):\n%v", leak, err)
				}
			}
		})
	}
}

func TestOpenRequiresAKey(t *testing.T) {
	_, err := Open(ctx, Config{Path: filepath.Join(t.TempDir(), "m.db")})
	if err == nil || !strings.Contains(err.Error(), "storage.encryption_keys: at least one key") {
		t.Fatalf("Open without keys: %v", err)
	}
	_, err = Open(ctx, Config{Driver: "postgres"})
	if err == nil || !strings.Contains(err.Error(), "storage.dsn: required") {
		t.Fatalf("Open of an invalid config: %v", err)
	}
}

func TestOpenSQLiteCreatesAPrivateFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, want 0600", fi.Mode().Perm())
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestSealerBindsTheCell(t *testing.T) {
	s, err := NewSealer([]EncryptionKey{testKey1})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := s.Seal("t", "c", "row1", []byte("secret value"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("secret value")) {
		t.Fatal("sealed value holds the plaintext")
	}
	again, _ := s.Seal("t", "c", "row1", []byte("secret value"))
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of one value are equal (nonce reuse)")
	}
	got, err := s.Open("t", "c", "row1", sealed)
	if err != nil || string(got) != "secret value" {
		t.Fatalf("Open = %q, %v", got, err)
	}
	for _, cell := range [][3]string{{"t", "c", "row2"}, {"t", "d", "row1"}, {"u", "c", "row1"}, {"t", "c", "row"}, {"t", "c\x00row1", ""}} {
		if _, err := s.Open(cell[0], cell[1], cell[2], sealed); err == nil {
			t.Errorf("value of t.c/row1 opened as %q", cell)
		}
	}
	for name, bad := range map[string][]byte{
		"empty":     nil,
		"version":   append([]byte{2}, sealed[1:]...),
		"truncated": sealed[:len(sealed)-17],
		"id only":   sealed[:4],
	} {
		if _, err := s.Open("t", "c", "row1", bad); err == nil {
			t.Errorf("%s: opened", name)
		} else if strings.Contains(err.Error(), "row1") {
			t.Errorf("%s: error names the row: %v", name, err)
		}
	}
	other, _ := NewSealer([]EncryptionKey{{ID: "k1", Key: testKey2.Key}})
	if _, err := other.Open("t", "c", "row1", sealed); err == nil || errors.Is(err, ErrUnknownKey) {
		t.Fatalf("another key under the same id: %v, want a does-not-open error", err)
	}
}

func TestNewSealerErrors(t *testing.T) {
	if _, err := NewSealer(nil); err == nil {
		t.Fatal("no keys accepted")
	}
	if _, err := NewSealer([]EncryptionKey{testKey1, testKey1}); err == nil {
		t.Fatal("duplicate ids accepted")
	}
	if _, err := NewSealer([]EncryptionKey{{ID: "x", Key: secret.String("c2hvcnQ=")}}); err == nil || !strings.Contains(err.Error(), "want 32") {
		t.Fatalf("short key: %v", err)
	}
	k, err := GenerateKey("gen")
	if err != nil {
		t.Fatal(err)
	}
	if err := (Config{EncryptionKeys: []EncryptionKey{k}}).Validate(); err != nil {
		t.Fatalf("generated key: %v", err)
	}
}
