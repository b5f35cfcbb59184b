package front

import (
	"cmp"
	"slices"
	"sync"
	"time"
)

// Bounds of the audit records written for authentication failures: anyone
// can cause one, so they must not let an unauthenticated client grow the
// audit log (or Mandate's memory) at will.
const (
	// AuthFailureWindow is the period the limits below apply to.
	AuthFailureWindow = time.Minute
	// AuthFailureBurst is how many failures per remote address and window
	// are recorded one by one; the rest are counted.
	AuthFailureBurst = 10
	// AuthFailureMaxRecords bounds the failures recorded one by one per
	// window over all addresses.
	AuthFailureMaxRecords = 1000
	// AuthFailureMaxAddrs bounds the addresses tracked per window; failures
	// from more addresses are counted together.
	AuthFailureMaxAddrs = 10_000
	// AuthFailureMaxSummaries bounds the per-address summary records per
	// window (the addresses with the most suppressed failures); the other
	// addresses share one summary.
	AuthFailureMaxSummaries = 100
)

// AuthSummary is the count of failures from one address (addr "" for the
// other addresses together) that were not recorded one by one.
type AuthSummary struct {
	Addr  string
	Count int
	Since time.Time
}

// AuthFailureLimiter decides which authentication failures get their own
// audit record and counts the others; at the end of each window with
// suppressed failures it hands their counts to flush.
type AuthFailureLimiter struct {
	Window time.Duration
	flush  func([]AuthSummary)

	mu       sync.Mutex
	start    time.Time         // of the current window
	counts   map[string][2]int // addr → recorded, suppressed
	recorded int               // in this window, all addresses
	overflow int               // suppressed failures of untracked addresses
	pending  bool              // a flush is scheduled
}

// NewAuthFailureLimiter counts failures per window; flush gets the counts.
func NewAuthFailureLimiter(window time.Duration, flush func([]AuthSummary)) *AuthFailureLimiter {
	return &AuthFailureLimiter{Window: window, flush: flush, counts: map[string][2]int{}}
}

// Allow reports whether a failure from addr gets its own record; if not,
// it is counted for the window's summary.
func (l *AuthFailureLimiter) Allow(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.start.IsZero() || now.Sub(l.start) >= l.Window && !l.pending {
		l.start = now
		clear(l.counts)
		l.recorded = 0
		l.overflow = 0
	}
	c, tracked := l.counts[addr]
	if !tracked && len(l.counts) >= AuthFailureMaxAddrs {
		l.overflow++
		l.schedule(now)
		return false
	}
	if c[0] < AuthFailureBurst && l.recorded < AuthFailureMaxRecords {
		c[0]++
		l.recorded++
		l.counts[addr] = c
		return true
	}
	c[1]++
	l.counts[addr] = c
	l.schedule(now)
	return false
}

// schedule arranges a flush at the end of the window. l.mu is held.
func (l *AuthFailureLimiter) schedule(now time.Time) {
	if l.pending {
		return
	}
	l.pending = true
	time.AfterFunc(l.start.Add(l.Window).Sub(now), l.FlushNow)
}

// FlushNow ends the window: the suppressed counts go to flush, at most
// AuthFailureMaxSummaries addresses by name and the rest together.
func (l *AuthFailureLimiter) FlushNow() {
	l.mu.Lock()
	var out []AuthSummary
	for addr, c := range l.counts {
		if c[1] > 0 {
			out = append(out, AuthSummary{Addr: addr, Count: c[1], Since: l.start})
		}
	}
	rest := AuthSummary{Count: l.overflow, Since: l.start}
	l.start = time.Time{}
	clear(l.counts)
	l.recorded = 0
	l.overflow = 0
	l.pending = false
	l.mu.Unlock()

	slices.SortFunc(out, func(a, b AuthSummary) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Addr, b.Addr))
	})
	if len(out) > AuthFailureMaxSummaries {
		for _, s := range out[AuthFailureMaxSummaries:] {
			rest.Count += s.Count
		}
		out = out[:AuthFailureMaxSummaries]
	}
	if rest.Count > 0 {
		out = append(out, rest)
	}
	if len(out) > 0 {
		l.flush(out)
	}
}

// SetWindow changes the window's length (tests).
func (l *AuthFailureLimiter) SetWindow(d time.Duration) {
	l.mu.Lock()
	l.Window = d
	l.mu.Unlock()
}
