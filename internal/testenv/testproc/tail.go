package testproc

import "sync"

// DefaultMaxLogBytes bounds a process's captured output when
// Command.MaxLogBytes is 0.
const DefaultMaxLogBytes = 1 << 20

// TailBuffer is an io.Writer that keeps the last Max bytes written to it and
// drops older ones. It is safe for concurrent use. The zero value keeps
// nothing; use [NewTailBuffer].
type TailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

// NewTailBuffer returns a buffer keeping the last max bytes (max ≤ 0:
// DefaultMaxLogBytes).
func NewTailBuffer(max int) *TailBuffer {
	if max <= 0 {
		max = DefaultMaxLogBytes
	}
	return &TailBuffer{max: max}
}

// Write appends p, then drops the oldest bytes beyond the bound. It never
// fails.
func (b *TailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) >= b.max {
		b.buf = append(b.buf[:0], p[len(p)-b.max:]...)
		return len(p), nil
	}
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

// String returns everything kept.
func (b *TailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}

// Tail returns at most the last n bytes kept, prefixed with "…" when it
// left some out. n < 0 returns everything.
func (b *TailBuffer) Tail(n int) string {
	s := b.String()
	if n >= 0 && len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
