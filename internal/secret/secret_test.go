package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStringNeverPrints(t *testing.T) {
	const v = "hunter2-very-secret"
	s := String(v)
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("x", "secret", s)
	j, _ := json.Marshal(struct{ S String }{s})
	outs := []string{fmt.Sprint(s), fmt.Sprintf("%v %s %+v %#v", s, s, s, s), buf.String(), string(j)}
	for _, o := range outs {
		if strings.Contains(o, v) {
			t.Errorf("secret leaked in %q", o)
		}
		if !strings.Contains(o, Redacted) {
			t.Errorf("output %q does not show %s", o, Redacted)
		}
	}
	if s.Reveal() != v {
		t.Fatalf("Reveal = %q", s.Reveal())
	}
}

// TestReadFileBounded: secret files are read up to 64 KiB, never more.
func TestReadFileBounded(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok")
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(ok, bytes.Repeat([]byte("a"), MaxFileBytes), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(big, bytes.Repeat([]byte("a"), MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok); err != nil || len(b) != MaxFileBytes {
		t.Fatalf("64 KiB file: %d bytes, %v", len(b), err)
	}
	if _, err := ReadFile(big); err == nil || !strings.Contains(err.Error(), "larger than 64 KiB") {
		t.Fatalf("64 KiB + 1: %v, want larger than 64 KiB", err)
	}
	if _, err := ReadFile("/dev/zero"); err == nil {
		t.Fatal("/dev/zero read without a bound")
	}
}
