package main

import (
	"fmt"
	"strings"
	"testing"
)

func line(label string, ops, p50, p99, cpu float64) string {
	return fmt.Sprintf(`{"label":%q,"calls_per_s":%g,"p50_us":%g,"p99_us":%g,"cpu":{"proxy":{"us_per_op":%g},"upstream":{"us_per_op":100}},"loadavg":"1.00 1.00 1.00"}`,
		label, ops, p50, p99, cpu)
}

func TestSummarizeRatiosAndVerdicts(t *testing.T) {
	t.Parallel()
	var in []string
	// Three rounds; medians: direct 1000, rproxy 700, mandate 630 ops/s.
	for r, k := range []float64{1, 0.9, 1.1} {
		in = append(in,
			line(fmt.Sprintf("echo-8/direct/%d", r+1), 1000*k, 1000, 3000, 0),
			line(fmt.Sprintf("echo-8/rproxy/%d", r+1), 700*k, 1500, 4000, 300),
			line(fmt.Sprintf("echo-8/mandate/%d", r+1), 630*k, 1950, 6000, 600),
		)
	}
	var out strings.Builder
	if err := summarize(strings.NewReader(strings.Join(in, "\n")), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| echo-8 | direct | 3 | 1000 | 1.00 | 3.00 | – | 100 | 0 | 0 |",
		"| echo-8 | rproxy | 3 | 700 | 1.50 | 4.00 | 300 | 100 | 0 | 0 |",
		"| echo-8 | mandate | 3 | 630 | 1.95 | 6.00 | 600 | 100 | 0 | 0 |",
		"| echo-8 | 0.90× [0.90–0.90] | 1.30× [1.30–1.30] | 1.50× [1.50–1.50] | 2.00× [2.00–2.00] | 0.70× [0.70–0.70] | 1.50× [1.50–1.50] | 1.33× [1.33–1.33] |",
		"throughput 0.90× met      p50 1.30× NOT met  p99 1.50× NOT met",
		"min 1.00, median 1.00, max 1.00",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}

func TestSummarizeRejectsBadLabel(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	if err := summarize(strings.NewReader(line("echo-8/direct", 1, 1, 1, 1)), &out); err == nil {
		t.Fatal("a label without a round was accepted")
	}
}

func TestSummarizeAllOnOffAndIdle(t *testing.T) {
	t.Parallel()
	in := []string{
		line("echo-8/rproxy/1", 700, 1500, 4000, 300),
		line("echo-8/mandate/1", 630, 1950, 6000, 600),
		line("echo-8/mandate-bare/1", 700, 1500, 5000, 400),
		line("list5-8/mandate/1", 500, 1500, 5000, 400),
		`{"label":"idle-100/mandate/1","scenario":"idle","calls":100,"loadavg":"1 1 1","idle":{"server":{"rss_before_kib":1024,"rss_after_kib":8192,"rss_per_session_kib":71.68,"rss_released_per_session_kib":60,"heap_per_session_kib":30,"stack_per_session_kib":20,"goroutines_before":10,"goroutines_after":310}}}`,
	}
	var out strings.Builder
	if err := summarize(strings.NewReader(strings.Join(in, "\n")), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| echo-8 | mandate-bare | 1 | 700 | 1.50 | 5.00 | 400 | 100 | 0 | 0 |",
		"| echo-8 | 0.90× [0.90–0.90] | 1.30× [1.30–1.30] | 1.20× [1.20–1.20] | 1.50× [1.50–1.50] |",
		"Throughput of Mandate all-on vs all-off: echo-8 0.90×",
		"| idle-100 | mandate | server | 100 | 0 | 1.0 | 8.0 | 71.7 | 60.0 | 30.0 | 20.0 | 10 → 310 |",
		"idle-100       RSS 71.7 KiB/session NOT met; released RSS 60.0 KiB/session met; heap+stack 50.0 KiB/session met",
		"- list5-N: ", "- idle-N: ", "- echo-N: ",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "- list5new-N") || strings.Contains(got, "| idle-100 | mandate | 1 |") {
		t.Errorf("summary has a note or row it should not have:\n%s", got)
	}
}

// run.sh -O: the mandate-oauth target gets its rows and its ratios to
// mandate, rproxy and mandate-base; benchsignin's line becomes the token
// endpoint table.
func TestSummarizeMandateOAuth(t *testing.T) {
	t.Parallel()
	in := []string{
		line("echo-8/rproxy/1", 700, 1500, 4000, 300),
		line("echo-8/mandate/1", 630, 1950, 6000, 600),
		line("echo-8/mandate-oauth/1", 600, 2000, 6600, 630),
		line("echo-8/mandate-base/1", 660, 1900, 6000, 580),
		`{"label":"token-endpoint/mandate","users":65,"parallel":1,"signin":{"count":65,"p50_ms":12.5,"p90_ms":15,"p99_ms":20,"max_ms":21,"mean_ms":13},` +
			`"token_code":{"count":65,"p50_ms":2.25,"p90_ms":3,"p99_ms":4.5,"max_ms":5,"mean_ms":2.5},"token_refresh":{"count":200,"p50_ms":1.75,"p90_ms":2,"p99_ms":3,"max_ms":4,"mean_ms":1.8}}`,
	}
	var out strings.Builder
	if err := summarize(strings.NewReader(strings.Join(in, "\n")), &out); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{
		"| echo-8 | mandate-oauth | 1 | 600 | 2.00 | 6.60 | 630 | 100 | 0 | 0 |",
		"(mandate-oauth / mandate)",
		"| echo-8 | 0.95× [0.95–0.95] | 1.03× [1.03–1.03] | 1.10× [1.10–1.10] | 1.05× [1.05–1.05] |",
		"(mandate-oauth / rproxy)",
		"| echo-8 | 0.86× [0.86–0.86] | 1.33× [1.33–1.33] | 1.65× [1.65–1.65] | 2.10× [2.10–2.10] |",
		"(mandate-oauth / mandate-base)",
		"Throughput with a Mandate-issued token vs an IdP token: echo-8 0.95×",
		"| mandate | authorization_code | 1 | 65 | 2.25 | 3.00 | 4.50 | 5.00 | 2.50 |",
		"| mandate | refresh_token | 1 | 200 | 1.75 | 2.00 | 3.00 | 4.00 | 1.80 |",
		"| mandate | whole sign-in | 1 | 65 | 12.50 | 15.00 | 20.00 | 21.00 | 13.00 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
}
