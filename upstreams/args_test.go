package upstreams

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckArguments(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in      string
		wantErr string // "" = accepted
	}{
		{``, ""},
		{`null`, ""},
		{`{}`, ""},
		{` { } `, ""},
		{`{"table":"incident","limit":5,"q":{"a":[1,{"b":null}]}}`, ""},
		{`{"a":1,"A_b":2,"ab":3}`, ""},
		{`[1]`, "must be a JSON object"},
		{`"x"`, "must be a JSON object"},
		{`{"table":"incident","TABLE":"sys_user"}`, `keys "table" and "TABLE" differ only in case`},
		{`{"table":"incident","table":"sys_user"}`, `key "table" appears more than once`},
		{`{"t\u0061ble":"incident","table":"sys_user"}`, `key "table" appears more than once`},
		// The Kelvin sign folds to k in Go's encoding/json.
		{"{\"kind\":1,\"\u212aind\":2}", "differ only in case"},
		// The long s folds to s.
		{"{\"sort\":1,\"\u017fort\":2}", "differ only in case"},
		{`{"q":{"filter":{"Table":"a","table":"b"}}}`, `arguments.q.filter: keys "Table" and "table"`},
		{`{"list":[{"x":1},{"x":1,"X":2}]}`, `arguments.list[1]: keys "x" and "X"`},
		{"{\"a\":\"\xff\"}", "not valid UTF-8"},
		{`{"a":1}{"b":2}`, "trailing data"},
		{`{"a":}`, "not valid JSON"},
		{`{"a":1`, "not valid JSON"},
		{strings.Repeat(`{"a":`, MaxArgumentDepth+1) + "1" + strings.Repeat("}", MaxArgumentDepth+1), "nested deeper"},
	} {
		err := CheckArguments([]byte(tc.in))
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("CheckArguments(%q) = %v, want accepted", tc.in, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("CheckArguments(%q) = %v, want error containing %q", tc.in, err, tc.wantErr)
		}
	}
}

// TestCheckArgumentsAgreesWithGoDecoding: what CheckArguments accepts,
// Go's case-insensitive struct decoding reads the same way policy reads
// the exact-key map — the property the check exists for.
func TestCheckArgumentsAgreesWithGoDecoding(t *testing.T) {
	t.Parallel()
	in := `{"table":"incident","TABLE":"sys_user"}`
	var m map[string]any
	var s struct{ Table string }
	_ = json.Unmarshal([]byte(in), &m)
	_ = json.Unmarshal([]byte(in), &s)
	if m["table"] == s.Table {
		t.Fatalf("premise: map %v and struct %q agree; the check would not be needed", m["table"], s.Table)
	}
	if CheckArguments([]byte(in)) == nil {
		t.Fatal("the ambiguous object was accepted")
	}
}

func FuzzCheckArguments(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"A":2}`, `{"a":{"b":[{"c":1}]}}`, `{"\u212a":1,"k":2}`, `{"x":"\u00e9","X":1}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		// The fast scan and the slow, precise walk agree on valid objects.
		if tr := bytes.Trim(raw, " \t\r\n"); len(tr) > 0 && tr[0] == '{' && json.Valid(tr) && utf8.Valid(tr) {
			dec := json.NewDecoder(bytes.NewReader(tr))
			slow := checkValue(dec, nil, 0)
			if fast := ambiguous(tr); fast != (slow != nil) {
				t.Fatalf("%q: fast scan says ambiguous=%v, slow walk says %v", tr, fast, slow)
			}
		}
		if CheckArguments(raw) != nil || len(bytes.Trim(raw, " \t\r\n")) == 0 {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("accepted %q but Go cannot decode it: %v", raw, err)
		}
		// No two keys of the top-level object fold to one Go struct field.
		keys := make([]string, 0, len(m))
		for k := range m {
			for _, o := range keys {
				if strings.EqualFold(k, o) {
					t.Fatalf("accepted %q with keys %q and %q", raw, k, o)
				}
			}
			keys = append(keys, k)
		}
	})
}

func BenchmarkCheckArguments(b *testing.B) {
	raw := []byte(`{"table":"incident","query":"active=true^priority=1","fields":["number","short_description"],"limit":10}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckArguments(raw); err != nil {
			b.Fatal(err)
		}
	}
}
