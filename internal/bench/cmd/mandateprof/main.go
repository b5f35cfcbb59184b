// Command mandateprof runs the Mandate gateway exactly like `mandate serve`
// (gateway.LoadConfig, then gateway.Serve) and additionally records a CPU
// profile: after -delay it profiles for -cpuprofile-duration and writes the
// profile to -cpuprofile. Mandate itself has no pprof endpoint; this wrapper
// keeps profiling out of the product.
//
//	mandateprof -config mandate.yaml -cpuprofile cpu.pprof -delay 3s -cpuprofile-duration 10s
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/mandate-gw/mandate/gateway"
)

func main() {
	path := flag.String("config", "config.yaml", "configuration file")
	out := flag.String("cpuprofile", "cpu.pprof", "CPU profile output file")
	delay := flag.Duration("delay", 0, "wait this long after start before profiling")
	dur := flag.Duration("cpuprofile-duration", 10*time.Second, "how long to profile")
	flag.Parse()

	logger := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg, err := gateway.LoadConfig(*path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "invalid configuration:\n%v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go profile(ctx, *out, *delay, *dur)
	if err := gateway.Serve(ctx, cfg, gateway.Options{Logger: logger, ConfigPath: *path}); err != nil {
		fmt.Fprintln(os.Stderr, "mandateprof:", err)
		os.Exit(1)
	}
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
