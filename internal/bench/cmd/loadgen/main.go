// Command loadgen drives an MCP server over streamable HTTP with the go-sdk
// client (mcp.NewClient + mcp.StreamableClientTransport) and reports
// throughput, latency percentiles, errors and, optionally, the CPU time other
// processes spent per call (read from /proc/PID/stat).
//
// Scenario "calls" (default): -sessions sessions are opened first and each
// calls -tool once (not measured); each then calls -tool in a loop in its own
// goroutine. Calls that start after the -warmup and finish before
// warmup+duration are measured.
//
// Scenario "list": like calls, but each session sends tools/list in a loop.
//
// Scenario "setup": -sessions workers each open a session (initialize), list
// the tools, and close it, in a loop; the latency of initialize + first
// tools/list is measured.
//
// Scenario "cold": like setup, but the op is initialize + one call of -tool
// (a new session's first call). With -fresh-tokens (setup and cold) every op
// uses the next never-used token of -token-file, from -token-offset on: a new
// user per op. "tokens_used" in the result says how many were taken (run.sh
// moves the offset by it); when they run out the worker stops and the op
// counts as an error, unless -token-wrap starts over (for targets that do
// not look at tokens).
//
// Scenario "idle": -sessions sessions are opened (initialize +
// notifications/initialized, plus the SDK's standalone SSE stream unless
// -no-sse) and held idle for -hold; the resident set (VmRSS) of every -pid
// process and the Go memory of every -memstats URL (a bench debug listener)
// are read before the sessions are opened and after -hold, and the growth
// per session is reported.
//
//	loadgen -url http://127.0.0.1:9001/mcp -sessions 8 -duration 6s \
//	        -tool echo -args '{"text":"hello"}' -token-file tokens.txt -pid proxy=1234 -json
//	loadgen -url http://127.0.0.1:9003/mcp -scenario idle -sessions 10000 -hold 5s \
//	        -token-file tokens.txt -pid proxy=1234 -memstats proxy=http://127.0.0.1:9030/memstats -json
//
// A -pid value may name several processes (name=PID+PID+...); their CPU
// times and resident sets are added.
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
	// TokensUsed is how many -fresh-tokens were taken (warm-up included).
	TokensUsed int `json:"tokens_used,omitempty"`
	// Tools is the number of tools in the last tools/list answer (list, setup).
	Tools int `json:"tools,omitempty"`
	// Idle is the memory growth per process of the idle scenario.
	Idle map[string]IdleMem `json:"idle,omitempty"`
}

// IdleMem is one process's memory before and after the idle sessions were
// opened: RSS as found, then (with a -memstats URL) the Go heap, stacks and
// goroutines after a forced GC that released free memory to the OS, and the
// RSS after that release. Those fields are zero without a -memstats URL.
type IdleMem struct {
	ReleasedBeforeKiB     int64   `json:"rss_released_before_kib,omitempty"`
	ReleasedAfterKiB      int64   `json:"rss_released_after_kib,omitempty"`
	ReleasedPerSessionKiB float64 `json:"rss_released_per_session_kib,omitempty"`
	RSSBeforeKiB          int64   `json:"rss_before_kib"`
	RSSAfterKiB           int64   `json:"rss_after_kib"`
	RSSPerSessionKiB      float64 `json:"rss_per_session_kib"`
	HeapBefore            uint64  `json:"heap_inuse_before,omitempty"`
	HeapAfter             uint64  `json:"heap_inuse_after,omitempty"`
	HeapPerSessionKiB     float64 `json:"heap_per_session_kib,omitempty"`
	StackPerSessionKiB    float64 `json:"stack_per_session_kib,omitempty"`
	GoroutinesBefore      int     `json:"goroutines_before,omitempty"`
	GoroutinesAfter       int     `json:"goroutines_after,omitempty"`
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
	fresh      bool // a new token per op (setup, cold)
	wrap       bool // fresh tokens start over when used up
	offset     int
	next       atomic.Int64 // fresh tokens taken
	hold       time.Duration
	memstats   map[string]string
	listObject bool
}

