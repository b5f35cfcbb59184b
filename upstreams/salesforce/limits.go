package salesforce

// The org's API request allowance, as Salesforce reports it on every REST
// response: "Sforce-Limit-Info: api-usage=18/5000" (REST API Developer
// Guide, "Limit Info Header",
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/headers_api_usage.htm).
// Entries are separated by ";" ("api-usage=10018/100000; api-bursts=1/750",
// "api-usage=25/5000; per-app-api-usage=17/250(appName=x)"); only
// api-usage is read.

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

const (
	limitInfoHeader = "Sforce-Limit-Info"
	// lowAllowancePercent: below this share of the allowance left, the
	// adapter warns (once per crossing).
	lowAllowancePercent = 10
	// recoveredPercent: the warning re-arms once this share is left again
	// (one point above, so responses arriving out of order around the
	// threshold do not repeat it).
	recoveredPercent = lowAllowancePercent + 1
	// maxCount bounds both numbers of api-usage (real allowances are in
	// the millions); it keeps them packable into one atomic word.
	maxCount = 1<<31 - 1
)

// parseLimitInfo returns the api-usage entry of a Sforce-Limit-Info value:
// calls used and the org's allowance. ok is false when there is none or it
// is malformed (numbers must be plain decimals, the allowance positive).
func parseLimitInfo(v string) (used, limit int64, ok bool) {
	for v != "" {
		entry := v
		if i := strings.IndexAny(v, ";,"); i >= 0 {
			entry, v = v[:i], v[i+1:]
		} else {
			v = ""
		}
		key, val, found := strings.Cut(entry, "=")
		if !found || !strings.EqualFold(strings.TrimSpace(key), "api-usage") {
			continue
		}
		u, l, found := strings.Cut(val, "/")
		if !found {
			return 0, 0, false
		}
		used, ok1 := count(u)
		limit, ok2 := count(l)
		if !ok1 || !ok2 || limit == 0 {
			return 0, 0, false
		}
		return used, limit, true
	}
	return 0, 0, false
}

// count parses a plain decimal count up to maxCount (no sign, no spaces
// inside).
func count(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 10 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, n <= maxCount
}

// apiUsage tracks the org's API usage from the responses of one upstream
// and reports it as gauges and log records. Safe for concurrent use.
type apiUsage struct {
	upstream string
	log      *slog.Logger
	state    atomic.Uint64 // used<<32 | limit; 0: nothing seen yet
	low      atomic.Bool   // warned, not yet recovered
	badOnce  atomic.Bool   // a malformed header was logged
	reg      metric.Registration
	unreg    sync.Once
}

// load returns the last usage seen; ok is false before any.
func (u *apiUsage) load() (used, limit int64, ok bool) {
	s := u.state.Load()
	if s == 0 {
		return 0, 0, false
	}
	return int64(s >> 32), int64(s & 0xffffffff), true
}

// observe reads Sforce-Limit-Info from one response's header. No header
// (e.g. a 401, which names no org) is not an error.
func (u *apiUsage) observe(h http.Header) {
	v := h.Get(limitInfoHeader)
	if v == "" {
		return
	}
	used, limit, ok := parseLimitInfo(v)
	if !ok {
		if !u.badOnce.Swap(true) {
			u.log.Warn("salesforce: ignoring a malformed Sforce-Limit-Info header (logged once per upstream)",
				"upstream", u.upstream, "value", rest.Sanitize(v, 100))
		}
		return
	}
	u.state.Store(uint64(used)<<32 | uint64(limit))
	left := max(limit-used, 0)
	switch {
	case left*100 < limit*lowAllowancePercent:
		if !u.low.Swap(true) {
			u.log.Warn("Salesforce API request allowance low: fewer than 10% of the org's daily API calls left; calls fail with REQUEST_LIMIT_EXCEEDED when none are left",
				"upstream", u.upstream, "api_requests_used", used, "api_requests_limit", limit, "api_requests_remaining", left)
		}
	case left*100 >= limit*recoveredPercent:
		if u.low.Swap(false) {
			u.log.Info("Salesforce API request allowance recovered",
				"upstream", u.upstream, "api_requests_used", used, "api_requests_limit", limit, "api_requests_remaining", left)
		}
	}
}

// register makes the gauges of u on mp (nil: none). Close unregisters.
func (u *apiUsage) register(mp metric.MeterProvider) error {
	if mp == nil {
		return nil
	}
	m := mp.Meter("github.com/mandate-gw/mandate/upstreams/salesforce")
	unit := metric.WithUnit("{request}")
	used, err1 := m.Int64ObservableGauge("mandate.salesforce.api_requests.used", unit,
		metric.WithDescription("API requests the Salesforce org has used of its daily allowance, as its last response reported (Sforce-Limit-Info)"))
	limit, err2 := m.Int64ObservableGauge("mandate.salesforce.api_requests.limit", unit,
		metric.WithDescription("The Salesforce org's daily API request allowance, as its last response reported (Sforce-Limit-Info)"))
	left, err3 := m.Int64ObservableGauge("mandate.salesforce.api_requests.remaining", unit,
		metric.WithDescription("API requests the Salesforce org has left of its daily allowance (limit - used, at least 0)"))
	for _, err := range []error{err1, err2, err3} {
		if err != nil {
			return err
		}
	}
	attrs := metric.WithAttributeSet(attribute.NewSet(attribute.String("mandate.upstream", u.upstream)))
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		n, l, ok := u.load()
		if !ok {
			return nil
		}
		o.ObserveInt64(used, n, attrs)
		o.ObserveInt64(limit, l, attrs)
		o.ObserveInt64(left, max(l-n, 0), attrs)
		return nil
	}, used, limit, left)
	if err != nil {
		return err
	}
	u.reg = reg
	return nil
}

// close withdraws the gauges. Idempotent.
func (u *apiUsage) close() {
	u.unreg.Do(func() {
		if u.reg != nil {
			_ = u.reg.Unregister()
		}
	})
}

// usageTransport hands every response's header to an apiUsage.
type usageTransport struct {
	next  http.RoundTripper
	usage *apiUsage
}

func (t *usageTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if resp != nil {
		t.usage.observe(resp.Header)
	}
	return resp, err
}
