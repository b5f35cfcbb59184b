package gateway

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
	// authFailureWindow is the period the limits below apply to.
	authFailureWindow = time.Minute
	// authFailureBurst is how many failures per remote address and window
	// are recorded one by one; the rest are counted.
	authFailureBurst = 10
	// authFailureMaxRecords bounds the failures recorded one by one per
	// window over all addresses.
	authFailureMaxRecords = 1000
	// authFailureMaxAddrs bounds the addresses tracked per window; failures
	// from more addresses are counted together.
	authFailureMaxAddrs = 10_000
	// authFailureMaxSummaries bounds the per-address summary records per
	// window (the addresses with the most suppressed failures); the other
	// addresses share one summary.
	authFailureMaxSummaries = 100
)

// authSummary is the count of failures from one address (addr "" for the
// other addresses together) that were not recorded one by one.
type authSummary struct {
	addr  string
	count int
	since time.Time
}

// authFailureLimiter decides which authentication failures get their own
// audit record and counts the others; at the end of each window with
// suppressed failures it hands their counts to flush.
type authFailureLimiter struct {
	window time.Duration
	flush  func([]authSummary)

	mu       sync.Mutex
	start    time.Time         // of the current window
	counts   map[string][2]int // addr → recorded, suppressed
	recorded int               // in this window, all addresses
	overflow int               // suppressed failures of untracked addresses
	pending  bool              // a flush is scheduled
}

func newAuthFailureLimiter(window time.Duration, flush func([]authSummary)) *authFailureLimiter {
	return &authFailureLimiter{window: window, flush: flush, counts: map[string][2]int{}}
}

// allow reports whether a failure from addr gets its own record; if not,
// it is counted for the window's summary.
func (l *authFailureLimiter) allow(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if l.start.IsZero() || now.Sub(l.start) >= l.window && !l.pending {
		l.start = now
		clear(l.counts)
		l.recorded = 0
		l.overflow = 0
	}
	c, tracked := l.counts[addr]
	if !tracked && len(l.counts) >= authFailureMaxAddrs {
		l.overflow++
		l.schedule(now)
		return false
	}
	if c[0] < authFailureBurst && l.recorded < authFailureMaxRecords {
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
func (l *authFailureLimiter) schedule(now time.Time) {
	if l.pending {
		return
	}
	l.pending = true
	time.AfterFunc(l.start.Add(l.window).Sub(now), l.flushNow)
}

// flushNow ends the window: the suppressed counts go to flush, at most
// authFailureMaxSummaries addresses by name and the rest together.
func (l *authFailureLimiter) flushNow() {
	l.mu.Lock()
	var out []authSummary
	for addr, c := range l.counts {
		if c[1] > 0 {
			out = append(out, authSummary{addr: addr, count: c[1], since: l.start})
		}
	}
	rest := authSummary{count: l.overflow, since: l.start}
	l.start = time.Time{}
	clear(l.counts)
	l.recorded = 0
	l.overflow = 0
	l.pending = false
	l.mu.Unlock()

	slices.SortFunc(out, func(a, b authSummary) int {
		return cmp.Or(cmp.Compare(b.count, a.count), cmp.Compare(a.addr, b.addr))
	})
	if len(out) > authFailureMaxSummaries {
		for _, s := range out[authFailureMaxSummaries:] {
			rest.count += s.count
		}
		out = out[:authFailureMaxSummaries]
	}
	if rest.count > 0 {
		out = append(out, rest)
	}
	if len(out) > 0 {
		l.flush(out)
	}
}
