package mcp

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
)

// TestReadEventStream: the raw path picks the response with its
// id out of an upstream event stream, whatever the line endings, other
// events and line lengths, and says so when it is missing.
func TestReadEventStream(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 100<<10) // longer than the reader's buffer
	s := &session{}
	for _, tc := range []struct {
		name, body, want, wantErr string
	}{
		{"lf", "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"mx-1\",\"result\":{}}\n\n", `{"jsonrpc":"2.0","id":"mx-1","result":{}}`, ""},
		{"crlf", "id: 1\r\ndata: {\"id\":\"mx-1\",\"result\":{}}\r\n\r\n", `{"id":"mx-1","result":{}}`, ""},
		{"notification first", "data: {\"method\":\"notifications/progress\"}\n\ndata: {\"id\":\"mx-1\",\"result\":1}\n\n", `{"id":"mx-1","result":1}`, ""},
		{"other id", "data: {\"id\":\"mx-2\",\"result\":1}\n\n", "", "ended without a response"},
		{"no final blank line", "data: {\"id\":\"mx-1\",\"result\":2}", `{"id":"mx-1","result":2}`, ""},
		{"multi-line data", "data: {\"id\":\"mx-1\",\ndata: \"result\":3}\n\n", `{"id":"mx-1","result":3}`, ""},
		{"long line", "data: {\"id\":\"mx-1\",\"result\":\"" + long + "\"}\n\n", `{"id":"mx-1","result":"` + long + `"}`, ""},
		{"empty", "", "", "ended without a response"},
	} {
		got, err := s.readEvent(strings.NewReader(tc.body), []byte(`"mx-1"`))
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %q, %v; want error %q", tc.name, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tc.want {
			t.Errorf("%s: got %.80q, %v; want %.80q", tc.name, got, err, tc.want)
		}
	}
}

func TestMediaType(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		ct, mt string
		want   bool
	}{
		{"application/json", "application/json", true},
		{"application/json; charset=utf-8", "application/json", true},
		{"Application/JSON ;charset=utf-8", "application/json", true},
		{"application/jsonx", "application/json", false},
		{"text/event-stream", "application/json", false},
		{"", "application/json", false},
		{"text/event-stream", "text/event-stream", true},
	} {
		if got := mediaType(tc.ct, tc.mt); got != tc.want {
			t.Errorf("mediaType(%q, %q) = %v, want %v", tc.ct, tc.mt, got, tc.want)
		}
	}
}

// TestDecodeRaw: the raw path's outcome comes from the decoded answer: a
// result holding an "error" object is a success, isError is a tool error,
// a JSON-RPC error is returned as such, and an answer to another id or
// without a result object is refused.
func TestDecodeRaw(t *testing.T) {
	t.Parallel()
	id := []byte(`"mx-1"`)
	for _, tc := range []struct {
		name, msg string
		isError   bool
		errCode   int64  // a *jsonrpc.Error with this code
		errText   string // another error containing this
	}{
		{"result", `{"jsonrpc":"2.0","id":"mx-1","result":{"content":[]}}`, false, 0, ""},
		{"error object in result", `{"jsonrpc":"2.0","id":"mx-1","result":{"structuredContent":{"error":{"code":1}},"content":[]}}`, false, 0, ""},
		{"isError", `{"id":"mx-1","result":{"isError":true,"content":[]},"jsonrpc":"2.0"}`, true, 0, ""},
		{"isError text in a string", `{"jsonrpc":"2.0","id":"mx-1","result":{"content":[{"type":"text","text":"\"isError\":true"}]}}`, false, 0, ""},
		{"JSON-RPC error", `{"jsonrpc":"2.0","id":"mx-1","error":{"code":-32050,"message":"quota"}}`, false, -32050, ""},
		{"other id", `{"jsonrpc":"2.0","id":"mx-2","result":{}}`, false, 0, "id"},
		{"no result", `{"jsonrpc":"2.0","id":"mx-1"}`, false, 0, "no result"},
		{"not JSON", `<html>`, false, 0, "not valid JSON"},
	} {
		res, err := decodeRaw([]byte(tc.msg), id, false)
		var je *jsonrpc.Error
		switch {
		case tc.errCode != 0:
			if !errors.As(err, &je) || je.Code != tc.errCode {
				t.Errorf("%s: %v, want JSON-RPC error %d", tc.name, err, tc.errCode)
			}
		case tc.errText != "":
			if err == nil || !strings.Contains(err.Error(), tc.errText) || errors.As(err, &je) {
				t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.errText)
			}
		case err != nil || res.IsError != tc.isError || !strings.Contains(tc.msg, string(res.Result)):
			t.Errorf("%s: %+v, %v; want isError %v", tc.name, res, err, tc.isError)
		}
	}
}

