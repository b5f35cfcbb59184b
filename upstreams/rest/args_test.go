package rest

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

type testArgs struct {
	Name  string `json:"name"`
	Limit *int   `json:"limit"`
}

func TestDecodeArgs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		raw     any
		want    string // Name after decoding
		wantErr string // substring of the -32602 message; "" for success
	}{
		{"nil", nil, "", ""},
		{"null", json.RawMessage(" null "), "", ""},
		{"empty", json.RawMessage(""), "", ""},
		{"raw object", json.RawMessage(`{"name":"x"}`), "x", ""},
		{"bytes", []byte(`{"name":"y"}`), "y", ""},
		{"decoded map", map[string]any{"name": "z"}, "z", ""},
		{"array", json.RawMessage(`[1]`), "", `invalid arguments for tool "t": arguments must be a JSON object`},
		{"string", json.RawMessage(`"s"`), "", "must be a JSON object"},
		{"unknown field", json.RawMessage(`{"nmae":"x"}`), "", `unknown field "nmae"`},
		{"wrong type", json.RawMessage(`{"limit":"3"}`), "", "cannot unmarshal"},
		{"invalid JSON", json.RawMessage(`{"name":`), "", `invalid arguments for tool "t"`},
		{"trailing data", json.RawMessage(`{"name":"x"} {}`), "", "trailing data after the JSON object"},
		{"keys equal ignoring case", json.RawMessage(`{"name":"x","NAME":"y"}`), "", `keys "name" and "NAME" differ only in case`},
		{"repeated key", json.RawMessage(`{"name":"x","name":"y"}`), "", `key "name" appears more than once`},
		{"unmarshalable", map[string]any{"f": func() {}}, "", "unsupported type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var v testArgs
			err := DecodeArgs("t", tt.raw, &v)
			if tt.wantErr == "" {
				if err != nil || v.Name != tt.want {
					t.Errorf("DecodeArgs = %v, name %q; want %q", err, v.Name, tt.want)
				}
				return
			}
			var rpc *jsonrpc.Error
			if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams || !strings.Contains(rpc.Message, tt.wantErr) {
				t.Errorf("DecodeArgs = %v, want -32602 containing %q", err, tt.wantErr)
			}
		})
	}
}

// Arbitrary argument bytes: never a panic, and either a clean decode or a
// -32602 error.
func FuzzDecodeArgs(f *testing.F) {
	for _, s := range []string{`{}`, `{"name":"x","limit":3}`, `[1]`, `null`, `{"limit":1e400}`, `{"name":"\u0000"} x`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v testArgs
		err := DecodeArgs("t", json.RawMessage(data), &v)
		if err == nil {
			return
		}
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams {
			t.Fatalf("DecodeArgs(%q) = %v, not -32602", data, err)
		}
	})
}

func TestLimitArg(t *testing.T) {
	t.Parallel()
	n := func(i int) *int { return &i }
	tests := []struct {
		v        *int
		hi, def  int
		want     int
		wantFail bool
	}{
		{nil, 100, 20, 20, false},
		{nil, 10, 50, 10, false}, // default capped at hi
		{n(1), 10, 5, 1, false},
		{n(10), 10, 5, 10, false},
		{n(0), 10, 5, 0, true},
		{n(11), 10, 5, 0, true},
	}
	for _, tt := range tests {
		got, bad := LimitArg("limit", tt.v, tt.hi, tt.def)
		if got != tt.want || (bad != "") != tt.wantFail {
			t.Errorf("LimitArg(%v, %d, %d) = %d, %q", tt.v, tt.hi, tt.def, got, bad)
		}
		if tt.wantFail && !strings.HasPrefix(bad, "limit must be between 1 and 10, got ") {
			t.Errorf("message %q", bad)
		}
	}
}

func TestClipAndSanitize(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, clip, sanitize string }{
		{"short", "short", "short"},
		{"0123456789abc", "0123456789…", "0123456789…"},
		{"ééééééé", "ééééé…", "ééééé…"}, // 2-byte runes: cut at a boundary (10 bytes)
		{" a\nb\x00c ", " a\nb\x00c ", "a b c"},
	}
	for _, tt := range tests {
		if got := Clip(tt.in, 10); got != tt.clip {
			t.Errorf("Clip(%q) = %q, want %q", tt.in, got, tt.clip)
		}
		if got := Sanitize(tt.in, 10); got != tt.sanitize {
			t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.sanitize)
		}
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	h := func(v string) http.Header { return http.Header{"Retry-After": {v}} }
	if got := RetryAfter(h(" 42 ")); got != 42*time.Second {
		t.Errorf("seconds: %v", got)
	}
	if got := RetryAfter(h(time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))); got < 59*time.Minute || got > time.Hour {
		t.Errorf("date: %v", got)
	}
	for _, v := range []string{"", "-3", "soon", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)} {
		if got := RetryAfter(h(v)); got != 0 {
			t.Errorf("RetryAfter(%q) = %v, want 0", v, got)
		}
	}
}
