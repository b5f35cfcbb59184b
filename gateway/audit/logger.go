package audit

import (
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
	"time"

	"go.opentelemetry.io/otel/trace"
)

// ErrClosed is returned by Log after Close.
var ErrClosed = errors.New("audit: logger closed")

// GenesisHash is the prev_hash of the first record of a chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Options are the non-config dependencies of a Logger. The zero value works.
type Options struct {
	// Stdout receives the records when the sink is stdout (default
	// os.Stdout). Tests pass a buffer.
	Stdout io.Writer
	// Logger receives the logger's own warnings and errors (a torn last line
	// found at start, background fsync failures). Default: discarded.
	Logger *slog.Logger
	// Clock stamps records whose Time is zero. Default time.Now.
	Clock func() time.Time
}

// Logger writes audit records as hash-chained JSON lines.
//
// It is safe for concurrent use. Log never drops a record: it returns only
// once the record's line has been handed to the sink (the kernel for a file)
// and, with fsync: every, synced. One writer goroutine writes whatever has
// queued up since its last write in one write (and at most one fsync), so
// a slow disk slows callers down (back-pressure) instead of losing records,
// and memory is bounded by the number of callers blocked in Log.
type Logger struct {
	cfg   Config
	log   *slog.Logger
	clock func() time.Time

	// mu guards the chain state and the pending batch.
	mu     sync.Mutex
	seq    uint64
	prev   [64]byte // hex of the last record's hash
	hasher hash.Hash
	sum    [sha256.Size]byte
	cur    *batch // records waiting to be written
	spare  []byte // a recycled batch buffer (writer goroutine only)
	closed bool

	kick     chan struct{} // wakes the writer (buffered, 1)
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

// batch is a run of encoded lines written with one Write; done is closed
// when the write has finished, err is its result.
type batch struct {
	buf  []byte
	done chan struct{}
	err  error
}

func newBatch(buf []byte) *batch { return &batch{buf: buf, done: make(chan struct{})} }

// maxSpare bounds the batch buffer kept for reuse.
const maxSpare = 1 << 20

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
		cfg:    cfg,
		log:    opts.Logger,
		clock:  opts.Clock,
		hasher: sha256.New(),
		cur:    newBatch(nil),
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	if l.log == nil {
		l.log = slog.New(slog.DiscardHandler)
	}
	if l.clock == nil {
		l.clock = time.Now
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

// Log writes r as one line and returns when it is written (see Logger).
// It fills r.Time if zero, r.TraceID and r.SpanID from the span in ctx if
// empty, and sets r.Seq, r.PrevHash and r.Hash.
//
// ctx does not cancel Log: an operation whose request was cancelled must
// still be audited, so Log always waits for its record to be written.
//
// A non-nil error means the record could not be written (for example, the
// disk is full). The caller must treat the operation as not audited. Its
// bytes stay queued in front of later records and are written by the next
// successful write, so the chain stays intact and the record appears later.
// With fsync: every, an fsync error is returned after the write succeeded.
func (l *Logger) Log(ctx context.Context, r *Record) error {
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
	r.Seq = l.seq
	both := string(hashes[:])
	r.PrevHash, r.Hash = both[:64], both[64:]
	l.mu.Unlock()
	putBuf(bp, body)

	select {
	case l.kick <- struct{}{}:
	default: // the writer is already due to run
	}
	<-b.done
	return b.err
}

func putBuf(bp *[]byte, b []byte) {
	if cap(b) > 64<<10 {
		return
	}
	*bp = b[:0]
	bufPool.Put(bp)
}

// writer is the goroutine that writes batches until Close.
func (l *Logger) writer() {
	defer close(l.exited)
	for {
		select {
		case <-l.kick:
			l.flush()
		case <-l.quit:
			// Log refuses new records now; write what is queued.
			for {
				more, err := l.flush()
				if err != nil {
					l.mu.Lock()
					l.closeErr = fmt.Errorf("%w (%d bytes of records not written)", err, len(l.cur.buf))
					l.mu.Unlock()
					return
				}
				if !more {
					return
				}
			}
		}
	}
}

// flush writes the pending batch, if any, and reports whether one was.
func (l *Logger) flush() (bool, error) {
	l.mu.Lock()
	b := l.cur
	if len(b.buf) == 0 {
		l.mu.Unlock()
		return false, nil
	}
	l.cur = newBatch(l.spare[:0])
	l.spare = nil
	l.mu.Unlock()

	n, err := l.write(b.buf)
	if n < len(b.buf) {
		// Keep the unwritten bytes ahead of newer records: the chain and
		// the line boundaries stay intact when a later write succeeds.
		l.mu.Lock()
		rest := make([]byte, 0, len(b.buf)-n+len(l.cur.buf))
		rest = append(rest, b.buf[n:]...)
		l.cur.buf = append(rest, l.cur.buf...)
		l.mu.Unlock()
	} else if cap(b.buf) <= maxSpare {
		l.spare = b.buf[:0]
	}
	b.buf = nil
	b.err = err
	close(b.done)
	return true, err
}

// write hands p to the sink and applies fsync: every.
func (l *Logger) write(p []byte) (int, error) {
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
	return errors.Join(errs...)
}

// Close writes every pending record, then syncs and closes a file sink.
// Log calls after Close return ErrClosed. Close is idempotent.
func (l *Logger) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
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
