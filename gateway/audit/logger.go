package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Errors returned by Log and Offer.
var (
	// ErrClosed: the logger was closed; the record was not queued.
	ErrClosed = errors.New("audit: logger closed")
	// ErrNotWritten wraps the sink's error when a record could not be
	// written yet. The record is chained and queued: a background retry
	// writes it, in chain order, when the sink recovers (see Logger).
	ErrNotWritten = errors.New("audit: record not written yet (queued until the sink recovers)")
	// ErrDropped: Offer found the queue of unwritten records full. The
	// record was not chained; a later MethodAuditDropped record counts it.
	ErrDropped = errors.New("audit: record dropped: the queue of unwritten records is full")
)

// GenesisHash is the prev_hash of the first record of a chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Methods of the records the logger writes itself (Record.Method).
const (
	// MethodAuditClose ends a chain that the next process cannot continue
	// (stdout, a FIFO): Verify accepts a new chain only after it.
	MethodAuditClose = "audit/close"
	// MethodAuditDropped counts the optional records (Offer) dropped while
	// the sink failed and the queue was full; written when it recovers.
	MethodAuditDropped = "audit/dropped"
)

// Defaults of Options.
const (
	// DefaultQueueLimit bounds the bytes of records waiting for the sink
	// that Offer still accepts.
	DefaultQueueLimit = 16 << 20
	// DefaultRetryMin and DefaultRetryMax bound the delay between retries
	// of a failing sink (doubling from min to max).
	DefaultRetryMin = 100 * time.Millisecond
	DefaultRetryMax = 5 * time.Second
	// DefaultStallAfter: a write that has not returned for this long makes
	// the logger not Writable.
	DefaultStallAfter = 5 * time.Second
)

// Options are the non-config dependencies of a Logger. The zero value works.
type Options struct {
	// Stdout receives the records when the sink is stdout (default
	// os.Stdout). Tests pass a buffer.
	Stdout io.Writer
	// Logger receives the logger's own warnings and errors (a torn last line
	// found at start, write and fsync failures, records that could not be
	// written by Close). Default: discarded.
	Logger *slog.Logger
	// Clock stamps records whose Time is zero. Default time.Now.
	Clock func() time.Time
	// QueueLimit is the number of bytes of unwritten records above which
	// Offer drops records (default DefaultQueueLimit) and Writable is false.
	QueueLimit int
	// RetryMin and RetryMax bound the back-off between retries of a
	// failing sink (defaults DefaultRetryMin, DefaultRetryMax).
	RetryMin, RetryMax time.Duration
	// StallAfter is how long a write may take before Writable reports
	// false (default DefaultStallAfter).
	StallAfter time.Duration
}

// Logger writes audit records as hash-chained JSON lines.
//
// It is safe for concurrent use. One writer goroutine writes whatever has
// queued up since its last write in one write (and at most one fsync), so a
// slow disk slows callers down (back-pressure) instead of losing records.
//
// While the sink works, Log returns once the record's line has been handed
// to the sink (the kernel for a file) and, with fsync: every, synced.
//
// When a write fails, the logger is failing: Writable reports false (callers
// refuse new operations), Log and Offer queue the record and return
// ErrNotWritten at once, and the writer retries the queue in the
// background, backing off from RetryMin to RetryMax. A retry writes the
// unwritten rest where the last attempt stopped (nothing is copied or
// rewritten), so a later successful write leaves the chain and the line
// boundaries intact. When the queue is written, the logger is Writable
// again.
//
// Memory is bounded: Offer (optional records, such as refused requests)
// drops records beyond QueueLimit bytes and counts them in a
// MethodAuditDropped record; Log (the record of an operation that ran)
// always queues, so its memory is bounded by the operations admitted while
// Writable was true. Queued records live in memory: Close copies those it
// cannot write to the operational log; a crash of the process loses them.
type Logger struct {
	cfg        Config
	log        *slog.Logger
	clock      func() time.Time
	limit      int64
	retryMin   time.Duration
	retryMax   time.Duration
	stallAfter time.Duration

	// mu guards the chain state, the pending batch and the queue.
	mu           sync.Mutex
	seq          uint64
	prev         [64]byte // hex of the last record's hash
	hasher       hash.Hash
	sum          [sha256.Size]byte
	cur          *batch   // records logged since the writer last took a batch
	queue        []*batch // batches taken by the writer, not yet fully written
	spare        []byte   // a recycled batch buffer
	closed       bool
	lastErr      error     // the write error that made the logger fail
	dropped      uint64    // Offer records dropped since the last summary
	droppedSince time.Time // first of them

	failing    atomic.Bool  // a write failed and the queue is not written yet
	queued     atomic.Int64 // bytes of records not yet written
	writeStart atomic.Int64 // UnixNano when the write in progress began; 0 if none

	kick     chan struct{} // wakes the writer (buffered, 1)
	nudge    chan struct{} // retry now (after Reopen), buffered 1
	quit     chan struct{} // closed by Close
	exited   chan struct{} // closed when the writer is done
	closeErr error         // the writer's final flush error

	// fileMu guards the sink (swapped by Reopen) and the dirty flag; the
	// writer, Reopen and the interval syncer take it.
	fileMu sync.Mutex
	w      io.Writer
	f      *os.File // nil for stdout
	dirty  bool     // written since the last fsync

	special bool // the path is not a regular file: never fsynced

	stop chan struct{} // stops the interval syncer
	done chan struct{}
}

