package main

// What the measured processes spend: CPU time from /proc/PID/stat,
// resident sets and Go memory statistics, and the idle scenario that
// reads them.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/mandate-gw/mandate/internal/app/bench"
)

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
