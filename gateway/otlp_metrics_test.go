package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	colmetrics "go.opentelemetry.io/proto/otlp/collector/metrics/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	metricspb "go.opentelemetry.io/proto/otlp/metrics/v1"
	"google.golang.org/protobuf/proto"
)

// otlpMetricsSink is an OTLP/HTTP metrics receiver: it decodes every
// export request (protobuf, as otlpmetrichttp sends) and keeps the
// metrics by name.
type otlpMetricsSink struct {
	mu      sync.Mutex
	exports int
	metrics map[string]*metricspb.Metric // last seen, by name
	errs    []string
}

func (s *otlpMetricsSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	var req colmetrics.ExportMetricsServiceRequest
	if err == nil {
		err = proto.Unmarshal(body, &req)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path != "/v1/metrics" || r.Header.Get("Content-Type") != "application/x-protobuf" || err != nil {
		s.errs = append(s.errs, r.URL.Path+" "+r.Header.Get("Content-Type")+" "+errString(err))
		http.Error(w, "bad export", http.StatusBadRequest)
		return
	}
	s.exports++
	for _, rm := range req.ResourceMetrics {
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				s.metrics[m.Name] = m
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	out, _ := proto.Marshal(&colmetrics.ExportMetricsServiceResponse{})
	_, _ = w.Write(out)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestMetricsExportedByOTLP: with `telemetry.metrics: both`, the metrics
// are pushed to an OTLP/HTTP receiver (configured by the standard
// OTEL_EXPORTER_OTLP_* variables) and still served on /metrics; a tool
// call shows up in mcp.server.operation.duration, and no metric carries
// the user's identity as an attribute (unbounded cardinality, personal data).
func TestMetricsExportedByOTLP(t *testing.T) {
	sink := &otlpMetricsSink{metrics: map[string]*metricspb.Metric{}}
	collector := httptest.NewServer(sink)
	defer collector.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", collector.URL+"/v1/metrics")
	t.Setenv("OTEL_METRIC_EXPORT_INTERVAL", "100") // ms

	env := startMuxOpts(t, func(c *Config) { c.Telemetry.Metrics = "both" }, Options{})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	for range 3 {
		if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}

	want := []string{"mcp.server.operation.duration", "mcp.client.operation.duration", "mandate.credentials.lookups", "mandate.sessions"}
	deadline := time.Now().Add(10 * time.Second)
	for {
		sink.mu.Lock()
		missing := []string{}
		for _, name := range want {
			if sink.metrics[name] == nil {
				missing = append(missing, name)
			}
		}
		calls := toolCallCount(sink.metrics["mcp.server.operation.duration"])
		errs := append([]string(nil), sink.errs...)
		sink.mu.Unlock()
		if len(errs) > 0 {
			t.Fatalf("the receiver rejected exports: %v", errs)
		}
		if len(missing) == 0 && calls >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10s: missing metrics %v, tools/call count %d (want ≥3)", missing, calls)
		}
		time.Sleep(50 * time.Millisecond)
	}

	sink.mu.Lock()
	for name, m := range sink.metrics {
		for _, kv := range attributesOf(m) {
			if v := kv.GetValue().GetStringValue(); strings.Contains(v, "alice") {
				t.Errorf("metric %s carries the user in %s=%q", name, kv.Key, v)
			}
		}
	}
	sink.mu.Unlock()

	resp, err := http.Get(env.gw.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	prom, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(prom), "mcp_server_operation_duration") {
		t.Fatalf("/metrics with metrics: both: %d, has mcp_server_operation_duration %v", resp.StatusCode, strings.Contains(string(prom), "mcp_server_operation_duration"))
	}
}

// toolCallCount sums the histogram counts of tools/call data points.
func toolCallCount(m *metricspb.Metric) uint64 {
	if m == nil || m.GetHistogram() == nil {
		return 0
	}
	var n uint64
	for _, dp := range m.GetHistogram().DataPoints {
		for _, kv := range dp.Attributes {
			if kv.Key == "mcp.method.name" && kv.GetValue().GetStringValue() == "tools/call" {
				n += dp.Count
			}
		}
	}
	return n
}

func attributesOf(m *metricspb.Metric) []*commonpb.KeyValue {
	var out []*commonpb.KeyValue
	switch d := m.Data.(type) {
	case *metricspb.Metric_Histogram:
		for _, dp := range d.Histogram.DataPoints {
			out = append(out, dp.Attributes...)
		}
	case *metricspb.Metric_Sum:
		for _, dp := range d.Sum.DataPoints {
			out = append(out, dp.Attributes...)
		}
	case *metricspb.Metric_Gauge:
		for _, dp := range d.Gauge.DataPoints {
			out = append(out, dp.Attributes...)
		}
	}
	return out
}
