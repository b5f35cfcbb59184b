package bench

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	t.Parallel()
	var lat []time.Duration
	for i := 100; i >= 1; i-- { // unsorted on purpose
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(lat)
	want := Summary{Count: 100, P50: 50 * time.Millisecond, P90: 90 * time.Millisecond,
		P99: 99 * time.Millisecond, Max: 100 * time.Millisecond, Mean: 50500 * time.Microsecond}
	if s != want {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	if (Summarize(nil) != Summary{}) {
		t.Fatal("empty input must give the zero summary")
	}
	if got := Summarize([]time.Duration{7}); got.P50 != 7 || got.P99 != 7 || got.Max != 7 {
		t.Fatalf("single value: %+v", got)
	}
}

func TestMedian(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{5}, 5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("Median modified its input: %v", tc.in)
			}
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) must be NaN")
	}
}

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// A command name with spaces and a parenthesis; utime=250, stime=50 ticks.
	line := "1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 12345 1000000 500 18446744073709551615"
	got, err := parseStatCPU(line)
	if err != nil || got != 3*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 3s", got, err)
	}
	if _, err := parseStatCPU("1234 (x) S 1 2"); err == nil {
		t.Fatal("short line accepted")
	}
	if _, err := parseStatCPU("no paren"); err == nil {
		t.Fatal("line without command name accepted")
	}
}

func TestProcCPUSelf(t *testing.T) {
	t.Parallel()
	before, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) {
		x++
	}
	after, err := ProcCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after < before {
		t.Fatalf("CPU time went backwards: %v → %v (%d)", before, after, x)
	}
}

func TestUnverifiedSubject(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	hdr := enc(`{"alg":"RS256"}`)
	for _, tc := range []struct {
		name, tok, want string
		ok              bool
	}{
		{"ok", hdr + "." + enc(`{"sub":"user-alice","aud":["x"]}`) + ".sig", "user-alice", true},
		{"two parts", hdr + "." + enc(`{"sub":"a"}`), "", false},
		{"no sub", hdr + "." + enc(`{"aud":"x"}`) + ".sig", "", false},
		{"not json", hdr + "." + enc(`nope`) + ".sig", "", false},
		{"not base64", hdr + ".!!!.sig", "", false},
	} {
		got, err := UnverifiedSubject(tc.tok)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%s: got %q, %v", tc.name, got, err)
		}
	}
}

func TestBearerToken(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Bearer abc":  "abc",
		"bearer  abc": "abc",
		"Basic abc":   "",
		"Bearer ":     "",
		"":            "",
	} {
		if got := BearerToken(in); got != want {
			t.Errorf("BearerToken(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseVmRSS(t *testing.T) {
	t.Parallel()
	got, err := parseVmRSS("Name:\tx\nVmPeak:\t  999 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n")
	if err != nil || got != 12345 {
		t.Fatalf("parseVmRSS = %d, %v; want 12345", got, err)
	}
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n"} {
		if _, err := parseVmRSS(bad); err == nil {
			t.Errorf("parseVmRSS(%q) accepted", bad)
		}
	}
}

func TestProcRSSSelf(t *testing.T) {
	t.Parallel()
	kib, err := ProcRSS(os.Getpid())
	if err != nil || kib <= 0 {
		t.Fatalf("ProcRSS(self) = %d, %v", kib, err)
	}
}

func TestMemStatsHandler(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(MemStatsHandler())
	defer srv.Close()
	for _, q := range []string{"", "?release=1"} {
		resp, err := http.Get(srv.URL + q)
		if err != nil {
			t.Fatal(err)
		}
		var m MemStats
		err = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if m.HeapInuse == 0 || m.Sys < m.HeapInuse || m.Goroutines < 2 {
			t.Fatalf("implausible memstats (%q): %+v", q, m)
		}
	}
	post, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	post.Body.Close()
	if post.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", post.StatusCode)
	}
}