// TestScanRawMatchesEncodingJSON: the allocation-free reader of the raw
// path's answers agrees with encoding/json wherever it answers, and leaves
// the rest (escaped keys, non-boolean isError, errors) to it.
func TestScanRawMatchesEncodingJSON(t *testing.T) {
	id := []byte(`"mx-1"`)
	scanned := 0
	for _, msg := range []string{
		`{"jsonrpc":"2.0","id":"mx-1","result":{"content":[]}}`,
		" {\n \"id\" : \"mx-1\" ,\t\"result\" : { \"isError\" : true , \"content\" : [ ] } } ",
		`{"id":"mx-1","result":{"ISERROR":true}}`,
		`{"id":"mx-1","result":{"isError":true,"isError":false}}`,
		`{"id":"mx-1","result":{"content":[{"isError":true}],"structuredContent":{"isError":true,"error":{}}}}`,
		`{"id":"mx-1","result":{"content":[{"type":"text","text":"}\"isError\":true{"}]}}`,
		`{"id":"mx-1","result":{"isError":null}}`,
		`{"id":"mx-1","result":{"\u0069sError":true}}`,
		`{"id":"mx-1","result":{"isError":"yes"}}`,
		`{"id":"mx-1","error":null,"result":{}}`,
		`{"id":"mx-1","error":{"code":1,"message":"m"}}`,
		`{"id":"mx-1","result":[]}`,
		`{"id":"mx-1","result":{}`,
		`{"id":"mx-2","result":{}}`,
		`{"id":"mx-1","Result":{"isError":true},"result":{}}`,
	} {
		res, ok := scanRaw([]byte(msg), id)
		var env struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{}       `json:"error"`
		}
		var r struct {
			IsError bool `json:"isError"`
		}
		jerr := json.Unmarshal([]byte(msg), &env)
		if jerr == nil && env.Result != nil {
			jerr = json.Unmarshal(env.Result, &r)
		}
		if !ok {
			continue // decodeRaw's encoding/json path answers
		}
		scanned++
		if jerr != nil || env.Error != nil || string(env.ID) != string(id) || string(res.Result) != string(env.Result) || res.IsError != r.IsError {
			t.Errorf("%s: scanRaw %q isError=%v; encoding/json %q isError=%v err=%v", msg, res.Result, res.IsError, env.Result, r.IsError, jerr)
		}
	}
	if scanned != 9 {
		t.Errorf("scanRaw answered %d of the messages, want 9 (the rest are encoding/json's)", scanned)
	}
}

// BenchmarkDecodeRaw: reading a plain answer on the fast path (0 allocs/op
// measured without -race; an allocation count is a benchmark figure, not a
// test assertion — the race detector's instrumentation allocates).
func BenchmarkDecodeRaw(b *testing.B) {
	msg := []byte(`{"jsonrpc":"2.0","id":"mx-1","result":{"content":[{"type":"text","text":"hello"}],"structuredContent":{"a":1}}}`)
	id := []byte(`"mx-1"`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeRaw(msg, id, false); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzScanRaw: on any upstream answer scanRaw does not panic, and where it
// answers, encoding/json reads the same result and isError.
func FuzzScanRaw(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":"mx-1","result":{"content":[]}}`,
		`{"id":"mx-1","result":{"isError":true,"content":[{"type":"text","text":"a\"b"}]}}`,
		`{"id":"mx-1","error":{"code":1,"message":"m"}}`,
		`{"id":"mx-1","result":{"ISERROR":false,"x":[1,{"y":null}]}}`,
	} {
		f.Add([]byte(s))
	}
	id := []byte(`"mx-1"`)
	f.Fuzz(func(t *testing.T, msg []byte) {
		res, ok := scanRaw(msg, id)
		if !ok {
			return
		}
		var env struct {
			ID     json.RawMessage `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct{}       `json:"error"`
		}
		var r struct {
			IsError bool `json:"isError"`
		}
		if err := json.Unmarshal(msg, &env); err != nil || env.Error != nil || string(env.ID) != string(id) {
			t.Fatalf("scanRaw accepted %q; encoding/json: %v, error %v, id %s", msg, err, env.Error, env.ID)
		}
		if err := json.Unmarshal(env.Result, &r); err != nil || string(res.Result) != string(env.Result) || res.IsError != r.IsError {
			t.Fatalf("%q: scanRaw %q isError=%v; encoding/json %q isError=%v (%v)", msg, res.Result, res.IsError, env.Result, r.IsError, err)
		}
	})
}
