package mcp

import (
	"bytes"
	"io"
	"testing"
)

// FuzzNoteCount: however the upstream's event stream is split into reads,
// limitedBody counts exactly the notification tokens in the whole stream.
func FuzzNoteCount(f *testing.F) {
	f.Add([]byte("event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{}}\n\n"), uint8(7))
	f.Add([]byte(`"notifications/message""notifications/progress""notifications/message"`), uint8(1))
	f.Add([]byte(`"notifications/progress"`), uint8(23))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		want := 0
		for _, p := range notePatterns {
			c := bytes.Count(stream, p)
			if c != overlapping(stream, p) {
				return // overlapping tokens (`"a""a"` sharing a quote) cannot occur in JSON
			}
			want += c
		}
		n := int(chunk%64) + 1
		b := &limitedBody{rc: io.NopCloser(&chunked{data: stream, n: n}), notes: &noteTracker{}}
		if _, err := io.Copy(io.Discard, b); err != nil {
			t.Fatal(err)
		}
		if got := b.notes.seen.Load(); got != int64(want) {
			t.Fatalf("counted %d, want %d (chunk %d)", got, want, n)
		}
	})
}

// chunked returns at most n bytes per Read.
type chunked struct {
	data []byte
	n    int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.data)
	c.data = c.data[k:]
	return k, nil
}

func overlapping(s, pat []byte) int {
	n := 0
	for i := 0; ; {
		j := bytes.Index(s[i:], pat)
		if j < 0 {
			return n
		}
		n++
		i += j + 1
	}
}
