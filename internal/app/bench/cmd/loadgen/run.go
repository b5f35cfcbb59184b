package main

// Sessions and the measured run: the per-session transport, connecting
// and checking answers, running the workers and summarizing latencies.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mandate-gw/mandate/internal/app/bench"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// headerRT adds fixed headers (and the session's bearer token) to every request.
type headerRT struct {
	base   http.RoundTripper
	header http.Header
	token  string
}

func (h *headerRT) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, vs := range h.header {
		r.Header[k] = vs
	}
	if h.token != "" {
		r.Header.Set("Authorization", "Bearer "+h.token)
	}
	return h.base.RoundTrip(r)
}

// session is one client session and what its answers must be.
type session struct {
	cs      *mcp.ClientSession
	token   string
	subject string // expected whoami answer
}

func (c *config) tokenFor(i int) string {
	if len(c.tokens) == 0 {
		return ""
	}
	return c.tokens[i%len(c.tokens)]
}

// listParams are the tools/list params: nil (the request has no params, as
// many clients send it) unless -list-params-object, which sends {}.
func (c *config) listParams() *mcp.ListToolsParams {
	if c.listObject {
		return &mcp.ListToolsParams{}
	}
	return nil
}

// freshToken takes the next unused token; ok is false when they are used up.
func (c *config) freshToken() (string, bool) {
	i := int(c.next.Add(1)-1) + c.offset
	if i >= len(c.tokens) {
		if !c.wrap {
			return "", false
		}
		i %= len(c.tokens)
	}
	return c.tokens[i], true
}

var errNoTokens = errors.New("fresh tokens used up (raise the pool size)")

func (c *config) connect(ctx context.Context, tr http.RoundTripper, tok string) (*session, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mandate-loadgen", Version: "1"},
		&mcp.ClientOptions{Logger: slog.New(slog.DiscardHandler)})
	t := &mcp.StreamableClientTransport{
		Endpoint:             c.url,
		HTTPClient:           &http.Client{Transport: &headerRT{base: tr, header: c.headers, token: tok}},
		DisableStandaloneSSE: c.noSSE,
		MaxRetries:           -1,
	}
	cs, err := client.Connect(ctx, t, nil)
	if err != nil {
		return nil, err
	}
	s := &session{cs: cs, token: tok}
	if tok != "" {
		s.subject, _ = bench.UnverifiedSubject(tok)
	}
	return s, nil
}

// check returns an error for an answer that is not the expected one.
func (c *config) check(s *session, r *mcp.CallToolResult) (wrong bool, err error) {
	if r.IsError {
		msg := ""
		if len(r.Content) > 0 {
			if t, ok := r.Content[0].(*mcp.TextContent); ok {
				msg = t.Text
			}
		}
		return false, fmt.Errorf("tool error: %s", msg)
	}
	text := ""
	if len(r.Content) > 0 {
		if t, ok := r.Content[0].(*mcp.TextContent); ok {
			text = t.Text
		}
	}
	switch {
	case c.tool == "echo" && c.echoText != nil && text != *c.echoText:
		return true, fmt.Errorf("echo answered %q, want %q", text, *c.echoText)
	case c.tool == "whoami" && s.subject != "" && text != s.subject:
		return true, fmt.Errorf("whoami answered %q to %q", text, s.subject)
	}
	return false, nil
}

type worker struct {
	lat   []time.Duration
	errs  int
	wrong int
	tools int // tools in the last listing
	first error
}

