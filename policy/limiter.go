package policy

import (
	"math"
	"sync/atomic"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// DefaultLimiterEntries is the default bound on (user, upstream) buckets a
// Limiter keeps.
const DefaultLimiterEntries = 100_000

// LimiterOptions configures a Limiter. The zero value is ready to use.
type LimiterOptions struct {
	// MaxEntries bounds memory: at most this many (user, upstream) buckets
	// are kept, the least recently used are evicted. An evicted user
	// starts again with a full bucket, so keep it well above the number
	// of users active within a burst's refill time. Zero means
	// DefaultLimiterEntries.
	MaxEntries int
	// Now returns the current time; nil means time.Now. For tests.
	Now func() time.Time
}

// Limiter applies the policy's rate_limits: one token bucket per user per
// upstream. Build one per process with NewLimiter and call Update on
// config reload: existing buckets keep their tokens and take the new rate
// and burst on their next use. Safe for concurrent use. A nil *Limiter
// allows everything.
type Limiter struct {
	now     func() time.Time
	table   atomic.Pointer[limitTable]
	buckets *lru.Cache[bucketKey, *rate.Limiter]
}

type limitTable struct {
	byUpstream map[string]rateSpec
	all        rateSpec
	hasAll     bool
}

type rateSpec struct {
	limit rate.Limit
	burst int
}

type bucketKey struct{ user, upstream string }

// NewLimiter returns a Limiter enforcing limits. The limits are validated
// as in Compile (paths "policy.rate_limits[i]").
func NewLimiter(limits []RateLimit, opts LimiterOptions) (*Limiter, error) {
	size := opts.MaxEntries
	if size <= 0 {
		size = DefaultLimiterEntries
	}
	buckets, err := lru.New[bucketKey, *rate.Limiter](size)
	if err != nil {
		return nil, err
	}
	l := &Limiter{now: opts.Now, buckets: buckets}
	if l.now == nil {
		l.now = time.Now
	}
	if err := l.Update(limits); err != nil {
		return nil, err
	}
	return l, nil
}

// Update replaces the limits. On error the old limits stay in force.
func (l *Limiter) Update(limits []RateLimit) error {
	if err := validateRateLimits(limits); err != nil {
		return err
	}
	t := &limitTable{byUpstream: make(map[string]rateSpec, len(limits))}
	for _, r := range limits {
		s := rateSpec{limit: rate.Limit(r.RequestsPerSecond), burst: r.effectiveBurst()}
		if r.Upstream == AllUpstreams {
			t.all, t.hasAll = s, true
			continue
		}
		t.byUpstream[r.Upstream] = s
	}
	l.table.Store(t)
	return nil
}

// Allow takes one token from userKey's bucket for upstream (a limit for
// upstream itself, else the "*" limit; no limit allows). When the bucket
// is empty it returns false and how long until a token is available,
// always > 0 (for a Retry-After or the JSON-RPC error data).
//
// userKey must identify the user across requests and issuers, e.g.
// identity.Identity.Key().
func (l *Limiter) Allow(userKey, upstream string) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	t := l.table.Load()
	spec, found := t.byUpstream[upstream]
	if !found {
		if !t.hasAll {
			return true, 0
		}
		spec = t.all
	}
	now := l.now()
	key := bucketKey{userKey, upstream}
	b, hit := l.buckets.Get(key)
	if !hit {
		nb := rate.NewLimiter(spec.limit, spec.burst)
		nb.SetLimitAt(now, spec.limit) // start the refill clock now
		if prev, loaded, _ := l.buckets.PeekOrAdd(key, nb); loaded {
			b = prev
		} else {
			b = nb
		}
	}
	if b.Limit() != spec.limit {
		b.SetLimitAt(now, spec.limit)
	}
	if b.Burst() != spec.burst {
		b.SetBurstAt(now, spec.burst)
	}
	if b.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - b.TokensAt(now)
	secs := missing / float64(spec.limit)
	d := time.Duration(math.Ceil(secs * float64(time.Second)))
	if d <= 0 {
		d = time.Nanosecond
	}
	return false, d
}