// batch is a run of encoded lines written in order; done is closed when
// its fate is known to its callers (written: err nil; failed: err wraps
// ErrNotWritten and the bytes stay queued). off counts the bytes written.
type batch struct {
	buf      []byte
	off      int  // writer goroutine only
	notified bool // writer goroutine only
	done     chan struct{}
	err      error
}

func newBatch(buf []byte) *batch { return &batch{buf: buf, done: make(chan struct{})} }

// maxSpare bounds the batch buffer kept for reuse.
const maxSpare = 1 << 20

// lineOverhead bounds what chaining adds to an encoded body (seq,
// prev_hash, hash, braces, newline).
const lineOverhead = 200

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// New validates cfg and opens its sink. For a file sink it reads the end of
// an existing file and continues its hash chain, so restarts do not break
// the chain; a torn last line (a write cut short by a machine crash) is
// terminated with a newline, logged, and skipped (Verify will report it).
func New(cfg Config, opts Options) (*Logger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	l := &Logger{
		cfg:        cfg,
		log:        opts.Logger,
		clock:      opts.Clock,
		limit:      int64(opts.QueueLimit),
		retryMin:   opts.RetryMin,
		retryMax:   opts.RetryMax,
		stallAfter: opts.StallAfter,
		hasher:     sha256.New(),
		cur:        newBatch(nil),
		kick:       make(chan struct{}, 1),
		nudge:      make(chan struct{}, 1),
		quit:       make(chan struct{}),
		exited:     make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.clock == nil {
		l.clock = time.Now
	}
	if l.limit <= 0 {
		l.limit = DefaultQueueLimit
	}
	if l.retryMin <= 0 {
		l.retryMin = DefaultRetryMin
	}
	if l.retryMax < l.retryMin {
		l.retryMax = max(DefaultRetryMax, l.retryMin)
	}
	if l.stallAfter <= 0 {
		l.stallAfter = DefaultStallAfter
	}
	copy(l.prev[:], GenesisHash)

	switch cfg.Sink {
	case SinkStdout:
		l.w = opts.Stdout
		if l.w == nil {
			l.w = os.Stdout
		}
	case SinkFile:
		f, err := os.OpenFile(cfg.Path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: opening %s: %w", cfg.Path, err)
		}
		if st, err := f.Stat(); err == nil && !st.Mode().IsRegular() {
			// A FIFO or device (/dev/stdout): no tail to resume, no fsync.
			if cfg.Fsync != FsyncNone {
				f.Close()
				return nil, fmt.Errorf("audit.fsync: %s is not a regular file; use fsync: none", cfg.Path)
			}
			l.special = true
		} else if err := l.resume(f); err != nil {
			f.Close()
			return nil, err
		}
		l.f, l.w = f, f
		if cfg.Fsync == FsyncInterval {
			l.stop, l.done = make(chan struct{}), make(chan struct{})
			go l.syncLoop(cfg.FsyncInterval)
		}
	}
	go l.writer()
	return l, nil
}

// resume continues the chain of an existing file.
func (l *Logger) resume(f *os.File) error {
	tail, err := readTail(f)
	if err != nil {
		return fmt.Errorf("audit: reading the end of %s: %w", l.cfg.Path, err)
	}
	if tail.torn {
		l.log.Warn("audit file ends with an incomplete line (interrupted write); terminating it and continuing the chain",
			slog.String("path", l.cfg.Path))
		if _, err := f.Write([]byte{'\n'}); err != nil {
			return fmt.Errorf("audit: terminating the incomplete last line of %s: %w", l.cfg.Path, err)
		}
	}
	if tail.skipped > 0 && tail.found {
		l.log.Warn("audit file ends with lines that are not audit records; continuing the chain from the last record",
			slog.String("path", l.cfg.Path), slog.Int("skipped_lines", tail.skipped))
	}
	if tail.found {
		l.seq = tail.seq
		copy(l.prev[:], tail.hash)
	} else if tail.size > 0 && !tail.onlyTorn {
		return fmt.Errorf("audit: %s does not end with an audit record, so its hash chain cannot be continued; move it aside", l.cfg.Path)
	}
	return nil
}

// Log writes r, the record of an operation that ran, as one line and
// returns when it is written (see Logger). It fills r.Time if zero,
// r.TraceID and r.SpanID from the span in ctx if empty, and sets r.Seq,
// r.PrevHash and r.Hash.
//
// ctx does not cancel Log: an operation whose request was cancelled must
// still be audited, so Log always waits for its record to be written.
//
// A non-nil error wrapping ErrNotWritten means the record could not be
// written yet (for example, the disk is full): it is queued ahead of later
// records and written by a background retry. Log never drops a record;
// after Close it returns ErrClosed. With fsync: every, an fsync error is
// reported after the write succeeded (the record is in the file).
func (l *Logger) Log(ctx context.Context, r *Record) error { return l.add(ctx, r, true) }

// Offer is Log for an optional record (a refused or unauthenticated
// request: no operation ran). While the queue of unwritten records holds
// more than QueueLimit bytes, it drops r and returns ErrDropped; the count
// of dropped records is written as a MethodAuditDropped record once the
// sink recovers. Otherwise it behaves like Log.
func (l *Logger) Offer(ctx context.Context, r *Record) error { return l.add(ctx, r, false) }

func (l *Logger) add(ctx context.Context, r *Record, keep bool) error {
	if r.Time.IsZero() {
		r.Time = l.clock()
	}
	if r.TraceID == "" || r.SpanID == "" {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			if r.TraceID == "" {
				r.TraceID = sc.TraceID().String()
			}
			if r.SpanID == "" {
				r.SpanID = sc.SpanID().String()
			}
		}
	}
	bp := bufPool.Get().(*[]byte)
	body := appendBody((*bp)[:0], r)

	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		putBuf(bp, body)
		return ErrClosed
	}
	if !keep && l.queued.Load()+int64(len(body)+lineOverhead) > l.limit {
		first := l.dropped == 0
		if first {
			l.droppedSince = time.Now()
		}
		l.dropped++
		l.mu.Unlock()
		putBuf(bp, body)
		if first {
			l.log.Error("audit queue full: optional records (refused requests) are dropped and counted until the sink recovers",
				slog.String("sink", l.sinkName()), slog.Int64("queued_bytes", l.queued.Load()))
		}
		return ErrDropped
	}
	b := l.cur
	l.appendLocked(body, r)
	failing := l.failing.Load()
	cause := l.lastErr
	l.mu.Unlock()
	putBuf(bp, body)

	if failing {
		// The writer retries on its own schedule; do not wait for it.
		return notWritten(cause)
	}
	select {
	case l.kick <- struct{}{}:
	default: // the writer is already due to run
	}
	<-b.done
	return b.err
}

