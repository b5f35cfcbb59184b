// Package callinfo carries facts about one upstream call from the layer
// that learns them to the layer that records them (the gateway's audit and
// tracing). The credential facts are written in one place: package
// upstreams/credentials, when it attaches a token to an upstream request
// (credentials.Transport, credentials.Authorize); adapters do not write
// them (a test in upstreams/credentials enforces it). It is a leaf package.
package callinfo

import (
	"context"
	"sync"
)

// Info is filled while one operation runs. Safe for concurrent use.
type Info struct {
	mu              sync.Mutex
	flow            string
	platformSubject string
	serviceAccount  bool
	cacheHit        bool
	exchanges       int
}

// Credential records the credential used for the call. Only package
// upstreams/credentials calls it (tests may, to stage a record).
func (i *Info) Credential(flow, platformSubject string, serviceAccount, cacheHit bool) {
	if i == nil {
		return
	}
	i.mu.Lock()
	i.flow, i.platformSubject, i.serviceAccount, i.cacheHit = flow, platformSubject, serviceAccount, cacheHit
	if !cacheHit {
		i.exchanges++
	}
	i.mu.Unlock()
}

// Snapshot is a copy of what was recorded.
type Snapshot struct {
	Flow            string
	PlatformSubject string
	ServiceAccount  bool
	CacheHit        bool
	Exchanges       int
}

// Snapshot returns what has been recorded so far.
func (i *Info) Snapshot() Snapshot {
	if i == nil {
		return Snapshot{}
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	return Snapshot{Flow: i.flow, PlatformSubject: i.platformSubject, ServiceAccount: i.serviceAccount, CacheHit: i.cacheHit, Exchanges: i.exchanges}
}

type ctxKey struct{}

// NewContext returns ctx carrying a fresh Info, and the Info.
func NewContext(ctx context.Context) (context.Context, *Info) {
	i := &Info{}
	return context.WithValue(ctx, ctxKey{}, i), i
}

// FromContext returns the Info in ctx, or nil (all methods accept nil).
func FromContext(ctx context.Context) *Info {
	i, _ := ctx.Value(ctxKey{}).(*Info)
	return i
}
