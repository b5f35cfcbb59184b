// Package resttest holds the test helpers the native REST adapters'
// tests share (salesforce, servicenow): calling a tool as a user with a
// fresh callinfo, reading a result's text and structured content, a log
// buffer safe for concurrent writes, and a recorder that fronts a platform
// sandbox and counts what the adapter sent.
//
// Usage, from an adapter's _test.go:
//
//	rec := &resttest.Recorder{IsToken: func(r *http.Request) bool { return r.URL.Path == "/oauth_token.do" }}
//	ts := httptest.NewServer(rec.Handler(sandbox))
//	res := resttest.MustTool(t, adapter, rita, "my_incidents", nil)
//	if rec.RestHits.Load() != 1 { … }
package resttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// DebugLogger is a text logger at debug level into w.
func DebugLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// BrokerSource returns the credentials.Source of cfg from a fresh real
// broker (logging at debug level into brokerLogs, no invalid_grant
// backoff, so a test may retry at once).
func BrokerSource(t *testing.T, cfg upstreams.Config, brokerLogs io.Writer) credentials.Source {
	t.Helper()
	broker := credentials.NewBroker(credentials.BrokerOptions{Logger: DebugLogger(brokerLogs), InvalidGrantBackoff: -1})
	src, err := broker.Source(cfg.Name, cfg.WithDefaults().Credentials) // as the gateway does
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// Ctx returns a context carrying id and a fresh callinfo.Info (and that
// Info), bounded by 30 s and cancelled when the test ends.
func Ctx(t *testing.T, id *identity.Identity) (context.Context, *callinfo.Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	ctx, info := callinfo.NewContext(ctx)
	return identity.NewContext(ctx, id), info
}

// CallTool opens a session on a, calls tool name with args as id, closes
// the session, and returns the result, what callinfo recorded, and the
// error.
func CallTool(t *testing.T, a upstreams.Adapter, id *identity.Identity, name string, args any) (*mcp.CallToolResult, *callinfo.Info, error) {
	t.Helper()
	s, err := a.Open(context.Background(), upstreams.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, info := Ctx(t, id)
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	return res, info, err
}

// MustTool is CallTool that fails the test on an error or a tool error.
func MustTool(t *testing.T, a upstreams.Adapter, id *identity.Identity, name string, args any) *mcp.CallToolResult {
	t.Helper()
	res, _, err := CallTool(t, a, id, name, args)
	if err != nil {
		t.Fatalf("%s as %s: %v", name, id.Subject, err)
	}
	if res.IsError {
		t.Fatalf("%s as %s: tool error: %s", name, id.Subject, Text(res))
	}
	return res
}

// Text concatenates the text contents of res ("" for nil).
func Text(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// Structured round-trips res.StructuredContent through JSON into v.
func Structured(t *testing.T, res *mcp.CallToolResult, v any) {
	t.Helper()
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("structured content %s: %v", b, err)
	}
}

// RSAKeys returns two 2048-bit RSA keys, generated once per test binary
// (an app's signing key and a stranger's, for refused signatures).
func RSAKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		for i := range testKeys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				keysErr = err
				return
			}
			testKeys[i] = k
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return testKeys[0], testKeys[1]
}

var (
	keysOnce sync.Once
	testKeys [2]*rsa.PrivateKey
	keysErr  error
)

// Clock is a settable clock for sandboxes' Now options. Safe for
// concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock showing t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (a log sink).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Recorder fronts a platform sandbox and records what reaches it: posts
// to the token endpoint, REST requests, their 401 answers and the bearer
// tokens they carried. Its zero value treats every request as REST.
type Recorder struct {
	// IsToken reports a request to the token endpoint (counted, then
	// passed through). Nil: none.
	IsToken func(*http.Request) bool
	// IsREST reports a REST API request (counted and recorded); other
	// requests pass through. Nil: every request that is not IsToken.
	IsREST func(*http.Request) bool
	// Intercept, when set, may answer a REST request itself (return true)
	// instead of the sandbox; it runs after the request is recorded.
	Intercept func(w http.ResponseWriter, r *http.Request) bool

	TokenHits atomic.Int64 // requests to the token endpoint
	RestHits  atomic.Int64 // REST API requests
	Rest401   atomic.Int64 // REST API requests the sandbox answered 401

	mu      sync.Mutex
	bearers []string
}

// Handler wraps the sandbox.
func (rc *Recorder) Handler(sandbox http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rc.IsToken != nil && rc.IsToken(r) {
			rc.TokenHits.Add(1)
			sandbox.ServeHTTP(w, r)
			return
		}
		if rc.IsREST != nil && !rc.IsREST(r) {
			sandbox.ServeHTTP(w, r)
			return
		}
		rc.RestHits.Add(1)
		rc.mu.Lock()
		rc.bearers = append(rc.bearers, strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
		rc.mu.Unlock()
		if rc.Intercept != nil && rc.Intercept(w, r) {
			return
		}
		rec := httptest.NewRecorder()
		sandbox.ServeHTTP(rec, r)
		if rec.Code == http.StatusUnauthorized {
			rc.Rest401.Add(1)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// Bearers returns every bearer token sent to the REST API, in order.
func (rc *Recorder) Bearers() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bearers...)
}
