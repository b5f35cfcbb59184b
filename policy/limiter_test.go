package policy

import (
	"errors"
	"sync"
	"testing"
	"time"
)

// fakeClock is a manually advanced clock for the limiter.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newTestLimiter(t *testing.T, limits []RateLimit, max int) (*Limiter, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Unix(1_700_000_000, 0)}
	l, err := NewLimiter(limits, LimiterOptions{Now: clk.Now, MaxEntries: max})
	if err != nil {
		t.Fatal(err)
	}
	return l, clk
}

// drain calls Allow until it refuses and returns how many were allowed.
func drain(t *testing.T, l *Limiter, user, upstream string) (int, time.Duration) {
	t.Helper()
	for n := 0; n < 1000; n++ {
		if ok, retry := l.Allow(user, upstream); !ok {
			return n, retry
		}
	}
	t.Fatalf("%s@%s was never limited", user, upstream)
	return 0, 0
}

func TestLimiterBurstThenRefuse(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, []RateLimit{{Upstream: "sf", RequestsPerSecond: 5, Burst: 10}}, 0)
	n, retry := drain(t, l, "alice", "sf")
	if n != 10 {
		t.Errorf("burst allowed %d, want 10", n)
	}
	if retry <= 0 || retry > 200*time.Millisecond {
		t.Errorf("retryAfter = %v, want in (0, 200ms] at 5 rps", retry)
	}
	// Just before the token is due: still refused; at it: allowed once.
	clk.Advance(retry - time.Millisecond)
	if ok, r := l.Allow("alice", "sf"); ok || r <= 0 {
		t.Errorf("before retryAfter: ok=%v retry=%v, want refused with retry > 0", ok, r)
	}
	clk.Advance(time.Millisecond)
	if ok, _ := l.Allow("alice", "sf"); !ok {
		t.Error("at retryAfter: refused, want allowed")
	}
	if ok, _ := l.Allow("alice", "sf"); ok {
		t.Error("one token refilled, two allowed")
	}
	// After a long idle period the bucket is full again, not more.
	clk.Advance(time.Hour)
	if n, _ := drain(t, l, "alice", "sf"); n != 10 {
		t.Errorf("after idle: burst %d, want 10", n)
	}
}

func TestLimiterUsersAndUpstreamsIndependent(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, []RateLimit{
		{Upstream: "sf", RequestsPerSecond: 1, Burst: 2},
		{Upstream: "*", RequestsPerSecond: 1, Burst: 3},
	}, 0)
	if n, _ := drain(t, l, "alice", "sf"); n != 2 {
		t.Errorf("alice@sf burst %d, want 2", n)
	}
	if n, _ := drain(t, l, "bob", "sf"); n != 2 {
		t.Errorf("bob@sf burst %d, want 2 (independent of alice)", n)
	}
	// "*" applies to other upstreams, one bucket per upstream.
	if n, _ := drain(t, l, "alice", "crm"); n != 3 {
		t.Errorf("alice@crm burst %d, want 3 from *", n)
	}
	if n, _ := drain(t, l, "alice", "servicenow"); n != 3 {
		t.Errorf("alice@servicenow burst %d, want 3 from * (own bucket)", n)
	}
}

func TestLimiterNoLimit(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, []RateLimit{{Upstream: "sf", RequestsPerSecond: 1, Burst: 1}}, 0)
	for range 100 {
		if ok, retry := l.Allow("alice", "crm"); !ok || retry != 0 {
			t.Fatal("upstream without a limit (and no *) was limited")
		}
	}
	var nilL *Limiter
	if ok, _ := nilL.Allow("a", "b"); !ok {
		t.Error("nil limiter refused")
	}
}

func TestLimiterDefaultBurstAndFractionalRate(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, []RateLimit{
		{Upstream: "a", RequestsPerSecond: 2.5},
		{Upstream: "b", RequestsPerSecond: 0.5},
	}, 0)
	if n, _ := drain(t, l, "u", "a"); n != 3 {
		t.Errorf("default burst for 2.5 rps = %d, want ceil = 3", n)
	}
	n, retry := drain(t, l, "u", "b")
	if n != 1 || retry != 2*time.Second {
		t.Errorf("0.5 rps: burst %d retry %v, want 1 and 2s", n, retry)
	}
	clk.Advance(2 * time.Second)
	if ok, _ := l.Allow("u", "b"); !ok {
		t.Error("0.5 rps: refused after 2s")
	}
}

func TestLimiterUpdate(t *testing.T) {
	t.Parallel()
	l, clk := newTestLimiter(t, []RateLimit{{Upstream: "sf", RequestsPerSecond: 1, Burst: 2}}, 0)
	if n, _ := drain(t, l, "alice", "sf"); n != 2 {
		t.Fatalf("burst %d", n)
	}
	if err := l.Update([]RateLimit{{Upstream: "sf", RequestsPerSecond: -1}}); err == nil {
		t.Fatal("Update accepted an invalid limit")
	}
	// The failed update kept the old limits: still empty.
	if ok, _ := l.Allow("alice", "sf"); ok {
		t.Fatal("failed Update changed the limits")
	}
	// A bigger burst applies to the existing bucket, which keeps its (empty)
	// tokens and refills at the new rate.
	if err := l.Update([]RateLimit{{Upstream: "sf", RequestsPerSecond: 10, Burst: 5}}); err != nil {
		t.Fatal(err)
	}
	if ok, retry := l.Allow("alice", "sf"); ok || retry > 100*time.Millisecond {
		t.Errorf("after update: ok=%v retry=%v, want refused with retry <= 100ms", ok, retry)
	}
	clk.Advance(time.Second)
	if n, _ := drain(t, l, "alice", "sf"); n != 5 {
		t.Errorf("after update and refill: burst %d, want 5", n)
	}
	// Removing the limit lifts it.
	if err := l.Update(nil); err != nil {
		t.Fatal(err)
	}
	if ok, _ := l.Allow("alice", "sf"); !ok {
		t.Error("limit removed but still refused")
	}
}

func TestLimiterBoundedMemory(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, []RateLimit{{Upstream: "*", RequestsPerSecond: 1, Burst: 1}}, 8)
	for i := range 100 {
		l.Allow(string(rune('A'+i)), "x")
	}
	if got := l.buckets.Len(); got != 8 {
		t.Errorf("buckets = %d, want bounded at 8", got)
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, []RateLimit{{Upstream: "*", RequestsPerSecond: 1, Burst: 50}}, 0)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		allowed int
	)
	for range 8 {
		wg.Go(func() {
			for range 100 {
				if ok, _ := l.Allow("alice", "x"); ok {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 50 {
		t.Errorf("800 concurrent calls on a frozen clock allowed %d, want exactly the burst 50", allowed)
	}
}

func TestLimiterCheck(t *testing.T) {
	t.Parallel()
	l, _ := newTestLimiter(t, []RateLimit{{Upstream: "crm", RequestsPerSecond: 1000, Burst: 1}}, 0)
	if err := l.Check("u", "crm"); err != nil {
		t.Fatalf("first call: %v", err)
	}
	err := l.Check("u", "crm")
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.Upstream != "crm" || rl.RetryAfter <= 0 {
		t.Fatalf("Check = %#v, want *RateLimitedError for crm with RetryAfter > 0", err)
	}
	if got, want := err.Error(), "rate limit exceeded for upstream crm: retry after 1ms"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}
