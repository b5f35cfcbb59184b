package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// fakeSource hands out tokens "tok-1", "tok-2", … : a new one after each
// Invalidate, the cached one otherwise.
type fakeSource struct {
	mu          sync.Mutex
	n           int
	invalidated []string
	err         error
	none        bool
	service     bool
}

func (s *fakeSource) Token(context.Context) (credentials.Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return credentials.Result{}, s.err
	}
	if s.none {
		return credentials.Result{}, nil
	}
	hit := s.n > 0
	if !hit {
		s.n = 1
	}
	return credentials.Result{CacheHit: hit, Token: &credentials.Token{
		AccessToken: secret.String(fmt.Sprintf("tok-%d", s.n)), Flow: credentials.FlowJWTBearer,
		PlatformSubject: "rita@acme.example", ServiceAccount: s.service,
		Extra: map[string]any{"instance_url": "http://instance.invalid"},
	}}, nil
}

func (s *fakeSource) Invalidate(_ context.Context, stale *credentials.Token) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invalidated = append(s.invalidated, stale.AccessToken.Reveal())
	s.n++
}

func (s *fakeSource) invalidations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.invalidated...)
}

// platform is a test platform whose errors are {"error":"…"} bodies.
type apiErr struct {
	status  int
	msg     string
	retried bool
}

func (e *apiErr) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.msg) }

func testPlatform() Platform {
	return Platform{
		Kind: "acme", Name: "Acme", Flows: "jwt_bearer", TooLargeHint: "ask for less",
		ParseError: func(resp *http.Response, body []byte, retried bool) error {
			var b struct {
				Error string `json:"error"`
			}
			_ = json.Unmarshal(body, &b)
			return &apiErr{status: resp.StatusCode, msg: Sanitize(b.Error, 100), retried: retried}
		},
		ClassifyAPI: func(c *Call, err error) (Failure, bool) {
			var e *apiErr
			if !errors.As(err, &e) {
				return Failure{}, false
			}
			return Failure{Code: upstreams.CodeUpstreamUnauthorized, Message: "Acme refused: " + e.msg + c.ServiceAccountNote()}, true
		},
		LogAttrs: func(method, path string) []any { return []any{"method", method} },
	}
}

type testEnv struct {
	ts   *httptest.Server
	src  *fakeSource
	cl   *Client
	logs *bytes.Buffer
	mu   sync.Mutex
	seen []*http.Request
	body []string
}

func newTestEnv(t *testing.T, handler http.HandlerFunc, cfg upstreams.Config, p Platform) *testEnv {
	t.Helper()
	e := &testEnv{src: &fakeSource{}, logs: &bytes.Buffer{}}
	e.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.seen = append(e.seen, r.Clone(context.Background()))
		e.body = append(e.body, string(b))
		e.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(e.ts.Close)
	cfg.Name = "acme"
	if cfg.URL == "" {
		cfg.URL = e.ts.URL + "/"
	}
	var err error
	e.cl, err = New(cfg, p, Deps{Credentials: e.src, Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *testEnv) requests() []*http.Request {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*http.Request(nil), e.seen...)
}

func userCtx(t *testing.T) (context.Context, *callinfo.Info) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	ctx, info := callinfo.NewContext(ctx)
	return identity.NewContext(ctx, &identity.Identity{Subject: "user-rita"}), info
}