func main() {
	var hdrs, pids, mems multiFlag
	c := config{}
	flag.StringVar(&c.url, "url", "http://127.0.0.1:9001/mcp", "MCP endpoint")
	flag.IntVar(&c.sessions, "sessions", 8, "concurrent sessions (setup scenario: concurrent workers)")
	flag.DurationVar(&c.duration, "duration", 6*time.Second, "measurement window")
	flag.DurationVar(&c.warmup, "warmup", 2*time.Second, "load before the measurement window (not measured)")
	flag.StringVar(&c.tool, "tool", "echo", "tool to call")
	argsJSON := flag.String("args", "", `tool arguments, a JSON object (default {"text":"hello"} for echo, {} otherwise)`)
	flag.Var(&hdrs, "header", `extra request header "K: V" (repeatable)`)
	tokenFile := flag.String("token-file", "", "bearer tokens, one per line, assigned round-robin to sessions")
	flag.StringVar(&c.scenario, "scenario", "calls", "calls | list | setup | cold | idle")
	flag.DurationVar(&c.timeout, "call-timeout", 30*time.Second, "timeout of one call or one setup")
	flag.BoolVar(&c.noSSE, "no-sse", false, "do not open the standalone SSE stream (GET) per session")
	flag.IntVar(&c.connectPar, "connect-parallel", 32, "sessions opened concurrently before the calls scenario")
	flag.Var(&pids, "pid", "name=PID[+PID...] of processes whose CPU time per call (idle: resident set) to report (repeatable)")
	flag.Var(&mems, "memstats", "name=URL of a bench /memstats endpoint (idle scenario; repeatable)")
	flag.BoolVar(&c.fresh, "fresh-tokens", false, "setup, cold: every op takes the next unused token of -token-file")
	flag.BoolVar(&c.wrap, "token-wrap", false, "with -fresh-tokens: start over when the tokens are used up")
	flag.IntVar(&c.offset, "token-offset", 0, "with -fresh-tokens: index of the first token to use")
	flag.BoolVar(&c.listObject, "list-params-object", false, "send tools/list with params {} instead of none")
	flag.DurationVar(&c.hold, "hold", 3*time.Second, "idle: how long the sessions stay idle before memory is read")
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
	if c.memstats, err = parseNamed(mems); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen: -memstats:", err)
		os.Exit(2)
	}
	if c.scenario != "idle" {
		procs["loadgen"] = []int{os.Getpid()}
	}

	res, err := run(context.Background(), &c, procs)
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
	switch c.scenario {
	case "calls", "list", "setup", "cold", "idle":
	default:
		return fmt.Errorf("-scenario %q: want calls, list, setup, cold or idle", c.scenario)
	}
	if c.fresh {
		if c.scenario != "setup" && c.scenario != "cold" {
			return errors.New("-fresh-tokens: only for the setup and cold scenarios")
		}
		if c.offset < 0 || c.offset >= len(c.tokens) {
			return fmt.Errorf("-token-offset %d: the token file has %d tokens", c.offset, len(c.tokens))
		}
	}
	return nil
}

func parsePIDs(pids []string) (map[string][]int, error) {
	out := map[string][]int{}
	for _, p := range pids {
		name, v, ok := strings.Cut(p, "=")
		if !ok || name == "" {
			return nil, fmt.Errorf("-pid %q: want name=PID[+PID...]", p)
		}
		for _, f := range strings.Split(v, "+") {
			n, err := strconv.Atoi(f)
			if err != nil || n <= 0 {
				return nil, fmt.Errorf("-pid %q: want name=PID[+PID...]", p)
			}
			if _, err := bench.ProcCPU(n); err != nil {
				return nil, fmt.Errorf("-pid %s: %w", p, err)
			}
			out[name] = append(out[name], n)
		}
	}
	return out, nil
}