func notWritten(cause error) error {
	if cause == nil {
		return ErrNotWritten
	}
	return fmt.Errorf("%w: %w", ErrNotWritten, cause)
}

// appendLocked chains body (an encoded record without its chain members)
// onto the pending batch and sets r's chain fields. l.mu is held.
func (l *Logger) appendLocked(body []byte, r *Record) {
	b := l.cur
	l.seq++
	start := len(b.buf)
	b.buf = append(b.buf, body...)
	b.buf = append(b.buf, `,"seq":`...)
	b.buf = strconv.AppendUint(b.buf, l.seq, 10)
	b.buf = append(b.buf, `,"prev_hash":"`...)
	b.buf = append(b.buf, l.prev[:]...)
	b.buf = append(b.buf, `"}`...)
	// Hash = SHA-256(prev_hash hex || the line without its hash member).
	l.hasher.Reset()
	l.hasher.Write(l.prev[:])
	l.hasher.Write(b.buf[start:])
	var hashes [128]byte
	copy(hashes[:64], l.prev[:])
	hex.Encode(l.prev[:], l.hasher.Sum(l.sum[:0]))
	copy(hashes[64:], l.prev[:])
	b.buf = b.buf[:len(b.buf)-1] // reopen the object for the hash member
	b.buf = append(b.buf, `,"hash":"`...)
	b.buf = append(b.buf, l.prev[:]...)
	b.buf = append(b.buf, "\"}\n"...)
	l.queued.Add(int64(len(b.buf) - start))
	r.Seq = l.seq
	both := string(hashes[:])
	r.PrevHash, r.Hash = both[:64], both[64:]
}

