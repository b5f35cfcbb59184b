package audit

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// wantDecoded is what a JSON decoder must read back for s: invalid UTF-8
// bytes become U+FFFD, one each.
func wantDecoded(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r)
		i += n
	}
	return b.String()
}

func checkString(t *testing.T, s string) {
	t.Helper()
	enc := appendString(nil, s)
	if !json.Valid(enc) {
		t.Fatalf("appendString(%q) = %s: not valid JSON", s, enc)
	}
	var got string
	if err := json.Unmarshal(enc, &got); err != nil {
		t.Fatal(err)
	}
	if want := wantDecoded(s); got != want {
		t.Fatalf("appendString(%q) decodes to %q, want %q", s, got, want)
	}
	if strings.ContainsAny(string(enc), "\n\r") {
		t.Fatalf("appendString(%q) = %q contains a raw newline", s, enc)
	}
}

func TestAppendString(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", `quote " backslash \ slash /`, "tab\tnl\ncr\r", "\x00\x01\x1f\x7f",
		"héllo wörld ✓ 😀", "\u2028\u2029", "bad \xff\xfe utf8 \xc3", "<script>&amp;</script>",
		`{"hash":"x"}`,
	} {
		checkString(t, s)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "a\"b", "\xff", "\u2028", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkString(t, s) })
}

func TestEncodeEdgeValues(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		rec  Record
		want string // substring of the line
	}{
		{"NaN latency", Record{LatencyMS: math.NaN()}, `"latency_ms":0`},
		{"Inf latency", Record{LatencyMS: math.Inf(1)}, `"latency_ms":0`},
		{"fractional latency", Record{LatencyMS: 0.125}, `"latency_ms":0.125`},
		{"unencodable arguments", Record{Arguments: map[string]any{"c": make(chan int)}}, `"arguments":{"_mandate_error":"json: unsupported type: chan int"}`},
		{"arguments sorted", Record{Arguments: map[string]any{"b": 1, "a": "x"}}, `"arguments":{"a":"x","b":1}`},
		{"no roles", Record{User: UserRef{Subject: "s"}}, `"user":{"issuer":"","subject":"s"}`},
		{"service account", Record{Credential: &CredentialRef{Flow: "client_credentials", PlatformSubject: "svc-1", ServiceAccount: true}},
			`"credential":{"flow":"client_credentials","platform_subject":"svc-1","service_account":true,"cache_hit":false}`},
		{"denied", Record{Decision: &DecisionRef{Allow: false, Reason: "default deny"}}, `"decision":{"allow":false,"reason":"default deny"}`},
		{"non-UTC time", Record{Time: fixedTime.In(time.FixedZone("X", 3600))}, `"time":"2026-11-03T10:04:05.123456789Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := tt.rec
			if r.Time.IsZero() {
				r.Time = fixedTime
			}
			line := string(appendBody(nil, &r)) + "}"
			if !json.Valid([]byte(line)) {
				t.Fatalf("not valid JSON: %s", line)
			}
			if !strings.Contains(line, tt.want) {
				t.Fatalf("line %s\ndoes not contain %s", line, tt.want)
			}
		})
	}
}
