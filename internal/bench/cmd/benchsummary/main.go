// Command benchsummary reads the JSON lines loadgen -json printed during a
// run.sh run (label "scenario/target/round") and prints, per scenario, the
// median over rounds of each target's calls/s, p50, p99 and CPU per call, the
// ratios mandate/rproxy and rproxy/direct of those medians together with the
// range of the per-round (paired) ratios, and whether the issue-8 targets
// (mandate ≥0.9× rproxy throughput, p50 ≤1.2×, p99 ≤1.3×) are met.
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

	"github.com/mandate-gw/mandate/internal/bench"
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
	LoadAvg string `json:"loadavg"`
}

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

var targets = []string{"direct", "rproxy", "mandate"}

func summarize(in io.Reader, out io.Writer) error {
	cells := map[string]map[string]*cell{} // scenario → target → runs
	var scenarios []string
	var loads []string
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
		parts := strings.Split(r.Label, "/")
		if len(parts) != 3 {
			return fmt.Errorf("label %q: want scenario/target/round", r.Label)
		}
		s, t := parts[0], parts[1]
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
