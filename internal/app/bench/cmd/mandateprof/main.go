// Command mandateprof runs the Mandate gateway exactly like `mandate serve`
// (gateway.LoadConfig, then gateway.Serve) with benchmark hooks that the
// product's configuration does not offer. Mandate itself has no pprof or
// debug endpoint; this wrapper keeps them out of the product.
//
//   - -cpuprofile FILE: after -delay, record a CPU profile for
//     -cpuprofile-duration and write it to FILE.
//
//   - -trace-sample RATIO (0..1): trace with a parent-based, trace-ID-ratio
//     sampler and a batching span processor whose exporter discards the
//     spans ("sampled, exporter none"), through gateway.Options.TracerProvider,
//     which overrides telemetry.traces. telemetry.traces can only say none,
//     stdout or otlp, always with the SDK's default (always-on) sampler unless
//     OTEL_TRACES_SAMPLER is set.
//
//   - -audit-discard: with audit.sink stdout, write the audit records to
//     io.Discard (they are still built and chained); the configuration has
//     no way to turn audit off.
//
//   - -debug-addr ADDR: serve GET /memstats (Go heap after a forced GC and
//     the goroutine count, JSON) and GET /spans (spans sampled and ended so
//     far) on a separate loopback listener.
//
//     mandateprof -config mandate.yaml -cpuprofile cpu.pprof -delay 3s -cpuprofile-duration 10s
//     mandateprof -config mandate.yaml -trace-sample 0.1 -debug-addr 127.0.0.1:9030
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/internal/app/bench"
)

func main() {
	path := flag.String("config", "config.yaml", "configuration file")
	out := flag.String("cpuprofile", "", "CPU profile output file (empty: no profile)")
	delay := flag.Duration("delay", 0, "wait this long after start before profiling")
	dur := flag.Duration("cpuprofile-duration", 10*time.Second, "how long to profile")
	sample := flag.Float64("trace-sample", -1, "trace with a parent-based ratio sampler (0..1) and a discarding exporter; <0: as configured")
	auditDiscard := flag.Bool("audit-discard", false, "send audit records of audit.sink stdout to io.Discard")
	debugAddr := flag.String("debug-addr", "", "serve /memstats and /spans on this loopback address")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	opts := gateway.Options{Logger: logger, ConfigPath: *path}
	exp := &discardExporter{}
	if *sample >= 0 {
		if *sample > 1 {
			fmt.Fprintln(os.Stderr, "mandateprof: -trace-sample must be ≤ 1")
			os.Exit(2)
		}
		tp := sdktrace.NewTracerProvider(
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*sample))),
			sdktrace.WithBatcher(exp))
		defer func() { _ = tp.Shutdown(context.Background()) }()
		opts.TracerProvider = tp
	}
	if *auditDiscard {
		opts.AuditOutput = io.Discard
	}
	if *debugAddr != "" {
		if err := serveDebug(ctx, *debugAddr, exp); err != nil {
			fmt.Fprintln(os.Stderr, "mandateprof:", err)
			os.Exit(1)
		}
	}
	if *out != "" {
		go profile(ctx, *out, *delay, *dur)
	}
	if err := gateway.Serve(ctx, cfg, opts); err != nil {
		fmt.Fprintln(os.Stderr, "mandateprof:", err)
		os.Exit(1)
	}
}

// discardExporter counts the spans handed to it and drops them.
type discardExporter struct{ spans atomic.Int64 }

func (e *discardExporter) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	e.spans.Add(int64(len(s)))
	return nil
}

func (e *discardExporter) Shutdown(context.Context) error { return nil }

func serveDebug(ctx context.Context, addr string, exp *discardExporter) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /memstats", bench.MemStatsHandler())
	mux.HandleFunc("GET /spans", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, "%d\n", exp.spans.Load())
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fmt.Fprintln(os.Stderr, "mandateprof: debug listener:", err)
		}
	}()
	return nil
}

func profile(ctx context.Context, out string, delay, dur time.Duration) {
	select {
	case <-time.After(delay):
	case <-ctx.Done():
		return
	}
	f, err := os.Create(out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mandateprof:", err)
		return
	}
	defer f.Close()
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "mandateprof:", err)
		return
	}
	select {
	case <-time.After(dur):
	case <-ctx.Done():
	}
	pprof.StopCPUProfile()
	fmt.Fprintf(os.Stderr, "mandateprof: wrote %s (%s)\n", out, dur)
}
