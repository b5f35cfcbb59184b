// Package secret holds a string type for credentials that never prints.
package secret

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// Redacted is what every printing method of a String shows.
const Redacted = "[redacted]"

// String is a secret value (client secret, private key, admin token). Its
// String, GoString, LogValue, MarshalJSON and MarshalYAML all print
// [Redacted]; Reveal returns the value for the one place that needs it.
type String string

// Reveal returns the secret itself. Call it only where the value is sent to
// its destination.
func (s String) Reveal() string { return string(s) }

// IsZero reports whether the secret is empty.
func (s String) IsZero() bool { return s == "" }

func (s String) String() string               { return s.mask() }
func (s String) GoString() string             { return s.mask() }
func (s String) LogValue() slog.Value         { return slog.StringValue(s.mask()) }
func (s String) MarshalJSON() ([]byte, error) { return []byte(`"` + s.mask() + `"`), nil }
func (s String) MarshalYAML() (any, error)    { return s.mask(), nil }
func (s String) MarshalText() ([]byte, error) { return []byte(s.mask()), nil }

func (s String) mask() string {
	if s == "" {
		return ""
	}
	return Redacted
}

// MaxFileBytes bounds a secret file (client secret, private key,
// certificate, admin token, peer secret).
const MaxFileBytes = 64 << 10

// ReadFile reads a secret file of at most MaxFileBytes, never more: a
// larger file (or a device that never ends) is an error, not a read into
// memory.
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: larger than %d KiB", path, MaxFileBytes>>10)
	}
	return data, nil
}