func parseNamed(vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range vals {
		name, val, ok := strings.Cut(v, "=")
		if !ok || name == "" || val == "" {
			return nil, fmt.Errorf("%q: want name=value", v)
		}
		out[name] = val
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

func readCPU(procs map[string][]int) map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pids := range procs {
		for _, pid := range pids {
			d, err := bench.ProcCPU(pid)
			if err != nil {
				fmt.Fprintf(os.Stderr, "loadgen: reading CPU of %s (pid %d): %v\n", name, pid, err)
				continue
			}
			out[name] += d
		}
	}
	return out
}

// memSample is one process's memory at one moment.
type memSample struct {
	rss      int64 // as found
	released int64 // after the GC and release (with memstats)
	ms       *bench.MemStats
}

func (c *config) readMem(ctx context.Context, procs map[string][]int) (map[string]memSample, error) {
	out := map[string]memSample{}
	rss := func(name string) (int64, error) {
		var sum int64
		for _, pid := range procs[name] {
			kib, err := bench.ProcRSS(pid)
			if err != nil {
				return 0, fmt.Errorf("RSS of %s (pid %d): %w", name, pid, err)
			}
			sum += kib
		}
		return sum, nil
	}
	for name := range procs {
		kib, err := rss(name)
		if err != nil {
			return nil, err
		}
		out[name] = memSample{rss: kib}
	}
	for name, u := range c.memstats {
		ms, err := fetchMemStats(ctx, u+"?release=1")
		if err != nil {
			return nil, fmt.Errorf("memstats of %s: %w", name, err)
		}
		s := out[name]
		s.ms = ms
		if s.released, err = rss(name); err != nil {
			return nil, err
		}
		out[name] = s
	}
	return out, nil
}

func fetchMemStats(ctx context.Context, u string) (*bench.MemStats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	var ms bench.MemStats
	if err := json.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	return &ms, nil
}

// runIdle opens c.sessions idle sessions and reports the memory they cost.
func (c *config) runIdle(ctx context.Context, tr http.RoundTripper, procs map[string][]int) (*Result, error) {
	before, err := c.readMem(ctx, procs)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	lat := make([]time.Duration, c.sessions)
	sessions, failed, err := c.openSessions(ctx, tr, lat, false)
	defer closeSessions(sessions)
	opened := time.Since(t0)
	if failed == c.sessions {
		return nil, err
	}
	lat = slices.DeleteFunc(lat, func(d time.Duration) bool { return d == 0 })
	time.Sleep(c.hold)
	after, err := c.readMem(ctx, procs)
	if err != nil {
		return nil, err
	}
	// Sessions is what was asked for, Calls what opened; the growth is per
	// opened session.
	res := &Result{Scenario: "idle", URL: c.url, Sessions: c.sessions, Seconds: opened.Seconds(), Idle: map[string]IdleMem{}, Errors: failed}
	if err != nil {
		res.FirstError = err.Error()
	}
	c.summarize(res, lat)
	n := float64(res.Calls)
	for name, b := range before {
		a := after[name]
		m := IdleMem{RSSBeforeKiB: b.rss, RSSAfterKiB: a.rss, RSSPerSessionKiB: float64(a.rss-b.rss) / n}
		if b.ms != nil && a.ms != nil {
			m.ReleasedBeforeKiB, m.ReleasedAfterKiB = b.released, a.released
			m.ReleasedPerSessionKiB = float64(a.released-b.released) / n
			m.HeapBefore, m.HeapAfter = b.ms.HeapInuse, a.ms.HeapInuse
			m.HeapPerSessionKiB = (float64(a.ms.HeapInuse) - float64(b.ms.HeapInuse)) / 1024 / n
			m.StackPerSessionKiB = (float64(a.ms.StackInuse) - float64(b.ms.StackInuse)) / 1024 / n
			m.GoroutinesBefore, m.GoroutinesAfter = b.ms.Goroutines, a.ms.Goroutines
		}
		res.Idle[name] = m
	}
	return res, nil
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
		if c.scenario == "list" {
			lt, err := s.cs.ListTools(cctx, c.listParams())
			cancel()
			t1 := time.Now()
			measured := !t0.Before(start) && !t1.After(end)
			switch {
			case err != nil:
				w.fail(err, false, measured)
				if errors.Is(err, mcp.ErrConnectionClosed) {
					return
				}
			case len(lt.Tools) == 0:
				w.fail(errors.New("tools/list returned no tools"), true, measured)
			case measured:
				w.tools = len(lt.Tools)
				w.lat = append(w.lat, t1.Sub(t0))
			}
			continue
		}
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
	params := &mcp.CallToolParams{Name: c.tool, Arguments: c.args}
	for n := 0; ; n++ {
		tok := c.tokenFor(i + n*c.sessions)
		if c.fresh {
			var ok bool
			if tok, ok = c.freshToken(); !ok {
				w.fail(errNoTokens, false, true)
				return
			}
		}
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, c.timeout)
		s, err := c.connect(cctx, tr, tok)
		wrong, tools := false, 0
		if err == nil && c.scenario == "cold" {
			var r *mcp.CallToolResult
			if r, err = s.cs.CallTool(cctx, params); err == nil {
				wrong, err = c.check(s, r)
			}
		} else if err == nil {
			var lt *mcp.ListToolsResult
			lt, err = s.cs.ListTools(cctx, c.listParams())
			if err == nil && len(lt.Tools) == 0 {
				err = errors.New("tools/list returned no tools")
			} else if err == nil {
				tools = len(lt.Tools)
			}
		}
		t1 := time.Now()
		cancel()
		if s != nil {
			_ = s.cs.Close()
		}
		measured := !t0.Before(start) && !t1.After(end)
		if err != nil {
			w.fail(err, wrong, measured)
			continue
		}
		if measured {
			w.tools = max(w.tools, tools)
			w.lat = append(w.lat, t1.Sub(t0))
		}
	}
}

