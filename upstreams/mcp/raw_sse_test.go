package mcp

import (
	"strings"
	"testing"
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
