package mcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"sync"

	"go.opentelemetry.io/otel/propagation"

	"github.com/mandate-gw/mandate/internal/identity"
)

// callState collects what the HTTP layer learned about one upstream
// operation (all HTTP requests made with its context), so that a failed call
// can be reported precisely. go-sdk flattens most transport failures into
// strings; this is how the adapter tells a 401 from garbage from a cut-off.
type callState struct {
	cancel context.CancelCauseFunc

	mu           sync.Mutex
	requests     int            // HTTP requests issued for the operation
	status       int            // status of the last non-2xx response (0: none)
	ok           bool           // a 2xx response arrived
	eof          bool           // a response body was read to its end
	tooLarge     bool           // a response body exceeded max_result_bytes
	redirect     *redirectError // the upstream answered with a redirect (not followed)
	bodyErr      error          // a response body failed mid-read (not EOF, not too large)
	transportErr error          // the HTTP request itself failed
}

type callSnapshot struct {
	requests     int
	status       int
	ok, eof      bool
	tooLarge     bool
	redirect     *redirectError
	bodyErr      error
	transportErr error
}

func (st *callState) snapshot() callSnapshot {
	if st == nil {
		return callSnapshot{}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	return callSnapshot{st.requests, st.status, st.ok, st.eof, st.tooLarge, st.redirect, st.bodyErr, st.transportErr}
}

func (st *callState) update(f func(*callState)) {
	if st == nil {
		return
	}
	st.mu.Lock()
	f(st)
	st.mu.Unlock()
}

type callStateKey struct{}

func callStateFrom(ctx context.Context) *callState {
	st, _ := ctx.Value(callStateKey{}).(*callState)
	return st
}

// sessionTransport is the outermost RoundTripper of one upstream session:
//
//   - it puts the session's user into requests that go-sdk issues on a
//     background context (standalone SSE stream, DELETE, responses to
//     server→client requests), so the credentials transport below always
//     exchanges for the right user;
//   - it injects W3C trace context when a propagator is configured;
//   - it records statuses and failures into the operation's callState;
//   - it turns a redirect into an error, so that no http.Client above it
//     ever follows one: the credentials transport below would put the
//     user's platform token on the request to wherever Location points;
//   - it bounds response bodies of POSTs at max_result_bytes and counts the
//     progress/log notifications in event streams (see notes.go).
type sessionTransport struct {
	s    *session
	next http.RoundTripper // credentials.Transport(src, base): attaches the token, records the credential
}

func (t *sessionTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	s := t.s
	ctx := req.Context()
	changed := false
	if identity.FromContext(ctx) == nil {
		if id := s.id.Load(); id != nil {
			ctx = identity.NewContext(ctx, id)
			changed = true
		}
	}
	if p := s.a.prop; p != nil || changed {
		req = req.Clone(ctx)
		if p != nil {
			p.Inject(ctx, propagation.HeaderCarrier(req.Header))
		}
	}
	st := callStateFrom(ctx)
	st.update(func(st *callState) { st.requests++ })
	resp, err := t.next.RoundTrip(req)
	if err != nil {
		st.update(func(st *callState) {
			if st.transportErr == nil {
				st.transportErr = err
			}
			// The request may be running upstream: cancelling the operation
			// makes go-sdk send notifications/cancelled for it.
			if connectionLost(err) && st.cancel != nil {
				st.cancel(errConnectionLost)
			}
		})
		return nil, err
	}
	if isRedirect(resp.StatusCode) {
		rerr := newRedirectError(resp)
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		st.update(func(st *callState) {
			if st.redirect == nil {
				st.redirect = rerr
			}
		})
		return nil, rerr
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		st.update(func(st *callState) { st.ok = true })
		if resp.Body != nil && resp.Body != http.NoBody {
			mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
			b := &limitedBody{rc: resp.Body, st: st}
			if req.Method == http.MethodPost {
				b.limit = s.a.maxBytes
			}
			if mt == "text/event-stream" {
				b.notes = &s.notes
			}
			if b.limit > 0 || b.notes != nil {
				resp.Body = b
			}
		}
	} else {
		st.update(func(st *callState) { st.status = resp.StatusCode })
	}
	return resp, nil
}

// isRedirect reports whether an http.Client would follow a response with
// this status.
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// redirectError is an upstream's redirect, refused. Its message (which
// users see) does not name the target, which may be an internal address;
// target, for the operational log, is the Location's scheme, host and path
// only: a query or user info may carry credentials.
type redirectError struct {
	status int
	target string
}

func newRedirectError(resp *http.Response) *redirectError {
	e := &redirectError{status: resp.StatusCode, target: "no valid Location"}
	if u, err := resp.Location(); err == nil && u.Host != "" {
		e.target = (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
	}
	return e
}

func (e *redirectError) Error() string {
	return fmt.Sprintf("redirect refused (HTTP %d): Mandate does not follow redirects on upstream calls, the user's platform token would go along; set the upstream's url to the final address (Mandate's log names the target)", e.status)
}

// limitedBody bounds a response body and counts notifications in event
// streams. The first read past the limit fails with errTooLarge and cancels
// the operation, so nothing larger than the limit is ever buffered.
type limitedBody struct {
	rc    io.ReadCloser
	n     int64
	limit int64 // 0: unbounded
	st    *callState
	notes *noteTracker // non-nil for event streams
	tail  [maxPatternLen - 1]byte
	tailN int
}

func (b *limitedBody) Read(p []byte) (int, error) {
	k, err := b.rc.Read(p)
	b.n += int64(k)
	if b.limit > 0 && b.n > b.limit {
		b.st.update(func(st *callState) {
			st.tooLarge = true
			if st.cancel != nil {
				st.cancel(errTooLarge)
			}
		})
		return 0, errTooLarge
	}
	if b.notes != nil && k > 0 {
		b.count(p[:k])
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			b.st.update(func(st *callState) { st.eof = true })
		} else {
			// The connection broke mid-response. Cancelling the operation
			// makes go-sdk send notifications/cancelled (on a new
			// connection), so the upstream stops working on a call nobody
			// will hear the end of.
			b.st.update(func(st *callState) {
				if st.bodyErr == nil && !st.tooLarge {
					st.bodyErr = err
					if st.cancel != nil {
						st.cancel(errConnectionLost)
					}
				}
			})
		}
	}
	return k, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }

// Notification method names as they appear, quoted, on the wire. A JSON
// string inside a result would have its quotes escaped, so these only match
// JSON tokens.
var notePatterns = [][]byte{
	[]byte(`"notifications/progress"`),
	[]byte(`"notifications/message"`),
}

const maxPatternLen = len(`"notifications/progress"`)

// count adds the relayable notifications whose method token ends in p
// (including tokens split across reads) to the session's tracker.
func (b *limitedBody) count(p []byte) {
	n := 0
	// Tokens straddling the previous read and this one.
	if b.tailN > 0 {
		var buf [2 * (maxPatternLen - 1)]byte
		m := copy(buf[:], b.tail[:b.tailN])
		m += copy(buf[m:], p[:min(len(p), maxPatternLen-1)])
		for _, pat := range notePatterns {
			for off := 0; ; {
				i := bytes.Index(buf[off:m], pat)
				if i < 0 {
					break
				}
				if start := off + i; start < b.tailN && start+len(pat) > b.tailN { // starts in the tail, ends in p
					n++
				}
				off += i + 1
			}
		}
	}
	for _, pat := range notePatterns {
		n += bytes.Count(p, pat)
	}
	if len(p) >= len(b.tail) {
		b.tailN = copy(b.tail[:], p[len(p)-len(b.tail):])
	} else {
		// Keep the last len(tail) bytes of tail+p.
		keep := min(b.tailN, len(b.tail)-len(p))
		copy(b.tail[:], b.tail[b.tailN-keep:b.tailN])
		b.tailN = keep + copy(b.tail[keep:], p)
	}
	if n > 0 {
		b.notes.seen.Add(int64(n))
	}
}
