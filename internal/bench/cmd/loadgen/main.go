// Command loadgen drives an MCP server over streamable HTTP with the go-sdk
// client (mcp.NewClient + mcp.StreamableClientTransport) and reports
// throughput, latency percentiles, errors and, optionally, the CPU time other
// processes spent per call (read from /proc/PID/stat).
//
// Scenario "calls" (default): -sessions sessions are opened first, each then
// calls -tool in a loop in its own goroutine. Calls that start after the
// -warmup and finish before warmup+duration are measured.
//
// Scenario "setup": -sessions workers each open a session (initialize), list
// the tools, and close it, in a loop; the latency of initialize + first
// tools/list is measured.
//
//	loadgen -url http://127.0.0.1:9001/mcp -sessions 8 -duration 6s \
//	        -tool echo -args '{"text":"hello"}' -token-file tokens.txt -pid proxy=1234 -json
//
// Answers are checked: echo must return its text argument, whoami must name
// the subject of the session's own token (a wrong answer is counted under
// "wrong", separately from errors).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mandate-gw/mandate/internal/bench"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ", ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// Result is what -json prints (one object on one line).
type Result struct {
	Label      string             `json:"label,omitempty"`
	Scenario   string             `json:"scenario"`
	URL        string             `json:"url"`
	Tool       string             `json:"tool,omitempty"`
	Sessions   int                `json:"sessions"`
	Seconds    float64            `json:"seconds"`
	Calls      int                `json:"calls"`
	Errors     int                `json:"errors"`
	Wrong      int                `json:"wrong"`
	CallsPerS  float64            `json:"calls_per_s"`
	P50us      float64            `json:"p50_us"`
	P90us      float64            `json:"p90_us"`
	P99us      float64            `json:"p99_us"`
	MaxUs      float64            `json:"max_us"`
	MeanUs     float64            `json:"mean_us"`
	CPU        map[string]CPUStat `json:"cpu,omitempty"`
	LoadAvg    string             `json:"loadavg"`
	FirstError string             `json:"first_error,omitempty"`
}

// CPUStat is one process's CPU time over the measurement window.
type CPUStat struct {
	PID     int     `json:"pid"`
	Ms      float64 `json:"ms"`
	UsPerOp float64 `json:"us_per_op"`
}

type config struct {
	url        string
	sessions   int
	duration   time.Duration
	warmup     time.Duration
	tool       string
	args       json.RawMessage
	echoText   *string
	headers    http.Header
	tokens     []string
	scenario   string
	timeout    time.Duration
	noSSE      bool
	connectPar int
}

func main() {
	var hdrs, pids multiFlag
	c := config{}
	flag.StringVar(&c.url, "url", "http://127.0.0.1:9001/mcp", "MCP endpoint")
	flag.IntVar(&c.sessions, "sessions", 8, "concurrent sessions (setup scenario: concurrent workers)")
	flag.DurationVar(&c.duration, "duration", 6*time.Second, "measurement window")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "load before the measurement window (not measured)")
	flag.StringVar(&c.tool, "tool", "echo", "tool to call")
	argsJSON := flag.String("args", "", `tool arguments, a JSON object (default {"text":"hello"} for echo, {} otherwise)`)
	flag.Var(&hdrs, "header", `extra request header "K: V" (repeatable)`)
	tokenFile := flag.String("token-file", "", "bearer tokens, one per line, assigned round-robin to sessions")
	flag.StringVar(&c.scenario, "scenario", "calls", "calls | setup")
	flag.DurationVar(&c.timeout, "call-timeout", 30*time.Second, "timeout of one call or one setup")
	flag.BoolVar(&c.noSSE, "no-sse", false, "do not open the standalone SSE stream (GET) per session")
	flag.IntVar(&c.connectPar, "connect-parallel", 32, "sessions opened concurrently before the calls scenario")
	flag.Var(&pids, "pid", "name=PID of a process whose CPU time per call to report (repeatable)")
	label := flag.String("label", "", "label copied into the JSON output")
	asJSON := flag.Bool("json", false, "print one JSON object instead of text")
	flag.Parse()

	if *argsJSON == "" {
		*argsJSON = "{}"
		if c.tool == "echo" {
			*argsJSON = `{"text":"hello"}`
		}
	}
	if err := c.parse(*argsJSON, hdrs, *tokenFile); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	procs, err := parsePIDs(pids)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
	procs["loadgen"] = os.Getpid()

	res, err := run(context.Background(), c, procs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
	res.Label = *label
	if *asJSON {
		_ = json.NewEncoder(os.Stdout).Encode(res)
	} else {
		printText(os.Stdout, res)
	}
	if res.Calls == 0 {
		os.Exit(1)
	}
}