// Writable reports whether the sink is writing: no write has failed since
// the queue was last written out, none has been stuck for StallAfter, and
// the queue is below QueueLimit. It is cheap (atomic loads) for a check
// before every operation: an operation admitted while it is true has its
// record written, or kept in the queue until the sink recovers.
func (l *Logger) Writable() bool {
	if l.failing.Load() || l.queued.Load() >= l.limit {
		return false
	}
	if ws := l.writeStart.Load(); ws != 0 && time.Now().UnixNano()-ws > int64(l.stallAfter) {
		return false
	}
	return true
}

// Status is a short, fixed description of the sink's state for a health
// endpoint: "ok", "failing", "stalled" or "queue full". It names no path
// and no error (those go to the operational log).
func (l *Logger) Status() string {
	switch {
	case l.failing.Load():
		return "failing"
	case l.queued.Load() >= l.limit:
		return "queue full"
	}
	if ws := l.writeStart.Load(); ws != 0 && time.Now().UnixNano()-ws > int64(l.stallAfter) {
		return "stalled"
	}
	return "ok"
}

// Queued returns the number of bytes of records not yet written.
func (l *Logger) Queued() int { return int(l.queued.Load()) }

func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	*bp = b[:0]
	bufPool.Put(bp)
}

// writer is the goroutine that writes batches until Close. While the sink
// works it writes when kicked; while it fails it ignores kicks and retries
// on a back-off timer (or at once after Reopen).
func (l *Logger) writer() {
	defer close(l.exited)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	retrying := false
	delay := l.retryMin
	for {
		if !retrying {
			select { // the hot path: two cases, no timer
			case <-l.kick:
			case <-l.quit:
				l.closing()
				return
			}
		} else {
			select {
			case <-retry.C:
			case <-l.nudge:
				retry.Stop()
			case <-l.quit:
				retry.Stop()
				l.closing()
				return
			}
		}
		if err := l.drain(); err != nil {
			if !retrying {
				l.log.Error("audit sink failing: records are queued and retried; new operations are refused until it recovers",
					slog.String("sink", l.sinkName()), slog.Any("error", err), slog.Int64("queued_bytes", l.queued.Load()))
			} else {
				l.log.Debug("audit sink retry failed", slog.Any("error", err), slog.Duration("next_retry", delay))
			}
			retrying = true
			retry.Reset(delay)
			delay = min(delay*2, l.retryMax)
			continue
		}
		if retrying {
			l.log.Info("audit sink recovered: queued records written", slog.String("sink", l.sinkName()))
		}
		retrying = false
		delay = l.retryMin
	}
}