func printText(out io.Writer, r *Result) {
	what := r.Tool
	switch r.Scenario {
	case "setup":
		what = "initialize+tools/list"
	case "cold":
		what = "initialize+" + r.Tool
	case "list":
		what = "tools/list"
	case "idle":
		what = "idle sessions (initialize)"
	}
	fmt.Fprintf(out, "%s %s %s sessions=%d: %.0f ops/s  p50 %.0fµs  p90 %.0fµs  p99 %.0fµs  max %.0fµs  ops %d  errors %d  wrong %d\n",
		r.Label, r.URL, what, r.Sessions, r.CallsPerS, r.P50us, r.P90us, r.P99us, r.MaxUs, r.Calls, r.Errors, r.Wrong)
	for name, s := range r.CPU {
		fmt.Fprintf(out, "  cpu %-8s %.0f ms  %.1f µs/op\n", name, s.Ms, s.UsPerOp)
	}
	for name, m := range r.Idle {
		fmt.Fprintf(out, "  idle %-8s RSS %d → %d KiB (%.1f KiB/session; after GC+release %.1f)  heap %.1f KiB/session  stack %.1f KiB/session  goroutines %d → %d\n",
			name, m.RSSBeforeKiB, m.RSSAfterKiB, m.RSSPerSessionKiB, m.ReleasedPerSessionKiB, m.HeapPerSessionKiB, m.StackPerSessionKiB, m.GoroutinesBefore, m.GoroutinesAfter)
	}
	if r.TokensUsed > 0 {
		fmt.Fprintf(out, "  fresh tokens used: %d\n", r.TokensUsed)
	}
	if r.FirstError != "" {
		fmt.Fprintf(out, "  first error: %s\n", r.FirstError)
	}
	fmt.Fprintf(out, "  loadavg %s\n", r.LoadAvg)
}
