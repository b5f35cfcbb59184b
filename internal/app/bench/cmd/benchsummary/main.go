// Command benchsummary reads the JSON lines loadgen -json printed during a
// run.sh run (label "scenario/target/round") and prints, per scenario, the
// median over rounds of each target's calls/s, p50, p99 and CPU per call, the
// ratios mandate/rproxy and rproxy/direct of those medians together with the
// range of the per-round (paired) ratios, and whether the issue-8 targets
// (mandate ≥0.9× rproxy throughput, p50 ≤1.2×, p99 ≤1.3×) are met. With a
// mandate-bare target it adds the ratios Mandate all-on / all-off; with idle
// results (scenario "idle") the memory per idle session and the ≤64 KiB
// target. With a mandate-oauth target (the same Mandate driven with tokens
// its authorization server issued, run.sh -O) it adds the ratios
// mandate-oauth / mandate, / rproxy and / mandate-base, and prints the
// token-endpoint latencies of benchsignin's line (label
// "token-endpoint/<target>").
//
//	benchsummary results.jsonl
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"github.com/mandate-gw/mandate/internal/app/bench"
)

type result struct {
	Label     string  `json:"label"`
	Scenario  string  `json:"scenario"`
	Calls     int     `json:"calls"`
	Errors    int     `json:"errors"`
	Wrong     int     `json:"wrong"`
	CallsPerS float64 `json:"calls_per_s"`
	P50us     float64 `json:"p50_us"`
	P99us     float64 `json:"p99_us"`
	CPU       map[string]struct {
		UsPerOp float64 `json:"us_per_op"`
	} `json:"cpu"`
	LoadAvg    string             `json:"loadavg"`
	Sessions   int                `json:"sessions"`
	Idle       map[string]idleMem `json:"idle"`
	FirstError string             `json:"first_error"`
}

type idleMem struct {
	ReleasedPerSessionKiB float64 `json:"rss_released_per_session_kib"`
	RSSBeforeKiB          int64   `json:"rss_before_kib"`
	RSSAfterKiB           int64   `json:"rss_after_kib"`
	RSSPerSessionKiB      float64 `json:"rss_per_session_kib"`
	HeapPerSessionKiB     float64 `json:"heap_per_session_kib"`
	StackPerSessionKiB    float64 `json:"stack_per_session_kib"`
	GoroutinesBefore      int     `json:"goroutines_before"`
	GoroutinesAfter       int     `json:"goroutines_after"`
}

// idleTargetKiB is issue 8's bound on the memory of one idle Mandate session.
const idleTargetKiB = 64

type cell struct{ runs []result }

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: benchsummary results.jsonl")
		os.Exit(2)
	}
	f, err := os.Open(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	if err := summarize(f, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "benchsummary:", err)
		os.Exit(1)
	}
}

var targets = []string{"direct", "rproxy", "mandate", "mandate-oauth", "mandate-bare", "mandate-base"}

// tokenEndpoint is benchsignin's JSON line.
type tokenEndpoint struct {
	Label    string  `json:"label"`
	Users    int     `json:"users"`
	Parallel int     `json:"parallel"`
	SignIn   msStats `json:"signin"`
	Code     msStats `json:"token_code"`
	Refresh  msStats `json:"token_refresh"`
}

type msStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

// scenarioNotes describe the scenario families run.sh uses, by name prefix.
var scenarioNotes = []struct{ prefix, note string }{
	{"echo-", "echo-N: N sessions, each calling the echo tool in a closed loop"},
	{"sleep10ms-", "sleep10ms-N: N sessions calling a tool that sleeps 10 ms"},
	{"setup-", "setup-N: N workers, op = new session (initialize) + first tools/list + close; Mandate answers the listing from its per-user catalog cache"},
	{"cold-", "cold-N: N workers, op = a NEW user's first call: initialize + tools/call echo + close with a token of a user Mandate has never seen (JWT check, token exchange, upstream session and listing inside Mandate); direct/rproxy do the same op without any of that"},
	{"list5-", "list5-N: N initialized sessions sending tools/list in a loop; mandate = a Mandate with 5 echo upstreams (16 tools: 5×3 + its own whoami; per-user catalog cache hit), direct/rproxy = the same op on ONE echoserver (3 tools)"},
	{"list5new-", "list5new-N: N workers, op = new session + first tools/list + close; mandate with 5 upstreams (user's catalog cached), direct/rproxy one echoserver"},
	{"list5cold-", "list5cold-N: like list5new-N with a new user per op: Mandate exchanges a token for and lists each of the 5 upstreams; direct/rproxy one echoserver"},
	{"idle-", "idle-N: N sessions opened (initialize + notifications/initialized + the SDK's standalone SSE stream) and held idle on a fresh server process; memory read before and after"},
}