// drain writes the queue, then whatever was logged meanwhile, until nothing
// is left (nil) or a write fails (its error). Callers waiting on a batch
// learn its fate: written, or failed and still queued.
func (l *Logger) drain() error {
	l.mu.Lock()
	for {
		if len(l.cur.buf) > 0 {
			l.queue = append(l.queue, l.cur)
			l.cur = newBatch(l.spare[:0])
			l.spare = nil
		}
		if len(l.queue) == 0 {
			if l.failing.Load() {
				l.failing.Store(false)
				l.lastErr = nil
				if l.dropped > 0 {
					l.appendDroppedLocked()
					continue
				}
			}
			l.mu.Unlock()
			return nil
		}
		b := l.queue[0]
		l.mu.Unlock()

		n, err := l.write(b.buf[b.off:])
		b.off += n
		l.queued.Add(-int64(n))
		if err != nil {
			l.fail(err)
			return err
		}
		if !b.notified {
			b.notified = true
			close(b.done)
		}
		l.mu.Lock()
		// Pop without moving the backing array (usually one batch).
		n0 := copy(l.queue, l.queue[1:])
		l.queue[n0] = nil
		l.queue = l.queue[:n0]
		if l.spare == nil && cap(b.buf) <= maxSpare {
			l.spare = b.buf[:0]
		}
		b.buf = nil
	}
}

// fail marks the logger failing after a write error and tells every caller
// still waiting that its record is queued, not written.
func (l *Logger) fail(err error) {
	l.mu.Lock()
	l.failing.Store(true)
	l.lastErr = err
	if len(l.cur.buf) > 0 {
		l.queue = append(l.queue, l.cur)
		l.cur = newBatch(nil)
	}
	pending := append([]*batch(nil), l.queue...)
	l.mu.Unlock()
	werr := notWritten(err)
	for _, b := range pending {
		if !b.notified {
			b.err = werr
			b.notified = true
			close(b.done)
		}
	}
}

// appendDroppedLocked chains the record that counts the dropped optional
// records. l.mu is held.
func (l *Logger) appendDroppedLocked() {
	r := &Record{Time: l.clock(), Method: MethodAuditDropped, Outcome: OutcomeError, ErrorClass: "audit_queue_full",
		Error: fmt.Sprintf("%d records were not written: the queue of unwritten records was full while the audit sink failed (first dropped at %s)",
			l.dropped, l.droppedSince.UTC().Format(time.RFC3339))}
	l.appendLocked(appendBody(nil, r), r)
	l.dropped = 0
}

// closing is the writer's last work: write what is queued (the close record
// included), retrying briefly; what still cannot be written is copied to the
// operational log, so that it is not lost silently.
func (l *Logger) closing() {
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if attempt > 0 {
			time.Sleep(l.retryMin)
		}
		if err = l.drain(); err == nil {
			return
		}
	}
	l.mu.Lock()
	queue := l.queue
	l.closeErr = fmt.Errorf("%w (%d bytes of records not written; copied to the operational log)", err, l.queued.Load())
	l.mu.Unlock()
	for i, b := range queue {
		data := b.buf[b.off:]
		if i == 0 && b.off > 0 {
			// The line cut by a partial write: copy it whole.
			data = b.buf[bytes.LastIndexByte(b.buf[:b.off], '\n')+1:]
		}
		for len(data) > 0 {
			line, rest, _ := bytes.Cut(data, []byte{'\n'})
			l.log.Error("audit record not written to the sink; copied here", slog.String("sink", l.sinkName()),
				slog.String("record", string(line)))
			data = rest
		}
	}
}

// write hands p to the sink and applies fsync: every.
func (l *Logger) write(p []byte) (int, error) {
	l.writeStart.Store(time.Now().UnixNano())
	defer l.writeStart.Store(0)
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	n, err := l.w.Write(p)
	if n > 0 {
		l.dirty = true
	}
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	if err != nil {
		return n, fmt.Errorf("audit: writing to %s: %w", l.sinkName(), err)
	}
	if l.cfg.Fsync == FsyncEvery && l.f != nil {
		if err := l.f.Sync(); err != nil {
			return n, fmt.Errorf("audit: fsync of %s: %w", l.sinkName(), err)
		}
		l.dirty = false
	}
	return n, nil
}

