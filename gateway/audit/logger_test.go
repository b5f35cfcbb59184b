package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/trace"
)

func TestLogWritesVerifiableRecords(t *testing.T) {
	t.Parallel()
	l, buf := newBufLogger(t)
	var want []*Record
	for i := 0; i < 5; i++ {
		r := sampleRecord(i)
		if err := l.Log(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		want = append(want, r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := splitLines(buf.Bytes())
	if len(lines) != 6 {
		t.Fatalf("got %d lines, want 5 and the close record", len(lines))
	}
	var closing Record
	if err := json.Unmarshal([]byte(lines[5]), &closing); err != nil || closing.Method != MethodAuditClose || closing.PrevHash != want[4].Hash {
		t.Fatalf("last line is not the close record ending the chain: %v %s", err, lines[5])
	}
	lines = lines[:5]
	for i, line := range lines {
		var got Record
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
		if diff := cmp.Diff(want[i], &got); diff != "" {
			t.Errorf("line %d differs from the logged record (-want +got):\n%s", i+1, diff)
		}
		if got.Seq != uint64(i+1) {
			t.Errorf("line %d: seq %d", i+1, got.Seq)
		}
		if i == 0 && got.PrevHash != GenesisHash {
			t.Errorf("first prev_hash = %s, want genesis", got.PrevHash)
		}
		if i > 0 && got.PrevHash != want[i-1].Hash {
			t.Errorf("line %d: prev_hash does not chain", i+1)
		}
	}
	res, err := Verify(strings.NewReader(joinLines(lines)))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Records != 5 || res.FirstSeq != 1 || res.LastSeq != 5 || res.Anchored || res.LastHash != want[4].Hash {
		t.Errorf("Verify = %+v", res)
	}
	if got, wantS := res.String(), "ok: 5 records (seq 1-5), chain intact"; got != wantS {
		t.Errorf("String() = %q, want %q", got, wantS)
	}
}

func TestLogFillsTimeAndTraceFromContext(t *testing.T) {
	t.Parallel()
	l, buf := newBufLogger(t)
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	r := &Record{Method: MethodAuth, Outcome: OutcomeUnauthenticated, ErrorClass: "invalid_token"}
	if err := l.Log(ctx, r); err != nil {
		t.Fatal(err)
	}
	l.Close()
	var got Record
	if err := json.Unmarshal([]byte(splitLines(buf.Bytes())[0]), &got); err != nil {
		t.Fatal(err)
	}
	if got.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID != "00f067aa0ba902b7" {
		t.Errorf("trace ids = %q %q", got.TraceID, got.SpanID)
	}
	if !got.Time.Equal(fixedTime) {
		t.Errorf("time = %v, want the clock's %v", got.Time, fixedTime)
	}
	// An explicit trace id wins over the context.
	l2, buf2 := newBufLogger(t)
	l2.Log(ctx, &Record{TraceID: "explicit", Method: "tools/list", Outcome: OutcomeOK})
	l2.Close()
	if !strings.Contains(string(buf2.Bytes()), `"trace_id":"explicit","span_id":"00f067aa0ba902b7"`) {
		t.Errorf("explicit trace id not kept: %s", buf2.Bytes())
	}
}

// TestConcurrentNoLoss: 50 goroutines × 200 records to a file; every record
// is there, once, and the chain is intact.
func TestConcurrentNoLoss(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 50, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				r := sampleRecord(i)
				r.RequestID = fmt.Sprintf("w%d-%d", w, i)
				if err := l.Log(context.Background(), r); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Log: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := countLines(t, path); n != workers*per {
		t.Fatalf("file has %d lines, want %d", n, workers*per)
	}
	res, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Records != workers*per || res.LastSeq != workers*per {
		t.Fatalf("Verify: %s", res)
	}
	b, _ := os.ReadFile(path)
	seen := map[string]bool{}
	for _, line := range splitLines(b) {
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		if seen[r.RequestID] {
			t.Fatalf("request %s logged twice", r.RequestID)
		}
		seen[r.RequestID] = true
	}
	if len(seen) != workers*per {
		t.Fatalf("%d distinct records, want %d", len(seen), workers*per)
	}
}

// TestReopenAfterRename simulates logrotate: rename the file while writers
// are busy, Reopen, keep writing. No record is lost, the new file starts
// mid-chain, and the two files together form one chain.
func TestReopenAfterRename(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	rotated := path + ".1"
	l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const workers, per = 8, 250
	var wg sync.WaitGroup
	started, reopened := make(chan struct{}), make(chan struct{})
	var once sync.Once
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				if err := l.Log(context.Background(), sampleRecord(i)); err != nil {
					t.Error(err)
					return
				}
				if i == 50 { // every worker waits here until the reopen: both files get lines
					once.Do(func() { close(started) })
					<-reopened
				}
			}
		}()
	}
	<-started
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	close(reopened)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	oldN, newN := countLines(t, rotated), countLines(t, path)
	if oldN+newN != workers*per || oldN == 0 || newN == 0 {
		t.Fatalf("rotated %d + new %d lines, want %d in total, both non-empty", oldN, newN, workers*per)
	}
	res, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || !res.Anchored || res.FirstSeq != uint64(oldN+1) || res.Records != newN {
		t.Errorf("new file alone: %s (%+v)", res, res)
	}
	if !strings.Contains(res.String(), "starts mid-chain") {
		t.Errorf("report does not say the file starts mid-chain: %s", res)
	}
	old, err := VerifyFile(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if res.Anchor != old.LastHash {
		t.Errorf("new file's anchor %s != rotated file's last hash %s", res.Anchor, old.LastHash)
	}
	all, err := VerifyFiles(rotated, path)
	if err != nil {
		t.Fatal(err)
	}
	if !all.OK || all.Anchored || all.Records != workers*per {
		t.Errorf("both files: %s", all)
	}
	// In the wrong order the link is broken at the first line of the second file.
	wrong, err := VerifyFiles(path, rotated)
	if err != nil {
		t.Fatal(err)
	}
	if wrong.OK || wrong.BrokenFile != rotated || wrong.BrokenLine != 1 {
		t.Errorf("files out of order: %s", wrong)
	}
}

func TestRestartContinuesChain(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	for run := 0; run < 3; run++ {
		l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		logN(t, l, 4)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	res, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Records != 12 || res.LastSeq != 12 || len(res.Restarts) != 0 {
		t.Fatalf("after 3 runs: %s", res)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestRestartAfterTornWrite: a machine crash left half a line. The next run
// terminates it, continues the chain from the last complete record, and
// Verify reports the torn line rather than hiding it.
func TestRestartAfterTornWrite(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logN(t, l, 3)
	l.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"time":"2026-11-03T10:04:05Z","req`)
	f.Close()

	l, err = New(Config{Sink: SinkFile, Path: path}, Options{})
	if err != nil {
		t.Fatalf("New after torn write: %v", err)
	}
	logN(t, l, 2)
	l.Close()

	res, _ := VerifyFile(path)
	if res.OK || res.BrokenLine != 4 || !strings.Contains(res.Reason, "not an audit record") {
		t.Fatalf("torn line not reported: %s", res)
	}
	b, _ := os.ReadFile(path)
	lines := splitLines(b)
	if len(lines) != 6 {
		t.Fatalf("%d lines, want 3 + torn + 2", len(lines))
	}
	without := append(lines[:3:3], lines[4:]...)
	res, _ = Verify(strings.NewReader(joinLines(without)))
	if !res.OK || res.Records != 5 {
		t.Fatalf("records after the torn line do not continue the chain: %s", res)
	}
}

func TestNewRefusesFileThatIsNotAnAuditLog(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	os.WriteFile(path, []byte("hello\nworld\n"), 0o600)
	_, err := New(Config{Sink: SinkFile, Path: path}, Options{})
	if err == nil || !strings.Contains(err.Error(), "does not end with an audit record") {
		t.Fatalf("err = %v", err)
	}
}

func TestNewInvalidConfig(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Sink: "syslog"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "audit.sink") {
		t.Fatalf("err = %v", err)
	}
	_, err = New(Config{Sink: SinkFile, Path: t.TempDir() + "/missing/dir/audit.log"}, Options{})
	if err == nil || !strings.Contains(err.Error(), "opening") {
		t.Fatalf("err = %v", err)
	}
}

// TestFsyncModes: in every mode a record is in the file (readable through
// another descriptor) as soon as Log returns; "every" has synced it before
// returning, "interval" syncs it in the background, "none" leaves it to the OS.
func TestFsyncModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{FsyncNone, FsyncEvery, FsyncInterval} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			path := filePath(t)
			l, err := New(Config{Sink: SinkFile, Path: path, Fsync: mode, FsyncInterval: 20 * time.Millisecond}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			for i := 1; i <= 20; i++ {
				if err := l.Log(context.Background(), sampleRecord(i)); err != nil {
					t.Fatal(err)
				}
				if n := countLines(t, path); n != i {
					t.Fatalf("after %d Log calls the file has %d lines", i, n)
				}
			}
			dirty := func() bool { l.fileMu.Lock(); defer l.fileMu.Unlock(); return l.dirty }
			switch mode {
			case FsyncEvery:
				if dirty() {
					t.Error("fsync every: data not synced when Log returned")
				}
			case FsyncInterval:
				deadline := time.Now().Add(5 * time.Second)
				for dirty() && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if dirty() {
					t.Error("fsync interval: background sync did not run")
				}
			case FsyncNone:
				time.Sleep(50 * time.Millisecond)
				if !dirty() {
					t.Error("fsync none: something synced")
				}
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if res, _ := VerifyFile(path); !res.OK || res.Records != 20 {
				t.Fatalf("Verify: %s", res)
			}
		})
	}
}

// flakyWriter fails its first `fail` writes after writing `partial` bytes.
type flakyWriter struct {
	syncBuffer
	fail, partial int
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	fail := w.fail > 0
	if fail {
		w.fail--
	}
	w.mu.Unlock()
	if fail {
		n := min(w.partial, len(p))
		w.syncBuffer.Write(p[:n])
		return n, errors.New("disk full")
	}
	return w.syncBuffer.Write(p)
}

// TestWriteErrorKeepsRecords: a failed (even half-done) write is reported to
// the caller, and the record is written, in chain order, by a later write.
func TestWriteErrorKeepsRecords(t *testing.T) {
	t.Parallel()
	for _, partial := range []int{0, 17} {
		t.Run(fmt.Sprintf("partial=%d", partial), func(t *testing.T) {
			t.Parallel()
			w := &flakyWriter{fail: 2, partial: partial}
			l, err := New(Config{}, Options{Stdout: w, RetryMin: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if err := l.Log(context.Background(), sampleRecord(i)); !errors.Is(err, ErrNotWritten) || !strings.Contains(err.Error(), "disk full") {
					t.Fatalf("Log %d: err = %v, want the write error", i, err)
				}
			}
			waitFor(t, "recovery", l.Writable)
			if err := l.Log(context.Background(), sampleRecord(2)); err != nil {
				t.Fatalf("Log after recovery: %v", err)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			res, _ := Verify(strings.NewReader(string(w.Bytes())))
			if !res.OK || res.Records != 4 { // and the close record
				t.Fatalf("Verify: %s\n%s", res, w.Bytes())
			}
		})
	}
}

func TestCloseReportsUnwritten(t *testing.T) {
	t.Parallel()
	w := &flakyWriter{fail: 100}
	l, _ := New(Config{}, Options{Stdout: w})
	if err := l.Log(context.Background(), sampleRecord(0)); err == nil {
		t.Fatal("want error")
	}
	if err := l.Close(); err == nil || !strings.Contains(err.Error(), "not written") {
		t.Fatalf("Close = %v, want the unwritten records reported", err)
	}
}

func TestLogAfterClose(t *testing.T) {
	t.Parallel()
	l, _ := newBufLogger(t)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := l.Log(context.Background(), sampleRecord(0)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Log after Close = %v, want ErrClosed", err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatalf("Reopen on stdout = %v, want nil (no-op)", err)
	}
}

// TestLogIgnoresCancelledContext: a cancelled request is still audited.
func TestLogIgnoresCancelledContext(t *testing.T) {
	t.Parallel()
	l, buf := newBufLogger(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := l.Log(ctx, sampleRecord(0)); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if n := len(splitLines(buf.Bytes())); n != 2 {
		t.Fatalf("%d lines, want the record and the close record", n)
	}
}

// TestHeadIsLoggedOnClose: the chain head goes to the operational log, a
// second place to check the audit file against (truncation, rewrites).
func TestHeadIsLoggedOnClose(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	var logs syncBuffer
	l, err := New(Config{Sink: SinkFile, Path: path}, Options{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if seq, h := l.Head(); seq != 0 || h != GenesisHash {
		t.Fatalf("Head before any record = %d %s", seq, h)
	}
	logN(t, l, 3)
	seq, h := l.Head()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res, _ := VerifyFile(path)
	if seq != 3 || h != res.LastHash {
		t.Fatalf("Head = %d %s, file ends with %d %s", seq, h, res.LastSeq, res.LastHash)
	}
	var entry struct {
		Msg   string `json:"msg"`
		Event string `json:"event"`
		Seq   uint64 `json:"seq"`
		Hash  string `json:"hash"`
	}
	if err := json.Unmarshal(logs.Bytes(), &entry); err != nil {
		t.Fatalf("%v: %s", err, logs.Bytes())
	}
	if entry.Msg != "audit chain head" || entry.Event != "close" || entry.Seq != 3 || entry.Hash != h {
		t.Errorf("logged %+v", entry)
	}
}

// gatedWriter blocks every write until the gate is opened and counts writes.
type gatedWriter struct {
	syncBuffer
	gate   chan struct{}
	writes int
}

func (w *gatedWriter) Write(p []byte) (int, error) {
	<-w.gate
	w.mu.Lock()
	w.writes++
	w.mu.Unlock()
	return w.syncBuffer.Write(p)
}

// TestBackPressure: while the sink is stuck, Log blocks (no record is
// acknowledged before it is written, none is dropped); once it moves, the
// queued records go out together in few writes.
func TestBackPressure(t *testing.T) {
	t.Parallel()
	w := &gatedWriter{gate: make(chan struct{})}
	l, err := New(Config{}, Options{Stdout: w})
	if err != nil {
		t.Fatal(err)
	}
	const callers = 40
	returned := make(chan error, callers)
	for i := 0; i < callers; i++ {
		go func() { returned <- l.Log(context.Background(), sampleRecord(i)) }()
	}
	select {
	case err := <-returned:
		t.Fatalf("Log returned (%v) while the sink was blocked", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(w.gate)
	for i := 0; i < callers; i++ {
		if err := <-returned; err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	res, _ := Verify(strings.NewReader(string(w.Bytes())))
	if !res.OK || res.Records != callers+1 { // and the close record
		t.Fatalf("Verify: %s", res)
	}
	if w.writes >= callers {
		t.Errorf("%d writes for %d records: queued records were not batched", w.writes, callers)
	}
}

// TestFileSinkOnAFIFO: a path that is not a regular file (a named pipe read
// by a log shipper) works with fsync: none and is refused with fsync.
func TestFileSinkOnAFIFO(t *testing.T) {
	t.Parallel()
	path := filePath(t)
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if _, err := New(Config{Sink: SinkFile, Path: path, Fsync: FsyncEvery}, Options{}); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("fsync every on a FIFO: err = %v", err)
	}
	// The reader is open before the logger (non-blocking: a blocking open
	// waits for a writer, and one scheduled after the logger's Close
	// would wait forever); the pipe keeps what was written until read.
	rf, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	logN(t, l, 3)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := io.ReadAll(rf)
	if err != nil {
		t.Fatal(err)
	}
	// A FIFO's reader cannot be resumed by the next run: Close ends the chain.
	if res, _ := Verify(strings.NewReader(string(b))); !res.OK || res.Records != 4 || !strings.Contains(splitLines(b)[3], `"method":"audit/close"`) {
		t.Fatalf("Verify: %s", res)
	}
}