func summarize(in io.Reader, out io.Writer) error {
	cells := map[string]map[string]*cell{} // scenario → target → runs
	var scenarios []string
	var loads []string
	var idles []result
	var tokenLines []tokenEndpoint
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("bad line %q: %w", line, err)
		}
		if strings.HasPrefix(r.Label, "token-endpoint/") {
			var te tokenEndpoint
			if err := json.Unmarshal([]byte(line), &te); err != nil {
				return fmt.Errorf("bad token-endpoint line %q: %w", line, err)
			}
			tokenLines = append(tokenLines, te)
			continue
		}
		parts := strings.Split(r.Label, "/")
		if len(parts) != 3 {
			return fmt.Errorf("label %q: want scenario/target/round", r.Label)
		}
		s, t := parts[0], parts[1]
		if r.Scenario == "idle" {
			idles = append(idles, r)
			continue
		}
		if cells[s] == nil {
			cells[s] = map[string]*cell{}
			scenarios = append(scenarios, s)
		}
		if cells[s][t] == nil {
			cells[s][t] = &cell{}
		}
		cells[s][t].runs = append(cells[s][t].runs, r)
		loads = append(loads, strings.Fields(r.LoadAvg + " ?")[0])
	}
	if err := sc.Err(); err != nil {
		return err
	}

	fmt.Fprintln(out, "Medians over rounds (ops/s = calls/s, or setups/s for setup; CPU = µs of CPU per op, from /proc/PID/stat):")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| scenario | target | rounds | ops/s | p50 ms | p99 ms | proxy CPU µs/op | upstream CPU µs/op | errors | wrong |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, s := range scenarios {
		for _, t := range targets {
			c := cells[s][t]
			if c == nil {
				continue
			}
			proxy := "–"
			if t != "direct" {
				proxy = fmt.Sprintf("%.0f", c.med(func(r result) float64 { return r.CPU["proxy"].UsPerOp }))
			}
			fmt.Fprintf(out, "| %s | %s | %d | %.0f | %.2f | %.2f | %s | %.0f | %d | %d |\n", s, t, len(c.runs),
				c.med(func(r result) float64 { return r.CallsPerS }),
				c.med(func(r result) float64 { return r.P50us })/1000,
				c.med(func(r result) float64 { return r.P99us })/1000,
				proxy,
				c.med(func(r result) float64 { return r.CPU["upstream"].UsPerOp }),
				c.sum(func(r result) int { return r.Errors }), c.sum(func(r result) int { return r.Wrong }))
		}
	}

	var notes []string
	for _, n := range scenarioNotes {
		for _, s := range append(slices.Clone(scenarios), idleNames(idles)...) {
			if matchesFamily(s, n.prefix) && !slices.Contains(notes, n.note) {
				notes = append(notes, n.note)
			}
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(out)
		fmt.Fprintln(out, "Scenarios:")
		for _, n := range notes {
			fmt.Fprintln(out, "- "+n)
		}
	}

	fmt.Fprintln(out)
	fmt.Fprintln(out, "Ratios of the medians [range of the per-round paired ratios]:")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| scenario | mandate/rproxy ops/s | mandate/rproxy p50 | mandate/rproxy p99 | mandate/rproxy CPU/op | rproxy/direct ops/s | rproxy/direct p50 | rproxy/direct p99 |")
	fmt.Fprintln(out, "|---|---|---|---|---|---|---|---|")
	type verdict struct {
		s              string
		tp, p50, p99   float64
		ok1, ok2, ok3  bool
		haveAllTargets bool
	}
	var verdicts []verdict
	for _, s := range scenarios {
		d, rp, m := cells[s]["direct"], cells[s]["rproxy"], cells[s]["mandate"]
		if rp == nil || m == nil {
			continue
		}
		ops := func(r result) float64 { return r.CallsPerS }
		p50 := func(r result) float64 { return r.P50us }
		p99 := func(r result) float64 { return r.P99us }
		cpu := func(r result) float64 { return r.CPU["proxy"].UsPerOp }
		col := func(a, b *cell, f func(result) float64) string {
			if a == nil || b == nil {
				return "–"
			}
			return fmt.Sprintf("%.2f× [%s]", a.med(f)/b.med(f), pairedRange(a, b, f))
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s,
			col(m, rp, ops), col(m, rp, p50), col(m, rp, p99), col(m, rp, cpu),
			col(rp, d, ops), col(rp, d, p50), col(rp, d, p99))
		v := verdict{s: s, tp: m.med(ops) / rp.med(ops), p50: m.med(p50) / rp.med(p50), p99: m.med(p99) / rp.med(p99)}
		v.ok1, v.ok2, v.ok3 = v.tp >= 0.9, v.p50 <= 1.2, v.p99 <= 1.3
		verdicts = append(verdicts, v)
	}

	fmt.Fprintln(out)
	fmt.Fprintln(out, "Issue-8 targets (mandate vs rproxy: ops/s ≥0.9×, p50 ≤1.2×, p99 ≤1.3×; binding at 8 and 64 sessions):")
	yn := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, v := range verdicts {
		fmt.Fprintf(out, "  %-14s throughput %.2f× %-7s  p50 %.2f× %-7s  p99 %.2f× %s\n", v.s, v.tp, yn(v.ok1), v.p50, yn(v.ok2), v.p99, yn(v.ok3))
	}
	pairTable(out, scenarios, cells, "mandate", "mandate-bare", "Mandate all-on / all-off (mandate / mandate-bare)", "Throughput of Mandate all-on vs all-off")
	pairTable(out, scenarios, cells, "mandate", "mandate-base", "This revision / the base revision, both all-on (mandate / mandate-base)", "Throughput of this revision vs the base revision")
	pairTable(out, scenarios, cells, "mandate-oauth", "mandate", "Mandate-issued token / IdP token, the same Mandate (mandate-oauth / mandate)", "Throughput with a Mandate-issued token vs an IdP token")
	pairTable(out, scenarios, cells, "mandate-oauth", "rproxy", "Mandate-issued token vs the reverse proxy (mandate-oauth / rproxy)", "Throughput with a Mandate-issued token vs the reverse proxy")
	pairTable(out, scenarios, cells, "mandate-oauth", "mandate-base", "Mandate-issued token on this revision / IdP token on the base revision (mandate-oauth / mandate-base)", "Throughput with a Mandate-issued token vs the base revision")
	tokenTable(out, tokenLines)
	idleTable(out, idles)

	slices.Sort(loads)
	if len(loads) > 0 {
		fmt.Fprintf(out, "\n1-minute load average at the end of the runs: min %s, median %s, max %s\n", loads[0], loads[len(loads)/2], loads[len(loads)-1])
	}
	return nil
}