func (l *Logger) sinkName() string {
	if l.cfg.Sink == SinkFile {
		return l.cfg.Path
	}
	return "stdout"
}

// syncLoop is the fsync: interval background syncer.
func (l *Logger) syncLoop(d time.Duration) {
	defer close(l.done)
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
			l.fileMu.Lock()
			if l.f != nil && l.dirty {
				if err := l.f.Sync(); err != nil {
					l.log.Error("audit fsync failed", slog.String("path", l.cfg.Path), slog.Any("error", err))
				} else {
					l.dirty = false
				}
			}
			l.fileMu.Unlock()
		}
	}
}

// Head returns the seq and hash of the last record logged (0 and
// GenesisHash before the first), a checkpoint of the chain. Recording it
// outside the host (a log line, a metric exemplar, a ticket) later proves
// that no records were removed from the end of the file and that it was not
// rewritten wholesale. Close and Reopen log it through Options.Logger
// ("audit chain head"). At Reopen, records still queued may land in the new
// file, so the logged head is a checkpoint, not necessarily the old file's
// last record.
func (l *Logger) Head() (seq uint64, hash string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq, string(l.prev[:])
}

func (l *Logger) logHead(event string) {
	seq, h := l.Head()
	l.log.Info("audit chain head", slog.String("event", event), slog.String("sink", l.sinkName()),
		slog.Uint64("seq", seq), slog.String("hash", h))
}

// Reopen closes and reopens the file sink's path, for log rotation: rename
// the file, then signal Mandate (SIGHUP), and new records go to a new file
// at the configured path. It is a no-op for stdout.
//
// The chain continues across files: the first record written after Reopen
// carries the last hash of the previous file as its prev_hash and the next
// seq. Verify on the new file alone reports that it starts mid-chain
// (anchored); VerifyFiles on the old and new files checks the link too.
// If the path cannot be opened, writing continues to the old file and the
// error is returned.
func (l *Logger) Reopen() error {
	if l.cfg.Sink != SinkFile {
		return nil
	}
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.f == nil {
		return ErrClosed
	}
	nf, err := os.OpenFile(l.cfg.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("audit: reopening %s (still writing to the previous file): %w", l.cfg.Path, err)
	}
	old := l.f
	l.f, l.w = nf, nf
	var errs []error
	if !l.special && (l.cfg.Fsync != FsyncNone || l.dirty) {
		if err := old.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("audit: fsync of the previous file: %w", err))
		}
	}
	l.dirty = false
	if err := old.Close(); err != nil {
		errs = append(errs, fmt.Errorf("audit: closing the previous file: %w", err))
	}
	l.logHead("reopen")
	if l.failing.Load() {
		select { // a failing sink: try the new file now
		case l.nudge <- struct{}{}:
		default:
		}
	}
	return errors.Join(errs...)
}

// Close writes every pending record, then syncs and closes a file sink.
// When the chain cannot be continued by the next process (stdout, a FIFO)
// and has records, Close ends it with a MethodAuditClose record, so that
// Verify can tell a clean restart from removed records. Records that still
// cannot be written are copied to the operational log and reported in the
// error. Log calls after Close return ErrClosed. Close is idempotent.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	if l.seq > 0 && (l.cfg.Sink == SinkStdout || l.special) {
		r := &Record{Time: l.clock(), Method: MethodAuditClose, Outcome: OutcomeOK}
		l.appendLocked(appendBody(nil, r), r)
	}
	l.closed = true
	l.mu.Unlock()
	close(l.quit)
	<-l.exited

	var errs []error
	if l.closeErr != nil {
		errs = append(errs, l.closeErr)
	}
	if l.stop != nil {
		close(l.stop)
		<-l.done
	}
	l.logHead("close")
	l.fileMu.Lock()
	defer l.fileMu.Unlock()
	if l.f != nil {
		if l.special {
			// nothing to sync
		} else if err := l.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("audit: fsync of %s: %w", l.cfg.Path, err))
		}
		if err := l.f.Close(); err != nil {
			errs = append(errs, fmt.Errorf("audit: closing %s: %w", l.cfg.Path, err))
		}
		l.f = nil
	}
	return errors.Join(errs...)
}