func TestDoSendsTokenAndRetriesOnceAfter401(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok-2" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"session expired"}`)
			return
		}
		w.Header().Set("X-Total-Count", "7")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}, upstreams.Config{}, testPlatform())
	ctx, info := userCtx(t)
	c, cancel := e.cl.NewCall(ctx)
	defer cancel()
	resp, err := c.Do(http.MethodPost, "/api/x", map[string][]string{"q": {"a b"}}, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Body) != `{"ok":true}` || resp.Header.Get("X-Total-Count") != "7" {
		t.Errorf("response = %q, %v", resp.Body, resp.Header)
	}
	reqs := e.requests()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2 (one retry)", len(reqs))
	}
	if got := e.src.invalidations(); len(got) != 1 || got[0] != "tok-1" {
		t.Errorf("invalidated %v, want [tok-1]", got)
	}
	for i, r := range reqs {
		if r.Method != http.MethodPost || r.URL.Path != "/api/x" || r.URL.RawQuery != "q=a+b" ||
			r.Header.Get("Accept") != "application/json" || r.Header.Get("Content-Type") != "application/json" || e.body[i] != `{"k":"v"}` {
			t.Errorf("request %d: %s %s %v body %q", i, r.Method, r.URL, r.Header, e.body[i])
		}
	}
	if c.Token() == nil || c.Token().AccessToken.Reveal() != "tok-2" {
		t.Errorf("Call.Token is not the token of the last request")
	}
	snap := info.Snapshot()
	if snap.Flow != credentials.FlowJWTBearer || snap.PlatformSubject != "rita@acme.example" || snap.Exchanges != 1 {
		t.Errorf("callinfo = %+v", snap)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "tok-") || !strings.Contains(logs, "msg=\"acme call\"") || !strings.Contains(logs, "method=POST") || !strings.Contains(logs, "status=401") {
		t.Errorf("logs:\n%s", logs)
	}
}

func TestDoPersistent401IsThePlatformsError(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, "{\"error\":\"user\\nfrozen\"}")
	}, upstreams.Config{}, testPlatform())
	ctx, _ := userCtx(t)
	c, cancel := e.cl.NewCall(ctx)
	defer cancel()
	_, err := c.Do(http.MethodGet, "/x", nil, nil)
	var ae *apiErr
	if !errors.As(err, &ae) || ae.status != 401 || !ae.retried || ae.msg != "user frozen" {
		t.Fatalf("err = %#v, want the retried platform error", err)
	}
	if n := len(e.requests()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
	f, cerr := c.Classify(err)
	if cerr != nil || f.Code != upstreams.CodeUpstreamUnauthorized || f.Message != "Acme refused: user frozen" {
		t.Errorf("Classify = %+v, %v", f, cerr)
	}
}

func TestInstanceURL(t *testing.T) {
	t.Parallel()
	var e *testEnv
	p := testPlatform()
	p.InstanceURL = func(tok *credentials.Token) string {
		if tok.ExtraString("instance_url") == "" {
			t.Error("InstanceURL got no token")
		}
		return e.ts.URL + "/instance"
	}
	e = newTestEnv(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "{}") },
		upstreams.Config{URL: "http://configured.invalid"}, p)
	ctx, _ := userCtx(t)
	c, cancel := e.cl.NewCall(ctx)
	defer cancel()
	if _, err := c.Do(http.MethodGet, "/x", nil, nil); err != nil {
		t.Fatal(err)
	}
	if r := e.requests(); len(r) != 1 || r[0].URL.Path != "/instance/x" {
		t.Errorf("requests %v, want one to /instance/x", r)
	}
}

