package gateway

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// tokenFault is how faultyTokenEndpoint answers the victim's exchanges.
type tokenFault int32

const (
	faultNone          tokenFault = iota // proxy to the real IdP
	faultSlow                            // hold the request until the client gives up
	fault5xx                             // 503 with an HTML body
	faultNotJSON                         // 200 with a body that is not JSON
	faultNoAccessToken                   // 200 JSON without access_token
	faultInvalidGrant                    // 400 invalid_grant (the broker backs off)
)

// faultyTokenEndpoint is a loopback token endpoint in front of the real
// zitadel OP: it proxies every request, except that exchanges whose
// subject_token belongs to the victim subject get the configured fault. It
// counts requests per subject.
type faultyTokenEndpoint struct {
	srv    *httptest.Server
	target string
	victim string
	mode   atomic.Int32
	client *http.Client

	mu   sync.Mutex
	hits map[string]int
	// inflight counts victim requests being held (faultSlow).
	inflight atomic.Int32
}

func newFaultyTokenEndpoint(t testing.TB, target, victim string) *faultyTokenEndpoint {
	t.Helper()
	tr := &http.Transport{}
	f := &faultyTokenEndpoint{target: target, victim: victim, hits: map[string]int{}, client: &http.Client{Transport: tr}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(func() { f.srv.Close(); tr.CloseIdleConnections() })
	return f
}

func (f *faultyTokenEndpoint) set(m tokenFault) { f.mode.Store(int32(m)) }

func (f *faultyTokenEndpoint) count(sub string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits[sub]
}

// jwtSubject reads the sub claim of a compact JWS without verifying it (the
// test only routes on it).
func jwtSubject(tok string) string {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var c struct {
		Sub string `json:"sub"`
	}
	_ = json.Unmarshal(b, &c)
	return c.Sub
}

func (f *faultyTokenEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(body))
	sub := jwtSubject(form.Get("subject_token"))
	f.mu.Lock()
	f.hits[sub]++
	f.mu.Unlock()
	if sub == f.victim {
		switch tokenFault(f.mode.Load()) {
		case faultSlow:
			f.inflight.Add(1)
			defer f.inflight.Add(-1)
			select {
			case <-r.Context().Done():
			case <-time.After(15 * time.Second):
			}
			http.Error(w, "too late", http.StatusGatewayTimeout)
			return
		case fault5xx:
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "<html><body>503 Service Unavailable (echo: "+form.Get("subject_token")+")</body></html>")
			return
		case faultNotJSON:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, "<html>this is not JSON</html>")
			return
		case faultNoAccessToken:
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"token_type":"Bearer","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","expires_in":3600}`)
			return
		case faultInvalidGrant:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusBadRequest)
			_, _ = io.WriteString(w, `{"error":"invalid_grant","error_description":"subject token revoked"}`)
			return
		}
	}
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, f.target, bytes.NewReader(body))
	for _, h := range []string{"Content-Type", "Accept", "Authorization"} {
		if v := r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	resp, err := f.client.Do(req)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

// flapServer serves an upstream on a fixed loopback address that can go
// down (listener closed, every connection cut) and come back, optionally
// as a restarted process (a fresh go-sdk server that knows no sessions).
type flapServer struct {
	t    testing.TB
	addr string
	h    atomic.Pointer[http.Handler]
	mu   sync.Mutex
	srv  *http.Server
}

func newFlapServer(t testing.TB) *flapServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &flapServer{t: t, addr: ln.Addr().String()}
	f.serve(ln)
	t.Cleanup(f.down)
	return f
}

func (f *flapServer) url() string { return "http://" + f.addr + "/mcp" }

func (f *flapServer) setHandler(h http.Handler) { f.h.Store(&h) }

func (f *flapServer) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := f.h.Load()
		if h == nil {
			http.Error(w, "no handler yet", http.StatusServiceUnavailable)
			return
		}
		(*h).ServeHTTP(w, r)
	})}
	f.mu.Lock()
	f.srv = srv
	f.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener and cuts every open connection.
func (f *flapServer) down() {
	f.mu.Lock()
	srv := f.srv
	f.srv = nil
	f.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens on the same address again.
func (f *flapServer) up() {
	f.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port may linger for a moment after close
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatalf("relisten on %s: %v", f.addr, err)
	}
	f.serve(ln)
}

// faultTools are the tools of the flaky upstream: who (platform identity),
// slow (sleeps d or until cancelled) and block (waits for cancellation,
// reporting start and cancellation on the channels).
type faultTools struct {
	started   chan string   // the block tool's "tag" argument, when it starts
	cancelled chan string   // the tag, when its context is cancelled
	release   chan struct{} // closed at the end of the test: blocked tools return
}

func newFaultTools(t testing.TB) *faultTools {
	ft := &faultTools{started: make(chan string, 64), cancelled: make(chan string, 64), release: make(chan struct{})}
	t.Cleanup(func() { close(ft.release) })
	return ft
}

func (ft *faultTools) build(s *mcp.Server, u *testUpstream) {
	mcp.AddTool(s, &mcp.Tool{Name: "who"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, map[string]string, error) {
		return nil, map[string]string{"upstream": u.name, "subject": fmt.Sprint(ctx.Value(ctxSubKey{}))}, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "slow"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{ MS int }) (*mcp.CallToolResult, any, error) {
		select {
		case <-time.After(time.Duration(in.MS) * time.Millisecond):
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-ft.release:
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "slept"}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "block"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{ Tag string }) (*mcp.CallToolResult, any, error) {
		ft.started <- in.Tag
		select {
		case <-ctx.Done():
			ft.cancelled <- in.Tag
			return nil, nil, ctx.Err()
		case <-ft.release:
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "not cancelled"}}}, nil, nil
		}
	})
}

// addFlaky adds an upstream named flaky (served through a flapServer) to a
// running muxEnv by reload, and returns the flap server. restart builds the
// handler of a freshly started upstream process.
func addFlaky(t testing.TB, env *muxEnv, ft *faultTools, timeout time.Duration) (fs *flapServer, restart func() http.Handler) {
	t.Helper()
	restart = func() http.Handler {
		return startUpstream(t, env.idp, "flaky", ft.build).srv.Config.Handler
	}
	fs = newFlapServer(t)
	fs.setHandler(restart())
	uc := upstreams.Config{Name: "flaky", Kind: upstreams.KindMCP, URL: fs.url(), Timeout: timeout,
		Credentials: credentials.Config{Flow: credentials.FlowTokenExchange, TokenURL: env.idp.TokenURL(),
			ClientID: "mandate", ClientSecret: "mandate-secret", Audience: "https://flaky.internal"}}
	cfg := *env.gw.cfg
	cfg.Upstreams = append(slices.Clone(cfg.Upstreams), uc.WithDefaults())
	if _, err := env.gw.g.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	return fs, restart
}

// whoOf decodes the who tool's answer.
func whoOf(res *mcp.CallToolResult) map[string]string {
	var got map[string]string
	b, _ := json.Marshal(res.StructuredContent)
	_ = json.Unmarshal(b, &got)
	return got
}

// callWho calls <upstream>_who and checks it answered as sub.
func callWho(t testing.TB, cs *mcp.ClientSession, upstream, sub string) error {
	t.Helper()
	res, err := callJSON(t, cs, upstream+"_who", map[string]any{})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("tool error: %s", toolText(res))
	}
	if got := whoOf(res); got["upstream"] != upstream || got["subject"] != sub {
		return fmt.Errorf("%s_who answered %v, want subject %s", upstream, got, sub)
	}
	return nil
}

func toolText(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// sessionHeaders are the headers of a raw request on cs's session.
func sessionHeaders(tok string, cs *mcp.ClientSession) map[string]string {
	h := bearer(tok)
	h["Mcp-Session-Id"] = cs.ID()
	h["Mcp-Protocol-Version"] = "2025-06-18"
	return h
}
