package policy

import (
	"fmt"
	"time"
)

// DeniedError is a refused Decision as an error, for the gateway's single
// error-to-JSON-RPC mapping. Its message names no rule and no hidden
// detail, so it is safe to send to the client; the Decision is for the
// audit record and the span.
type DeniedError struct {
	Decision Decision
}

func (e *DeniedError) Error() string { return "access denied by policy" }

// Err returns nil when d allows, else a *DeniedError carrying d.
func (d Decision) Err() error {
	if d.Allow {
		return nil
	}
	return &DeniedError{Decision: d}
}

// RateLimitedError reports that a user exceeded an upstream's rate limit.
// Its message is safe to send to the client.
type RateLimitedError struct {
	// Upstream is the upstream's configured name.
	Upstream string
	// RetryAfter is how long until the next request would be allowed.
	RetryAfter time.Duration
}

func (e *RateLimitedError) Error() string {
	// Whole milliseconds, rounded up, so "retry after 0s" never appears.
	d := (e.RetryAfter + time.Millisecond - 1).Truncate(time.Millisecond)
	return fmt.Sprintf("rate limit exceeded for upstream %s: retry after %s", e.Upstream, max(d, time.Millisecond))
}

// Check is Allow as an error: nil, or a *RateLimitedError.
func (l *Limiter) Check(userKey, upstream string) error {
	if ok, retry := l.Allow(userKey, upstream); !ok {
		return &RateLimitedError{Upstream: upstream, RetryAfter: retry}
	}
	return nil
}