// Every failure maps to the shared code and a message for the user; the
// caller's own cancellation is a plain error.
func TestClassify(t *testing.T) {
	t.Parallel()
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	handler := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			_, _ = w.Write(bytes.Repeat([]byte("x"), 2048))
		case "/redirect":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/slow":
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		case "/cut":
			w.Header().Set("Content-Length", "100")
			_, _ = io.WriteString(w, "{")
		default:
			_, _ = io.WriteString(w, "{}")
		}
	}
	p := testPlatform()
	p.ParseError, p.ClassifyAPI = nil, nil // the generic *StatusError
	e := newTestEnv(t, handler, upstreams.Config{MaxResultBytes: 1024, Timeout: 300 * time.Millisecond}, p)

	tests := []struct {
		name     string
		path     string
		src      *fakeSource
		wantCode int64
		wantMsg  string
	}{
		{"too large", "/big", nil, upstreams.CodeResultTooLarge, "Acme's response exceeded the upstream's max_result_bytes (1024 bytes) and was discarded; ask for less."},
		{"redirect not followed", "/redirect", nil, upstreams.CodeUpstreamUnavailable, "Acme call failed: HTTP 302 Found"},
		{"timeout", "/slow", nil, upstreams.CodeUpstreamTimeout, "Acme did not answer within 300ms; retry, or narrow the request."},
		{"cut short", "/cut", nil, upstreams.CodeUpstreamUnavailable, "could not reach Acme: unexpected EOF (connection closed mid-response)"},
		{"flow none", "/", &fakeSource{none: true}, upstreams.CodeCredentialsUnavailable, "the upstream's credentials flow yields no token (flow none); Acme needs a per-user token, configure flow jwt_bearer"},
		{"credentials", "/", &fakeSource{err: &credentials.Error{Upstream: "acme", Flow: "jwt_bearer", Code: "invalid_grant"}}, upstreams.CodeCredentialsUnavailable, "invalid_grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cl := e.cl
			if tt.src != nil {
				var err error
				if cl, err = New(upstreams.Config{Name: "acme", URL: e.ts.URL}, p, Deps{Credentials: tt.src}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, _ := userCtx(t)
			c, cancel := cl.NewCall(ctx)
			defer cancel()
			_, err := c.Do(http.MethodGet, tt.path, nil, nil)
			if err == nil {
				t.Fatal("Do succeeded")
			}
			f, cerr := c.Classify(err)
			if cerr != nil {
				t.Fatalf("Classify: %v", cerr)
			}
			if f.Code != tt.wantCode || !strings.Contains(f.Message, tt.wantMsg) {
				t.Errorf("Classify = %d %q, want %d containing %q", f.Code, f.Message, tt.wantCode, tt.wantMsg)
			}
			res, rerr := c.ToolFailure(err)
			if rerr != nil || !res.IsError || res.Content[0].(*mcp.TextContent).Text != f.Message {
				t.Errorf("ToolFailure = %v, %v", res, rerr)
			}
			var rpc *jsonrpc.Error
			if !errors.As(c.RPCFailure(err), &rpc) || rpc.Code != tt.wantCode || !strings.HasPrefix(rpc.Message, "upstream acme (acme): ") {
				t.Errorf("RPCFailure = %v", rpc)
			}
		})
	}

	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		dead := httptest.NewServer(http.NotFoundHandler())
		dead.Close()
		cl, err := New(upstreams.Config{Name: "acme", URL: dead.URL}, p, Deps{Credentials: &fakeSource{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, _ := userCtx(t)
		c, cancel := cl.NewCall(ctx)
		defer cancel()
		_, err = c.Do(http.MethodGet, "/x?secret", nil, nil)
		f, _ := c.Classify(err)
		if f.Code != upstreams.CodeUpstreamUnavailable || !strings.HasPrefix(f.Message, "could not reach Acme: ") || strings.Contains(f.Message, "secret") {
			t.Errorf("Classify = %+v", f)
		}
	})

	t.Run("caller cancelled", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(context.Background())
		c, done := e.cl.NewCall(identity.NewContext(ctx, &identity.Identity{Subject: "u"}))
		defer done()
		cancel()
		_, err := c.Do(http.MethodGet, "/", nil, nil)
		if _, cerr := c.Classify(err); cerr == nil || !errors.Is(cerr, context.Canceled) {
			t.Errorf("Classify after the caller's cancel = %v, want context.Canceled", cerr)
		}
		if res, terr := c.ToolFailure(err); res != nil || terr == nil {
			t.Errorf("ToolFailure after cancel = %v, %v; want a Go error", res, terr)
		}
	})

	// The user must connect their account first: the gateway answers that
	// itself (a URL elicitation), so the failure is a Go error that keeps
	// the typed error, not a tool error made of its text.
	t.Run("consent required", func(t *testing.T) {
		t.Parallel()
		src := &fakeSource{err: &credentials.Error{Upstream: "acme", Flow: "authorization_code",
			Err: &credentials.ConsentRequiredError{Upstream: "acme", Reason: "no_grant"}}}
		cl, err := New(upstreams.Config{Name: "acme", URL: e.ts.URL}, p, Deps{Credentials: src})
		if err != nil {
			t.Fatal(err)
		}
		ctx, _ := userCtx(t)
		c, cancel := cl.NewCall(ctx)
		defer cancel()
		_, err = c.Do(http.MethodGet, "/", nil, nil)
		res, terr := c.ToolFailure(err)
		var cre *credentials.ConsentRequiredError
		var rpc *jsonrpc.Error
		if res != nil || !errors.As(terr, &cre) || !errors.As(terr, &rpc) || rpc.Code != upstreams.CodeCredentialsUnavailable {
			t.Errorf("ToolFailure = %v, %v; want an error with code %d wrapping the ConsentRequiredError", res, terr, upstreams.CodeCredentialsUnavailable)
		}
		if rerr := c.RPCFailure(err); !errors.As(rerr, &cre) || !errors.As(rerr, &rpc) || rpc.Code != upstreams.CodeCredentialsUnavailable {
			t.Errorf("RPCFailure = %v; want code %d wrapping the ConsentRequiredError", rerr, upstreams.CodeCredentialsUnavailable)
		}
	})

	t.Run("jsonrpc passes through", func(t *testing.T) {
		t.Parallel()
		ctx, _ := userCtx(t)
		c, cancel := e.cl.NewCall(ctx)
		defer cancel()
		f, _ := c.Classify(&jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: "bad"})
		if f.Code != jsonrpc.CodeInvalidParams || f.Message != "bad" {
			t.Errorf("Classify = %+v", f)
		}
	})
}