func (c *config) parse(argsJSON string, hdrs []string, tokenFile string) error {
	var obj map[string]any
	if err := json.Unmarshal([]byte(argsJSON), &obj); err != nil {
		return fmt.Errorf("-args: not a JSON object: %w", err)
	}
	c.args = json.RawMessage(argsJSON)
	if t, ok := obj["text"].(string); ok && c.tool == "echo" {
		c.echoText = &t
	}
	c.headers = http.Header{}
	for _, h := range hdrs {
		k, v, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(k) == "" {
			return fmt.Errorf("-header %q: want \"Key: value\"", h)
		}
		c.headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if tokenFile != "" {
		f, err := os.Open(tokenFile)
		if err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); l != "" {
				c.tokens = append(c.tokens, l)
			}
		}
		if err := sc.Err(); err != nil {
			return fmt.Errorf("-token-file: %w", err)
		}
		if len(c.tokens) == 0 {
			return fmt.Errorf("-token-file %s: no tokens", tokenFile)
		}
	}
	if c.sessions < 1 {
		return errors.New("-sessions must be ≥1")
	}
	if c.scenario != "calls" && c.scenario != "setup" {
		return fmt.Errorf("-scenario %q: want calls or setup", c.scenario)
	}
	return nil
}

func parsePIDs(pids []string) (map[string]int, error) {
	out := map[string]int{}
	for _, p := range pids {
		name, v, ok := strings.Cut(p, "=")
		n, err := strconv.Atoi(v)
		if !ok || name == "" || err != nil || n <= 0 {
			return nil, fmt.Errorf("-pid %q: want name=PID", p)
		}
		if _, err := bench.ProcCPU(n); err != nil {
			return nil, fmt.Errorf("-pid %s: %w", p, err)
		}
		out[name] = n
	}
	return out, nil
}

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

func (c *config) connect(ctx context.Context, tr http.RoundTripper, i int) (*session, error) {
	tok := c.tokenFor(i)
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
	first error
}

func run(ctx context.Context, c config, procs map[string]int) (*Result, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: 4 * c.sessions,
		IdleConnTimeout:     90 * time.Second,
	}
	defer tr.CloseIdleConnections()

	var sessions []*session
	if c.scenario == "calls" {
		sessions = make([]*session, c.sessions)
		sem := make(chan struct{}, max(1, c.connectPar))
		var wg sync.WaitGroup
		var mu sync.Mutex
		var cerr error
		for i := range sessions {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				cctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				s, err := c.connect(cctx, tr, i)
				mu.Lock()
				defer mu.Unlock()
				if err != nil && cerr == nil {
					cerr = fmt.Errorf("opening session %d: %w", i, err)
				}
				sessions[i] = s
			}()
		}
		wg.Wait()
		defer func() {
			for _, s := range sessions {
				if s != nil {
					_ = s.cs.Close()
				}
			}
		}()
		if cerr != nil {
			return nil, cerr
		}
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
			if c.scenario == "calls" {
				c.callLoop(ctx, sessions[i], w, start, end)
			} else {
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
	if c.scenario == "calls" {
		res.Tool = c.tool
	}
	for _, w := range workers {
		all = append(all, w.lat...)
		res.Errors += w.errs
		res.Wrong += w.wrong
		if w.first != nil && res.FirstError == "" {
			res.FirstError = w.first.Error()
		}
	}
	sum := bench.Summarize(all)
	res.Calls = sum.Count
	res.CallsPerS = float64(sum.Count) / c.duration.Seconds()
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	res.P50us, res.P90us, res.P99us, res.MaxUs, res.MeanUs = us(sum.P50), us(sum.P90), us(sum.P99), us(sum.Max), us(sum.Mean)
	ops := res.Calls + res.Errors
	res.CPU = map[string]CPUStat{}
	for name, pid := range procs {
		d := cpu1[name] - cpu0[name]
		st := CPUStat{PID: pid, Ms: float64(d) / float64(time.Millisecond)}
		if ops > 0 {
			st.UsPerOp = us(d) / float64(ops)
		}
		res.CPU[name] = st
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		f := strings.Fields(string(b))
		if len(f) >= 3 {
			res.LoadAvg = strings.Join(f[:3], " ")
		}
	}
	return res, nil
}