func (c *cell) med(f func(result) float64) float64 {
	xs := make([]float64, len(c.runs))
	for i, r := range c.runs {
		xs[i] = f(r)
	}
	return bench.Median(xs)
}

func (c *cell) sum(f func(result) int) int {
	n := 0
	for _, r := range c.runs {
		n += f(r)
	}
	return n
}

// pairedRange is the min–max of a[i]/b[i] over the rounds both have.
func pairedRange(a, b *cell, f func(result) float64) string {
	lo, hi := math.Inf(1), math.Inf(-1)
	for i := range min(len(a.runs), len(b.runs)) {
		x := f(a.runs[i]) / f(b.runs[i])
		lo, hi = math.Min(lo, x), math.Max(hi, x)
	}
	if math.IsInf(lo, 0) {
		return "–"
	}
	return fmt.Sprintf("%.2f–%.2f", lo, hi)
}

// matchesFamily reports whether scenario s belongs to the family of prefix:
// the rest of the name is the count (so "list5-8" is not an "echo-" and
// "list5new-4" is not a "list5-").
func matchesFamily(s, prefix string) bool {
	rest, ok := strings.CutPrefix(s, prefix)
	if !ok {
		return false
	}
	for _, r := range rest {
		if r < '0' || r > '9' {
			return false
		}
	}
	return rest != ""
}

func idleNames(idles []result) []string {
	var out []string
	for _, r := range idles {
		out = append(out, strings.Split(r.Label, "/")[0])
	}
	return out
}

