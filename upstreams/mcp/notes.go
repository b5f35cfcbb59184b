package mcp

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// noteTracker closes a go-sdk race: the client reads a call's response and
// hands it back to the caller while notifications that arrived just ahead of
// it (progress, log messages) still sit in the client's handler queue. A
// proxy that returns the result at once forwards it before those
// notifications, and the downstream client drops them as late (FACTS.md:
// 5–15% lost).
//
// The HTTP layer counts the notifications/progress and notifications/message
// tokens it reads from the upstream's event streams (seen); the receiving
// middleware counts the ones it has finished relaying (done). Because the
// body bytes of a notification are read before the bytes of a response that
// follows it, seen already includes every notification that preceded the
// response when the call returns. settle then waits until done catches up.
// The wait is exact (no fixed sleep) and bounded by grace; it costs one
// atomic load and an uncontended mutex when nothing is pending, and is only
// done for calls that asked for progress or sessions that use logging.
type noteTracker struct {
	seen atomic.Int64

	mu   sync.Mutex
	done int64
	wake chan struct{} // closed when done advances; nil without waiters
}

// handled records one relayed (or dropped) notification.
func (t *noteTracker) handled() {
	t.mu.Lock()
	t.done++
	if t.wake != nil {
		close(t.wake)
		t.wake = nil
	}
	t.mu.Unlock()
}

// settle waits until every notification seen so far has been relayed, for
// at most grace. A notification that never reaches the middleware (a
// malformed one go-sdk rejects, or a false match in the byte stream) would
// make later waits run to grace; on expiry settle therefore forgives the
// difference. It reports whether it caught up.
func (t *noteTracker) settle(ctx context.Context, grace time.Duration) bool {
	target := t.seen.Load()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		t.mu.Lock()
		if t.done >= target {
			t.mu.Unlock()
			return true
		}
		if t.wake == nil {
			t.wake = make(chan struct{})
		}
		w := t.wake
		t.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(grace)
		}
		select {
		case <-w:
		case <-timer.C:
			t.mu.Lock()
			if t.done < target {
				t.done = target
			}
			t.mu.Unlock()
			return false
		case <-ctx.Done():
			return false
		}
	}
}