func readCPU(procs map[string]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range procs {
		d, err := bench.ProcCPU(pid)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: reading CPU of %s (pid %d): %v\n", name, pid, err)
			continue
		}
		out[name] = d
	}
	return out
}

func (w *worker) fail(err error, wrong bool, measured bool) {
	if !measured {
		return
	}
	if wrong {
		w.wrong++
	} else {
		w.errs++
	}
	if w.first == nil {
		w.first = err
	}
}

func (c *config) callLoop(ctx context.Context, s *session, w *worker, start, end time.Time) {
	params := &mcp.CallToolParams{Name: c.tool, Arguments: c.args}
	for {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		r, err := s.cs.CallTool(cctx, params)
		cancel()
		t1 := time.Now()
		measured := !t0.Before(start) && !t1.After(end)
		if err != nil {
			w.fail(err, false, measured)
			if errors.Is(err, mcp.ErrConnectionClosed) {
				return
			}
			continue
		}
		if wrong, err := c.check(s, r); err != nil {
			w.fail(err, wrong, measured)
			continue
		}
		if measured {
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

func (c *config) setupLoop(ctx context.Context, tr http.RoundTripper, i int, w *worker, start, end time.Time) {
	for n := 0; ; n++ {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		s, err := c.connect(cctx, tr, i+n*c.sessions)
		if err == nil {
			var lt *mcp.ListToolsResult
			lt, err = s.cs.ListTools(cctx, nil)
			if err == nil && len(lt.Tools) == 0 {
				err = errors.New("tools/list returned no tools")
			}
		}
		t1 := time.Now()
		cancel()
		if s != nil {
			_ = s.cs.Close()
		}
		measured := !t0.Before(start) && !t1.After(end)
		if err != nil {
			w.fail(err, false, measured)
			continue
		}
		if measured {
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

func printText(out io.Writer, r *Result) {
	what := r.Tool
	if r.Scenario == "setup" {
		what = "initialize+tools/list"
	}
	fmt.Fprintf(out, "%s %s %s sessions=%d: %.0f ops/s  p50 %.0fµs  p90 %.0fµs  p99 %.0fµs  max %.0fµs  ops %d  errors %d  wrong %d\n",
		r.Label, r.URL, what, r.Sessions, r.CallsPerS, r.P50us, r.P90us, r.P99us, r.MaxUs, r.Calls, r.Errors, r.Wrong)
	for name, s := range r.CPU {
		fmt.Fprintf(out, "  cpu %-8s %.0f ms  %.1f µs/op\n", name, s.Ms, s.UsPerOp)
	}
	if r.FirstError != "" {
		fmt.Fprintf(out, "  first error: %s\n", r.FirstError)
	}
	fmt.Fprintf(out, "  loadavg %s\n", r.LoadAvg)
}