func TestServiceAccountNote(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error":"no access"}`)
	}, upstreams.Config{}, testPlatform())
	e.src.service = true
	ctx, _ := userCtx(t)
	c, cancel := e.cl.NewCall(ctx)
	defer cancel()
	_, err := c.Do(http.MethodGet, "/", nil, nil)
	f, _ := c.Classify(err)
	want := "Acme refused: no access This upstream's credentials use a service account (flow client_credentials), so Acme checked that account's access, not yours."
	if f.Message != want {
		t.Errorf("message %q, want %q", f.Message, want)
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	_, err := New(upstreams.Config{Timeout: -1, URL: "http://x"}, Platform{Kind: upstreams.KindServiceNow, Name: "ServiceNow"}, Deps{})
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	for _, want := range []string{"servicenow adapter: upstream name is empty", "upstreams[].timeout: must be positive", "Deps.Credentials is required"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	_, err = New(upstreams.Config{Name: "sn", URL: "https://x.service-now.com/path"}, Platform{Kind: testKind}, Deps{Credentials: &fakeSource{}})
	if err == nil || !strings.Contains(err.Error(), "upstreams[sn].url: test kind: no path, got") {
		t.Errorf("kind-specific validation (the kind's registered Validate hook) missing: %v", err)
	}
}

// testKind is registered with a Validate hook, as the native kinds
// register theirs, so that New's kind-specific check can be seen here
// (the real kinds import this package and cannot be linked into its tests).
const testKind = "rest-test"

func init() {
	upstreams.RegisterKind(testKind, upstreams.Kind{
		New: func(upstreams.Config, upstreams.Deps) (upstreams.Adapter, error) {
			return nil, errors.New("not built in tests")
		},
		Validate: func(c *upstreams.Config, path string) error {
			if u, ok := ParseInstanceURL(c.URL); !ok || (u.Path != "" && u.Path != "/") {
				return fmt.Errorf("%s.url: test kind: no path, got %q", path, c.URL)
			}
			return nil
		},
	})
}

func TestParseInstanceURL(t *testing.T) {
	t.Parallel()
	for raw, want := range map[string]bool{
		"https://acme.my.salesforce.com": true,
		"http://127.0.0.1:8080/":         true,
		"https://x.service-now.com/path": true, // a path is the kind's business
		"https://x.example.com/?q=1":     false,
		"https://x.example.com/#f":       false,
		"ftp://x.example.com":            false,
		"/relative":                      false,
		"":                               false,
		"https://":                       false,
		"https://x.example.com/%zz":      false,
	} {
		if _, ok := ParseInstanceURL(raw); ok != want {
			t.Errorf("ParseInstanceURL(%q) ok = %v, want %v", raw, ok, want)
		}
	}
}
