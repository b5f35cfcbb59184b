package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// TestLoadManyUsersNoCrossTalk: many users, each with their own token and
// session, call an upstream tool that answers with the platform identity it
// was called as. Every answer must name its caller, no call may fail, every
// call must leave exactly one audit record, and goroutines return to
// baseline afterwards. MANDATE_LOAD_USERS and MANDATE_LOAD_DURATION scale it
// (the figure: 500 users for 1m; the default keeps `go test -race`
// quick on two cores).
func TestLoadManyUsersNoCrossTalk(t *testing.T) {
	users, dur := 40, 5*time.Second
	if v := os.Getenv("MANDATE_LOAD_USERS"); v != "" {
		fmt.Sscan(v, &users)
	}
	if v := os.Getenv("MANDATE_LOAD_DURATION"); v != "" {
		dur, _ = time.ParseDuration(v)
	}
	env := startMux(t, func(c *Config) {
		for i := range c.Upstreams {
			c.Upstreams[i].Timeout = 30 * time.Second // cold starts under -race on two busy cores
		}
	})
	tokens := make([]string, users)
	subs := make([]string, users)
	for i := range users {
		name := fmt.Sprintf("load%03d", i)
		if err := env.idp.AddUser(devidp.User{ID: "user-" + name, Username: name, Email: name + "@example.com"}); err != nil {
			t.Fatal(err)
		}
		tokens[i] = idpToken(t, env.idp, name, devidp.TokenOptions{Audience: []string{env.gw.mcpURL}, Lifetime: time.Hour})
		subs[i] = "user-" + name
	}
	runtime.GC()
	baseG := runtime.NumGoroutine()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	baseHeapInuse, baseHeapAlloc := ms.HeapInuse, ms.HeapAlloc

	var calls, failures, crossTalk atomic.Int64
	var firstErr atomic.Pointer[string]
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var wg sync.WaitGroup
	for i := range users {
		wg.Go(func() {
			c := mcp.NewClient(&mcp.Implementation{Name: "load", Version: "1"}, nil)
			cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, tokens[i]), nil)
			if err != nil {
				failures.Add(1)
				msg := err.Error()
				firstErr.CompareAndSwap(nil, &msg)
				return
			}
			defer cs.Close()
			for ctx.Err() == nil {
				res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "crm_who", Arguments: map[string]any{}})
				calls.Add(1)
				if err != nil || res.IsError {
					failures.Add(1)
					msg := fmt.Sprint(err, res)
					firstErr.CompareAndSwap(nil, &msg)
					continue
				}
				var got map[string]string
				b, _ := json.Marshal(res.StructuredContent)
				_ = json.Unmarshal(b, &got)
				if got["subject"] != subs[i] {
					crossTalk.Add(1)
				}
			}
		})
	}
	wg.Wait()
	n := calls.Load()
	t.Logf("%d users, %s: %d calls (%.0f/s), %d failures, %d cross-user answers", users, dur, n, float64(n)/dur.Seconds(), failures.Load(), crossTalk.Load())
	if failures.Load() != 0 {
		t.Errorf("%d failed calls; first: %s", failures.Load(), *firstErr.Load())
	}
	if crossTalk.Load() != 0 {
		t.Fatalf("%d answers named another user", crossTalk.Load())
	}
	// Exactly one audit record per call.
	var recorded int64
	for _, r := range env.audit.Lines() {
		if r["method"] == "tools/call" && r["tool"] == "who" {
			recorded++
		}
	}
	if recorded != n {
		t.Errorf("%d calls but %d audit records", n, recorded)
	}
	// Sessions closed: goroutines back to baseline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		env.gw.g.upTrans.(interface{ CloseIdleConnections() }).CloseIdleConnections()
		closeIdleDefault()
		if g := runtime.NumGoroutine(); g <= baseG+10 || time.Now().After(deadline) {
			if g > baseG+10 {
				t.Errorf("goroutines: %d before the load, %d after", baseG, g)
			}
			t.Logf("goroutines: %d before the load, %d after", baseG, g)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	// Heap back near baseline: what the load allocated is garbage once its
	// sessions are closed (caches of tokens and listings stay: a few KiB
	// per user). The bound is generous; a leak of per-call state over
	// thousands of calls exceeds it.
	const heapSlack = 32 << 20
	runtime.GC()
	runtime.ReadMemStats(&ms)
	t.Logf("heap in use: %.1f MiB before the load, %.1f MiB after; heap allocated: %.1f → %.1f MiB (%d calls)",
		float64(baseHeapInuse)/(1<<20), float64(ms.HeapInuse)/(1<<20), float64(baseHeapAlloc)/(1<<20), float64(ms.HeapAlloc)/(1<<20), n)
	if ms.HeapInuse > baseHeapInuse+heapSlack || ms.HeapAlloc > baseHeapAlloc+heapSlack {
		t.Errorf("heap after the load: in use %d B (baseline %d), allocated %d B (baseline %d); want each ≤ baseline + %d MiB",
			ms.HeapInuse, baseHeapInuse, ms.HeapAlloc, baseHeapAlloc, heapSlack>>20)
	}
}
