package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	promexp "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// telemetry holds the providers and instruments of one process.
type telemetry struct {
	tp       trace.TracerProvider // nil when traces: none
	mp       metric.MeterProvider // the adapters' meters (noop when metrics: none)
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	shutdown []func(context.Context) error

	serverDur  metric.Float64Histogram
	clientDur  metric.Float64Histogram
	exchanges  metric.Int64Counter
	denials    metric.Int64Counter
	handler    http.Handler
	upHealth   metric.Int64ObservableGauge
	sessionsUp metric.Int64ObservableGauge
}

// setupTelemetry builds trace and metric providers from cfg. A provider in
// opts (tests) wins over the configuration.
func (g *Gateway) setupTelemetry(ctx context.Context, cfg TelemetryConfig, opts Options) error {
	t := &telemetry{prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})}
	res := resource.NewSchemaless(semconv.ServiceName(cfg.ServiceName), semconv.ServiceVersion(Version))
	switch {
	case opts.TracerProvider != nil:
		t.tp = opts.TracerProvider
	case cfg.Traces == "stdout" || cfg.Traces == "otlp":
		var exp sdktrace.SpanExporter
		var err error
		if cfg.Traces == "stdout" {
			exp, err = stdouttrace.New(stdouttrace.WithWriter(opts.traceOutput()))
		} else {
			exp, err = otlptracehttp.New(ctx) // OTEL_EXPORTER_OTLP_* from the environment
		}
		if err != nil {
			return fmt.Errorf("telemetry.traces %s: %w", cfg.Traces, err)
		}
		tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exp), sdktrace.WithResource(res)}
		if cfg.SampleRatio > 0 { // else the SDK reads OTEL_TRACES_SAMPLER (default: parent-based, always on)
			tpOpts = append(tpOpts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))))
		}
		p := sdktrace.NewTracerProvider(tpOpts...)
		t.tp, t.shutdown = p, append(t.shutdown, p.Shutdown)
	}
	if t.tp != nil {
		t.tracer = t.tp.Tracer("github.com/mandate-gw/mandate/gateway")
	} else {
		t.tracer = tracenoop.NewTracerProvider().Tracer("")
	}

	var mp metric.MeterProvider = metricnoop.NewMeterProvider()
	if cfg.Metrics != "none" {
		mpOpts := []sdkmetric.Option{sdkmetric.WithResource(res)}
		if cfg.Metrics == "prometheus" || cfg.Metrics == "both" {
			reg := prometheus.NewRegistry()
			exp, err := promexp.New(promexp.WithRegisterer(reg))
			if err != nil {
				return err
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(exp))
			t.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		}
		if cfg.Metrics == "otlp" || cfg.Metrics == "both" {
			// Endpoint, headers and interval from OTEL_EXPORTER_OTLP_* and
			// OTEL_METRIC_EXPORT_INTERVAL/TIMEOUT; shutdown pushes the last values.
			exp, err := otlpmetrichttp.New(ctx)
			if err != nil {
				return fmt.Errorf("telemetry.metrics otlp: %w", err)
			}
			mpOpts = append(mpOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
		}
		p := sdkmetric.NewMeterProvider(mpOpts...)
		mp, t.shutdown = p, append(t.shutdown, p.Shutdown)
	}
	t.mp = mp
	m := mp.Meter("github.com/mandate-gw/mandate/gateway")
	buckets := metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
	var errs []error
	var err error
	t.serverDur, err = m.Float64Histogram("mcp.server.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of MCP operations served by Mandate"), buckets)
	errs = append(errs, err)
	t.clientDur, err = m.Float64Histogram("mcp.client.operation.duration", metric.WithUnit("s"),
		metric.WithDescription("Duration of MCP operations Mandate sent to an upstream"), buckets)
	errs = append(errs, err)
	t.exchanges, err = m.Int64Counter("mandate.credentials.lookups",
		metric.WithDescription("Credential lookups by upstream, flow and outcome (hit = served from cache, ok = token exchanged, error, backoff)"))
	errs = append(errs, err)
	t.denials, err = m.Int64Counter("mandate.policy.denials", metric.WithDescription("Requests denied by policy or rate limits"))
	errs = append(errs, err)
	t.upHealth, err = m.Int64ObservableGauge("mandate.upstream.up", metric.WithDescription("1 if the upstream's last operation succeeded"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for name, ok := range g.upstreamHealth() {
				v := int64(0)
				if ok {
					v = 1
				}
				o.Observe(v, metric.WithAttributes(attribute.String("mandate.upstream", name)))
			}
			return nil
		}))
	errs = append(errs, err)
	t.sessionsUp, err = m.Int64ObservableGauge("mandate.sessions", metric.WithDescription("Open downstream MCP sessions"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(g.sessions.Count())
			return nil
		}))
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g.tel = t
	g.metricsHandler = t.handler
	return nil
}

func (t *telemetry) close(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, f := range t.shutdown {
		_ = f(ctx)
	}
}

// onExchange feeds the credentials broker's outcomes into metrics.
func (t *telemetry) onExchange(upstream, flow, outcome string) {
	t.exchanges.Add(context.Background(), 1, metric.WithAttributes(
		attribute.String("mandate.upstream", upstream), attribute.String("mandate.credentials.flow", flow),
		attribute.String("mandate.credentials.outcome", outcome)))
}
