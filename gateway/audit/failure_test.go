package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// switchWriter fails every write while broken is set (after writing
// partial bytes of it) and counts the attempts.
type switchWriter struct {
	syncBuffer
	broken   atomic.Bool
	partial  int
	attempts atomic.Int64
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.attempts.Add(1)
	if w.broken.Load() {
		n := min(w.partial, len(p))
		w.syncBuffer.Write(p[:n])
		return n, errors.New("disk full")
	}
	return w.syncBuffer.Write(p)
}

// fastRetry are options with short retry delays for tests.
func fastRetry(w *switchWriter) Options {
	return Options{Stdout: w, RetryMin: 5 * time.Millisecond, RetryMax: 20 * time.Millisecond}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestFailingSinkIsReportedAndRetriedInTheBackground: a write error makes
// the logger not Writable at once; the queued record is written by a
// background retry (no later Log call needed), after which it is Writable
// again and the chain is intact.
func TestFailingSinkIsReportedAndRetriedInTheBackground(t *testing.T) {
	t.Parallel()
	for _, partial := range []int{0, 17} {
		w := &switchWriter{partial: partial}
		l, err := New(Config{}, fastRetry(w))
		if err != nil {
			t.Fatal(err)
		}
		logN(t, l, 2)
		if !l.Writable() {
			t.Fatal("not Writable with a working sink")
		}
		w.broken.Store(true)
		err = l.Log(context.Background(), sampleRecord(2))
		if !errors.Is(err, ErrNotWritten) || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("Log on a failing sink = %v, want ErrNotWritten with the cause", err)
		}
		if l.Writable() {
			t.Fatal("Writable right after a failed write")
		}
		// While failing, Log queues and returns at once (the sink is not
		// tried on the caller's time).
		start := time.Now()
		if err := l.Log(context.Background(), sampleRecord(3)); !errors.Is(err, ErrNotWritten) {
			t.Fatalf("second Log while failing = %v", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Fatalf("Log while failing took %s", d)
		}
		w.broken.Store(false)
		waitFor(t, "the background retry", l.Writable)
		res, _ := Verify(bytes.NewReader(w.Bytes()))
		if !res.OK || res.Records != 4 {
			t.Fatalf("partial=%d: after recovery without further Log calls: %s\n%s", partial, res, w.Bytes())
		}
		l.Close()
	}
}

// TestRetryBacksOff: a sink that keeps failing is retried with growing
// delays, not in a tight loop.
func TestRetryBacksOff(t *testing.T) {
	t.Parallel()
	w := &switchWriter{}
	w.broken.Store(true)
	l, err := New(Config{}, Options{Stdout: w, RetryMin: 10 * time.Millisecond, RetryMax: 80 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_ = l.Log(context.Background(), sampleRecord(0))
	time.Sleep(500 * time.Millisecond)
	// 10+20+40+80+80+80+80+80 ms: about 8 retries in 500 ms; a tight loop
	// (or a fixed 10 ms) would be far more.
	if n := w.attempts.Load(); n > 15 {
		t.Fatalf("%d write attempts in 500 ms, want a backed-off few", n)
	}
	// And it does keep retrying (a loaded machine may delay the timers).
	waitFor(t, "three retries", func() bool { return w.attempts.Load() >= 4 })
}

// TestQueueIsBounded: while the sink fails, optional records (Offer) are
// queued only up to the limit, then dropped and counted; records of
// operations that ran (Log) are always kept. After recovery everything kept
// is written, followed by a record that counts the dropped ones.
func TestQueueIsBounded(t *testing.T) {
	t.Parallel()
	w := &switchWriter{}
	w.broken.Store(true)
	opts := fastRetry(w)
	opts.QueueLimit = 4 << 10
	l, err := New(Config{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var kept, dropped int
	for i := 0; i < 200; i++ {
		err := l.Offer(context.Background(), sampleRecord(i))
		switch {
		case errors.Is(err, ErrDropped):
			dropped++
		case errors.Is(err, ErrNotWritten):
			kept++
		default:
			t.Fatalf("Offer %d = %v", i, err)
		}
	}
	if dropped == 0 || kept == 0 {
		t.Fatalf("kept %d, dropped %d: want both", kept, dropped)
	}
	if q := l.Queued(); q > opts.QueueLimit {
		t.Fatalf("%d bytes queued, limit %d", q, opts.QueueLimit)
	}
	// A record of an operation that already ran is never dropped.
	must := sampleRecord(999)
	must.RequestID = "must-keep"
	if err := l.Log(context.Background(), must); !errors.Is(err, ErrNotWritten) {
		t.Fatalf("Log with a full queue = %v, want ErrNotWritten (queued)", err)
	}
	w.broken.Store(false)
	waitFor(t, "recovery", l.Writable)
	lines := splitLines(w.Bytes())
	res, _ := Verify(bytes.NewReader(w.Bytes()))
	if !res.OK || res.Records != kept+2 {
		t.Fatalf("want %d kept + the must record + the dropped summary: %s", kept, res)
	}
	var last Record
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Method != MethodAuditDropped || !strings.Contains(last.Error, itoa(dropped)+" records") {
		t.Fatalf("last record = %+v, want the count of %d dropped records", last, dropped)
	}
	if !strings.Contains(string(w.Bytes()), `"request_id":"must-keep"`) {
		t.Fatal("the must-keep record was not written")
	}
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestWritableFalseWhileStalled: a write that does not return (a hung
// network file system) makes the logger not Writable after StallAfter.
func TestWritableFalseWhileStalled(t *testing.T) {
	t.Parallel()
	w := &gatedWriter{gate: make(chan struct{})}
	l, err := New(Config{}, Options{Stdout: w, StallAfter: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- l.Log(context.Background(), sampleRecord(0)) }()
	waitFor(t, "stall detection", func() bool { return !l.Writable() })
	close(w.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitFor(t, "Writable after the write returned", l.Writable)
	l.Close()
}

// TestCloseCopiesUnwrittenRecordsToTheOperationalLog: records still queued
// at Close (the sink never recovered) are not silently lost: each goes to
// the operational log in full, and Close reports them.
func TestCloseCopiesUnwrittenRecordsToTheOperationalLog(t *testing.T) {
	t.Parallel()
	w := &switchWriter{partial: 30}
	w.broken.Store(true)
	var logs syncBuffer
	opts := fastRetry(w)
	opts.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	l, err := New(Config{}, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		_ = l.Log(context.Background(), sampleRecord(i))
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "not written") {
		t.Fatalf("Close = %v, want the unwritten records reported", err)
	}
	var spilled []string
	for _, line := range splitLines(logs.Bytes()) {
		var e struct {
			Msg    string `json:"msg"`
			Record string `json:"record"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Record != "" {
			spilled = append(spilled, e.Record)
		}
	}
	// Three records plus the close record; each complete and verifiable as
	// one chain (the torn first attempt is not what is copied).
	res, _ := Verify(strings.NewReader(joinLines(spilled)))
	if len(spilled) != 4 || !res.OK || res.Records != 4 {
		t.Fatalf("copied %d records (%s):\n%s", len(spilled), res, logs.Bytes())
	}
}

// TestConcurrentLogWhileFlapping: many callers while the sink flaps; every
// Log call that returned nil or ErrNotWritten has its record in the output
// once the sink is back, in one intact chain.
func TestConcurrentLogWhileFlapping(t *testing.T) {
	t.Parallel()
	w := &switchWriter{partial: 11}
	l, err := New(Config{}, fastRetry(w))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		for {
			select {
			case <-stop:
				w.broken.Store(false)
				return
			case <-time.After(3 * time.Millisecond):
				w.broken.Store(!w.broken.Load())
			}
		}
	}()
	var wg sync.WaitGroup
	var logged atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Go(func() {
			for i := 0; i < 100; i++ {
				err := l.Log(context.Background(), sampleRecord(i))
				if err != nil && !errors.Is(err, ErrNotWritten) {
					t.Error(err)
					return
				}
				logged.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	waitFor(t, "recovery", func() bool { return l.Writable() && l.Queued() == 0 })
	res, _ := Verify(bytes.NewReader(w.Bytes()))
	if !res.OK || int64(res.Records) != logged.Load() {
		t.Fatalf("%d logged: %s", logged.Load(), res)
	}
	l.Close()
}
