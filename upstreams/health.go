package upstreams

import "time"

// Health is an upstream's recent health, for /readyz details and metrics.
// Only failures that are the upstream's fault count (unreachable, broken
// connection, timeout, invalid or oversized response); an error the
// upstream answers is an answer and counts as success; credential refusals
// and caller cancellations count as neither.
type Health struct {
	Upstream            string    `json:"upstream"`
	LastSuccess         time.Time `json:"last_success,omitzero"`
	LastFailure         time.Time `json:"last_failure,omitzero"`
	LastError           string    `json:"last_error,omitempty"`
	ConsecutiveFailures int       `json:"consecutive_failures"`
	OpenSessions        int       `json:"open_sessions"`
}

// Healthy reports whether the last counted outcome was a success (or none
// was counted yet).
func (h Health) Healthy() bool { return h.ConsecutiveFailures == 0 }

// HealthReporter is an optional capability of an Adapter (the mcp kind has
// it): a snapshot of the upstream's health. Health is safe for concurrent
// use and cheap (no I/O).
type HealthReporter interface {
	Health() Health
}

// HealthOf returns a's health when its kind tracks health; ok is false
// when it does not.
func HealthOf(a Adapter) (h Health, ok bool) {
	r, ok := a.(HealthReporter)
	if !ok {
		return Health{}, false
	}
	return r.Health(), true
}
