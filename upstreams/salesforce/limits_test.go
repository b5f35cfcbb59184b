package salesforce

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
)

func TestParseLimitInfo(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in        string
		used, max int64
		ok        bool
	}{
		// The documented shapes (REST API Developer Guide, "Limit Info Header").
		{"api-usage=18/5000", 18, 5000, true},
		{"api-usage=10018/100000; api-bursts=1/750", 10018, 100000, true},
		{"api-usage=25/5000; per-app-api-usage=17/250(appName=sample-connected-app)", 25, 5000, true},
		{"per-app-api-usage=17/250(appName=x); api-usage=25/5000", 25, 5000, true},
		{"api-usage=113/5000000", 113, 5000000, true},
		{"  API-Usage = 7 / 15000 ", 7, 15000, true},
		{"api-usage=0/15000", 0, 15000, true},
		{"api-usage=15001/15000", 15001, 15000, true},       // over the allowance: reported as is
		{"api-bursts=1/750, api-usage=3/100", 3, 100, true}, // joined by a proxy with a comma
		// Malformed: ignored.
		{"", 0, 0, false},
		{"api-usage", 0, 0, false},
		{"api-usage=", 0, 0, false},
		{"api-usage=18", 0, 0, false},
		{"api-usage=18/", 0, 0, false},
		{"api-usage=/5000", 0, 0, false},
		{"api-usage=a/5000", 0, 0, false},
		{"api-usage=18/5k", 0, 0, false},
		{"api-usage=-1/5000", 0, 0, false},
		{"api-usage=+1/5000", 0, 0, false},
		{"api-usage=1.5/5000", 0, 0, false},
		{"api-usage=18/0", 0, 0, false},
		{"api-usage=18/5000/3", 0, 0, false},
		{"api-usage=99999999999/100000", 0, 0, false}, // beyond any real allowance
		{"per-app-api-usage=17/250(appName=x)", 0, 0, false},
		{"xapi-usage=18/5000", 0, 0, false},
		{"garbage", 0, 0, false},
	} {
		used, max, ok := parseLimitInfo(c.in)
		if used != c.used || max != c.max || ok != c.ok {
			t.Errorf("parseLimitInfo(%q) = %d, %d, %v; want %d, %d, %v", c.in, used, max, ok, c.used, c.max, c.ok)
		}
	}
}

// usageGauges collects the adapter's gauges for upstream "salesforce".
func usageGauges(t *testing.T, r sdkmetric.Reader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok {
				continue
			}
			for _, dp := range g.DataPoints {
				if v, _ := dp.Attributes.Value(attribute.Key("mandate.upstream")); v.AsString() == "salesforce" {
					out[m.Name] = dp.Value
				}
			}
		}
	}
	return out
}

func usage(used, limit int64) map[string]int64 {
	return map[string]int64{
		"mandate.salesforce.api_requests.used":      used,
		"mandate.salesforce.api_requests.limit":     limit,
		"mandate.salesforce.api_requests.remaining": limit - used,
	}
}