func run(ctx context.Context, c *config, procs map[string][]int) (*Result, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4 * c.sessions,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()

	if c.scenario == "idle" {
		return c.runIdle(ctx, tr, procs)
	}
	var sessions []*session
	if c.scenario == "calls" || c.scenario == "list" {
		var err error
		sessions, _, err = c.openSessions(ctx, tr, nil, true)
		if err != nil {
			closeSessions(sessions)
			return nil, err
		}
		defer closeSessions(sessions)
	}

	start := time.Now().Add(c.warmup)
	end := start.Add(c.duration)
	workers := make([]*worker, c.sessions)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{lat: make([]time.Duration, 0, 4096)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch c.scenario {
			case "calls", "list":
				c.callLoop(ctx, sessions[i], w, start, end)
			default:
				c.setupLoop(ctx, tr, i, w, start, end)
			}
		}()
	}

	time.Sleep(time.Until(start))
	cpu0 := readCPU(procs)
	time.Sleep(time.Until(end))
	cpu1 := readCPU(procs)
	wg.Wait()

	var all []time.Duration
	res := &Result{Scenario: c.scenario, URL: c.url, Sessions: c.sessions, Seconds: c.duration.Seconds()}
	if c.scenario == "calls" || c.scenario == "cold" {
		res.Tool = c.tool
	}
	for _, w := range workers {
		all = append(all, w.lat...)
		res.Errors += w.errs
		res.Wrong += w.wrong
		res.Tools = max(res.Tools, w.tools)
		if w.first != nil && res.FirstError == "" {
			res.FirstError = w.first.Error()
		}
	}
	if c.fresh {
		res.TokensUsed = min(int(c.next.Load()), len(c.tokens)-c.offset)
		if c.wrap {
			res.TokensUsed = int(c.next.Load())
		}
	}
	c.summarize(res, all)
	ops := res.Calls + res.Errors
	res.CPU = map[string]CPUStat{}
	for name, pid := range procs {
		d := cpu1[name] - cpu0[name]
		st := CPUStat{PID: pid[0], Ms: float64(d) / float64(time.Millisecond)}
		if ops > 0 {
			st.UsPerOp = us(d) / float64(ops)
		}
		res.CPU[name] = st
	}
	return res, nil
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// summarize fills the counts, rates, percentiles and load average of res.
func (c *config) summarize(res *Result, all []time.Duration) {
	sum := bench.Summarize(all)
	res.Calls = sum.Count
	res.CallsPerS = float64(sum.Count) / res.Seconds
	res.P50us, res.P90us, res.P99us, res.MaxUs, res.MeanUs = us(sum.P50), us(sum.P90), us(sum.P99), us(sum.Max), us(sum.Mean)
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			res.LoadAvg = strings.Join(f[:3], " ")
		}
	}
}

// openSessions opens c.sessions sessions, c.connectPar at a time, and
// returns them (nil where opening failed), how many failed and the first
// error. With lat, the time each open took is stored at its index. With
// first, each session also sends its scenario's op once (not measured), so
// that a proxy's per-session work on the first op (Mandate: the upstream
// session) is done before the warm-up starts.
func (c *config) openSessions(ctx context.Context, tr http.RoundTripper, lat []time.Duration, first bool) ([]*session, int, error) {
	sessions := make([]*session, c.sessions)
	sem := make(chan struct{}, max(1, c.connectPar))
	var wg sync.WaitGroup
	var mu sync.Mutex
	var cerr error
	failed := 0
	for i := range sessions {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			t0 := time.Now()
			s, err := c.connect(cctx, tr, c.tokenFor(i))
			if lat != nil && err == nil {
				lat[i] = time.Since(t0)
			}
			if err == nil && first {
				if c.scenario == "list" {
					_, err = s.cs.ListTools(cctx, c.listParams())
				} else {
					_, err = s.cs.CallTool(cctx, &mcp.CallToolParams{Name: c.tool, Arguments: c.args})
				}
				if err != nil {
					err = fmt.Errorf("first %s: %w", c.scenario, err)
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				failed++
				if cerr == nil {
					cerr = fmt.Errorf("opening session %d: %w", i, err)
				}
			}
			sessions[i] = s
		}()
	}
	wg.Wait()
	return sessions, failed, cerr
}

func closeSessions(sessions []*session) {
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for _, s := range sessions {
		if s == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			_ = s.cs.Close()
		}()
	}
	wg.Wait()
}
