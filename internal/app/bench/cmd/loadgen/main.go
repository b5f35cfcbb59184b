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
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mandate-gw/mandate/internal/app/bench"
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
