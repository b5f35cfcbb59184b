package audit

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the logger's writes and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

var fixedTime = time.Date(2026, 11, 3, 10, 4, 5, 123456789, time.UTC)

func fixedClock() time.Time { return fixedTime }

// sampleRecord is a fully populated record, distinct per i.
func sampleRecord(i int) *Record {
	return &Record{
		RequestID: fmt.Sprintf("req-%d", i),
		SessionID: "sess-1",
		User:      UserRef{Issuer: "https://idp.example/", Subject: "alice", Email: "alice@example.com", Roles: []string{"sales", "admin"}},
		Client:    "claude-ai/1.0",
		Method:    "tools/call",
		Upstream:  "crm",
		Tool:      "get_account",
		Decision:  &DecisionRef{Allow: true, Rule: "sales-use-crm"},
		Credential: &CredentialRef{
			Flow: "token_exchange", PlatformSubject: "alice@crm", CacheHit: i%2 == 0,
		},
		Outcome:   OutcomeOK,
		LatencyMS: 12.5 + float64(i),
	}
}

// newBufLogger returns a stdout-sink logger writing into a buffer.
func newBufLogger(t *testing.T) (*Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	l, err := New(Config{}, Options{Stdout: buf, Clock: fixedClock})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l, buf
}

// logN logs n sample records.
func logN(t *testing.T, l *Logger, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if err := l.Log(context.Background(), sampleRecord(i)); err != nil {
			t.Fatalf("Log %d: %v", i, err)
		}
	}
}

func splitLines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	return out
}

func joinLines(lines []string) string {
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func countLines(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte{'\n'})
}

func filePath(t *testing.T) string {
	return filepath.Join(t.TempDir(), "audit.log")
}