// pairTable prints target a against target b (mandate all-on against
// mandate-bare, or this revision against mandate-base built from another
// revision) for the scenarios that have both.
func pairTable(out io.Writer, scenarios []string, cells map[string]map[string]*cell, a, b, title, summary string) {
	ops := func(r result) float64 { return r.CallsPerS }
	p50 := func(r result) float64 { return r.P50us }
	p99 := func(r result) float64 { return r.P99us }
	cpu := func(r result) float64 { return r.CPU["proxy"].UsPerOp }
	header := false
	var binding []string
	for _, s := range scenarios {
		on, off := cells[s][a], cells[s][b]
		if on == nil || off == nil {
			continue
		}
		if !header {
			fmt.Fprintln(out)
			fmt.Fprintln(out, title+" [range of the per-round paired ratios]:")
			fmt.Fprintln(out)
			fmt.Fprintln(out, "| scenario | ops/s | p50 | p99 | CPU/op |")
			fmt.Fprintln(out, "|---|---|---|---|---|")
			header = true
		}
		col := func(f func(result) float64) string {
			return fmt.Sprintf("%.2f× [%s]", on.med(f)/off.med(f), pairedRange(on, off, f))
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s |\n", s, col(ops), col(p50), col(p99), col(cpu))
		if s == "echo-8" || s == "echo-64" {
			binding = append(binding, fmt.Sprintf("%s %.2f×", s, on.med(ops)/off.med(ops)))
		}
	}
	if len(binding) > 0 {
		fmt.Fprintf(out, "\n%s: %s\n", summary, strings.Join(binding, ", "))
	}
}

// tokenTable prints the token endpoint latencies benchsignin measured.
func tokenTable(out io.Writer, lines []tokenEndpoint) {
	if len(lines) == 0 {
		return
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Mandate's token endpoint (benchsignin: request sent → whole answer read; sign-in = authorization request → IdP → consent → code redeemed):")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| target | request | parallel | count | p50 ms | p90 ms | p99 ms | max ms | mean ms |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, l := range lines {
		t, _ := strings.CutPrefix(l.Label, "token-endpoint/")
		for _, row := range []struct {
			name string
			s    msStats
		}{{"authorization_code", l.Code}, {"refresh_token", l.Refresh}, {"whole sign-in", l.SignIn}} {
			fmt.Fprintf(out, "| %s | %s | %d | %d | %.2f | %.2f | %.2f | %.2f | %.2f |\n", t, row.name, l.Parallel, row.s.Count,
				row.s.P50, row.s.P90, row.s.P99, row.s.Max, row.s.Mean)
		}
	}
}

// idleTable prints the memory per idle session of the idle runs.
func idleTable(out io.Writer, idles []result) {
	if len(idles) == 0 {
		return
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "Idle sessions: growth per opened session (RSS = VmRSS as found; released = VmRSS after a forced GC that returned free memory to the OS; heap = Go HeapInuse and stack = goroutine stacks after that GC):")
	fmt.Fprintln(out)
	fmt.Fprintln(out, "| scenario | target | process | opened | errors | RSS before MiB | RSS after MiB | RSS KiB/session | released RSS KiB/session | heap KiB/session | stack KiB/session | goroutines |")
	fmt.Fprintln(out, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	var verdicts []string
	for _, r := range idles {
		parts := strings.Split(r.Label, "/")
		for _, proc := range []string{"server", "upstream"} {
			m, ok := r.Idle[proc]
			if !ok {
				continue
			}
			fmt.Fprintf(out, "| %s | %s | %s | %d | %d | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %d → %d |\n",
				parts[0], parts[1], proc, r.Calls, r.Errors, float64(m.RSSBeforeKiB)/1024, float64(m.RSSAfterKiB)/1024,
				m.RSSPerSessionKiB, m.ReleasedPerSessionKiB, m.HeapPerSessionKiB, m.StackPerSessionKiB, m.GoroutinesBefore, m.GoroutinesAfter)
			if parts[1] == "mandate" && proc == "server" {
				yn := func(v float64) string {
					if v <= idleTargetKiB {
						return "met"
					}
					return "NOT met"
				}
				verdicts = append(verdicts, fmt.Sprintf("  %-14s RSS %.1f KiB/session %s; released RSS %.1f KiB/session %s; heap+stack %.1f KiB/session %s",
					parts[0], m.RSSPerSessionKiB, yn(m.RSSPerSessionKiB), m.ReleasedPerSessionKiB, yn(m.ReleasedPerSessionKiB),
					m.HeapPerSessionKiB+m.StackPerSessionKiB, yn(m.HeapPerSessionKiB+m.StackPerSessionKiB)))
			}
		}
		if r.FirstError != "" {
			fmt.Fprintf(out, "  (%s: %d sessions failed to open; first error: %s)\n", parts[0]+"/"+parts[1], r.Errors, r.FirstError)
		}
	}
	if len(verdicts) > 0 {
		fmt.Fprintf(out, "\nIssue-8 target: an idle Mandate session costs ≤%d KiB:\n", idleTargetKiB)
		for _, v := range verdicts {
			fmt.Fprintln(out, v)
		}
	}
}