// The org's API usage from Sforce-Limit-Info becomes gauges (through the
// MeterProvider of upstreams.Deps, as the gateway builds adapters), and a
// warning is logged once each time fewer than 10% of the calls are left.
func TestAPIUsageMetricAndWarning(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{requestLimit: 20})
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	cfg := e.config(e.jwtBearer())
	ad, err := upstreams.NewAdapter(cfg, upstreams.Deps{
		Credentials:   resttest.BrokerSource(t, cfg, e.brokerLogs),
		Logger:        resttest.DebugLogger(e.logs),
		MeterProvider: mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	a := ad.(*Adapter)
	if got := usageGauges(t, reader); len(got) != 0 {
		t.Errorf("gauges before any call: %v", got)
	}
	if _, _, ok := a.APIUsage(); ok {
		t.Error("APIUsage known before any call")
	}
	query := map[string]any{"query": "SELECT Id FROM Account"}
	warnings := func() int { return strings.Count(e.logs.String(), "Salesforce API request allowance low") }

	mustTool(t, a, rita, ToolSOQLQuery, query)
	if diff := cmp.Diff(usage(1, 20), usageGauges(t, reader)); diff != "" {
		t.Errorf("after one call (-want +got):\n%s", diff)
	}
	for i := 2; i <= 18; i++ { // 18/20: 10% left, not below
		mustTool(t, a, rita, ToolSOQLQuery, query)
	}
	if n := warnings(); n != 0 {
		t.Errorf("%d warnings with 10%% left", n)
	}
	mustTool(t, a, rita, ToolSOQLQuery, query) // 19/20: 5% left
	mustTool(t, a, rita, ToolSOQLQuery, query) // 20/20
	if n := warnings(); n != 1 {
		t.Errorf("%d warnings after crossing below 10%%, want 1; logs:\n%s", n, e.logs.String())
	}
	if used, limit, ok := a.APIUsage(); used != 20 || limit != 20 || !ok {
		t.Errorf("APIUsage = %d, %d, %v", used, limit, ok)
	}
	for _, w := range []string{`upstream=salesforce`, `api_requests_used=19`, `api_requests_limit=20`, `api_requests_remaining=1`} {
		if !strings.Contains(e.logs.String(), w) {
			t.Errorf("warning lacks %q", w)
		}
	}
	// The refusal past the allowance still reports usage.
	if res, _, _ := callTool(t, a, rita, ToolSOQLQuery, query); !res.IsError {
		t.Fatal("call past the allowance succeeded")
	}
	if diff := cmp.Diff(usage(20, 20), usageGauges(t, reader)); diff != "" {
		t.Errorf("at the allowance (-want +got):\n%s", diff)
	}
	// The window frees up: recovery is logged, and the next crossing warns again.
	e.sb.SetDailyRequestLimit(20)
	mustTool(t, a, rita, ToolSOQLQuery, query)
	if !strings.Contains(e.logs.String(), "Salesforce API request allowance recovered") {
		t.Error("recovery not logged")
	}
	for i := 2; i <= 19; i++ {
		mustTool(t, a, rita, ToolSOQLQuery, query)
	}
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings after the second crossing, want 2", n)
	}
	if diff := cmp.Diff(usage(19, 20), usageGauges(t, reader)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Closing the adapter withdraws its gauges (a reload builds a new one).
	_ = a.Close()
	if got := usageGauges(t, reader); len(got) != 0 {
		t.Errorf("gauges after Close: %v", got)
	}
}

// A header that does not parse is ignored and logged once; a good one
// later is used.
func TestMalformedLimitInfoIgnored(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	header := "api-usage=lots"
	e := newEnv(t, envOptions{intercept: func(w http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		w.Header().Set("Sforce-Limit-Info", header)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"totalSize":0,"done":true,"records":[]}`))
		return true
	}})
	reader := sdkmetric.NewManualReader()
	cfg := e.config(e.jwtBearer())
	a, err := New(cfg, Deps{Credentials: resttest.BrokerSource(t, cfg, e.brokerLogs), Logger: resttest.DebugLogger(e.logs),
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() })
	query := map[string]any{"query": "SELECT Id FROM Account"}
	for range 3 {
		mustTool(t, a, rita, ToolSOQLQuery, query)
	}
	if n := strings.Count(e.logs.String(), "ignoring a malformed Sforce-Limit-Info header"); n != 1 {
		t.Errorf("%d log lines for the malformed header, want 1; logs:\n%s", n, e.logs.String())
	}
	if _, _, ok := a.APIUsage(); ok {
		t.Error("malformed header counted")
	}
	if got := usageGauges(t, reader); len(got) != 0 {
		t.Errorf("gauges from a malformed header: %v", got)
	}
	mu.Lock()
	header = "api-usage=5/15000"
	mu.Unlock()
	mustTool(t, a, rita, ToolSOQLQuery, query)
	if diff := cmp.Diff(usage(5, 15000), usageGauges(t, reader)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
