package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// TestFaultTokenEndpoint: the crm upstream's token endpoint misbehaves for
// alice (slow past the exchange timeout, 5xx, a 200 that is not JSON, a 200
// without access_token, invalid_grant). Through a running gateway:
//   - alice's concurrent crm calls each get a tool error that names the
//     upstream's credential failure and carries no token or secret, within
//     a bounded time;
//   - concurrent calls share one exchange (single-flight: a slow endpoint
//     sees one held request, not one per call);
//   - the endpoint is not hammered: a failing call costs at most two
//     exchanges (the listing check and the call each connect), a 5xx or a
//     garbage answer is not remembered (the broker backs off only after
//     invalid_grant — its documented behaviour — and then asks nothing);
//   - meanwhile bob (same upstream, same endpoint) and alice's other
//     upstream keep working;
//   - once the endpoint recovers, alice's next call succeeds.
func TestFaultTokenEndpoint(t *testing.T) {
	const exchangeTimeout = 2 * time.Second
	cases := []struct {
		name  string
		fault tokenFault
		want  string // in the tool error, after `credentials for upstream "crm"`
	}{
		{"slow", faultSlow, "the token service is unavailable; retry later"},
		{"5xx", fault5xx, "(HTTP 503)"},
		{"200 not JSON", faultNotJSON, "token response is not a JSON object"},
		{"200 without access_token", faultNoAccessToken, "token response has no access_token"},
		{"invalid_grant", faultInvalidGrant, "sign in to Mandate again"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var fte *faultyTokenEndpoint
			env := startMux(t, func(c *Config) {
				fte = newFaultyTokenEndpoint(t, c.Upstreams[0].Credentials.TokenURL, "user-alice")
				c.Upstreams[0].Credentials.TokenURL = fte.srv.URL
				c.Upstreams[0].Credentials.Timeout = exchangeTimeout
			})
			fte.set(tc.fault)
			const n = 8
			sessions := make([]*mcp.ClientSession, n)
			for i := range sessions {
				sessions[i] = connect(t, env.gw.mcpURL, env.aliceTk)
			}
			aliceDocs := connect(t, env.gw.mcpURL, env.aliceTk)
			bob := connect(t, env.gw.mcpURL, env.bobTk)
			if got := fte.count("user-alice"); got != 0 {
				t.Fatalf("initialize alone caused %d exchanges", got)
			}

			type outcome struct {
				res  *mcp.CallToolResult
				err  error
				took time.Duration
				at   time.Time
			}
			out := make([]outcome, n)
			start := time.Now()
			var wg sync.WaitGroup
			for i, cs := range sessions {
				wg.Go(func() {
					res, err := callJSON(t, cs, "crm_who", map[string]any{})
					out[i] = outcome{res, err, time.Since(start), time.Now()}
				})
			}
			// Meanwhile, other users and upstreams work.
			if tc.fault == faultSlow {
				deadline := time.Now().Add(5 * time.Second)
				for fte.inflight.Load() == 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if fte.inflight.Load() == 0 {
					t.Fatal("alice's exchange never reached the slow endpoint")
				}
			}
			if err := callWho(t, bob, "crm", "user-bob"); err != nil {
				t.Errorf("bob on crm during the fault: %v", err)
			}
			if err := callWho(t, aliceDocs, "docs", "user-alice"); err != nil {
				t.Errorf("alice on docs during the fault: %v", err)
			}
			othersDone := time.Now()
			wg.Wait()

			bound := 3 * time.Second
			if tc.fault == faultSlow {
				// One exchange timeout: a call whose listing failed on the
				// credentials answers with that failure (no second exchange).
				bound = exchangeTimeout + 3*time.Second
			}
			var firstDone time.Time
			for i, o := range out {
				if o.err != nil {
					t.Errorf("call %d: protocol error %v, want a tool error", i, o.err)
					continue
				}
				if !o.res.IsError {
					t.Errorf("call %d succeeded during the fault: %+v", i, o.res.StructuredContent)
					continue
				}
				text := toolText(o.res)
				if !strings.Contains(text, `credentials for upstream "crm"`) || !strings.Contains(text, tc.want) {
					t.Errorf("call %d: error %q lacks the upstream's credential failure %q", i, text, tc.want)
				}
				for _, secret := range []string{env.aliceTk, "mandate-secret", "eyJ"} {
					if strings.Contains(text, secret) {
						t.Errorf("call %d: error text carries a token or secret: %q", i, text)
					}
				}
				if o.took > bound {
					t.Errorf("call %d took %s, want ≤ %s", i, o.took, bound)
				}
				if firstDone.IsZero() || o.at.Before(firstDone) {
					firstDone = o.at
				}
			}
			if tc.fault == faultSlow && othersDone.After(firstDone) {
				t.Errorf("bob's and alice's docs calls finished after alice's crm calls: they were not served meanwhile")
			}
			hits := fte.count("user-alice")
			t.Logf("%d concurrent failing calls: %d requests at the token endpoint, slowest %s", n, hits, slowest(out, func(o outcome) time.Duration { return o.took }))
			switch tc.fault {
			case faultSlow:
				// Without single-flight every call would hold its own request.
				if hits != 1 {
					t.Errorf("%d concurrent calls caused %d exchanges at the slow endpoint, want 1 (single-flight)", n, hits)
				}
			case faultInvalidGrant:
				if hits > 1 {
					t.Errorf("invalid_grant: %d exchanges for %d concurrent calls, want 1 (then back-off)", hits, n)
				}
			default:
				if hits > 2*n {
					t.Errorf("%d calls caused %d exchanges, want ≤ %d (no retry storm)", n, hits, 2*n)
				}
			}

			// The next immediate call.
			before := fte.count("user-alice")
			res, err := callJSON(t, sessions[0], "crm_who", map[string]any{})
			if err != nil || !res.IsError {
				t.Fatalf("next call during the fault: %v %+v", err, res)
			}
			delta := fte.count("user-alice") - before
			switch tc.fault {
			case faultInvalidGrant:
				if delta != 0 {
					t.Errorf("invalid_grant is backed off, but the next call asked the endpoint %d times", delta)
				}
			default:
				if delta != 1 {
					t.Errorf("next call: %d exchanges, want 1 (a failure is not remembered, and not retried)", delta)
				}
			}

			// Recovery.
			fte.set(faultNone)
			cs := sessions[1]
			if tc.fault == faultInvalidGrant {
				// The back-off holds for the token that was refused: the user
				// signs in again.
				cs = connect(t, env.gw.mcpURL, idpToken(t, env.idp, "alice", devidp.TokenOptions{Audience: []string{env.gw.mcpURL}}))
			}
			if err := callWho(t, cs, "crm", "user-alice"); err != nil {
				t.Fatalf("after the endpoint recovered: %v", err)
			}
			// Audit: the failures are recorded as credential failures, without secrets.
			var failed int
			for _, r := range env.audit.Lines() {
				if r["upstream"] == "crm" && r["outcome"] == "error" {
					failed++
					if cls, _ := r["error_class"].(string); !strings.HasPrefix(cls, "credentials") {
						t.Errorf("audit error_class %q, want credentials_*", cls)
					}
				}
			}
			if failed < n {
				t.Errorf("%d failed crm calls audited, want ≥ %d", failed, n)
			}
			if a := env.audit.String(); strings.Contains(a, env.aliceTk) || strings.Contains(a, "mandate-secret") {
				t.Error("audit log carries a token or secret")
			}
		})
	}
}

func slowest[T any](xs []T, f func(T) time.Duration) time.Duration {
	var m time.Duration
	for _, x := range xs {
		m = max(m, f(x))
	}
	return m
}

// TestFaultUpstream: one of two upstreams (flaky) is slow, killed in the
// middle of a call, or flapping (its listener closes and comes back, as the
// same process or as a restarted one that forgot every session). Only its
// calls fail, each with an error naming it, within a bounded time; calls to
// crm from the same session succeed meanwhile; once flaky is back, calls to
// it succeed again on the same session.
func TestFaultUpstream(t *testing.T) {
	const flakyTimeout = 1500 * time.Millisecond
	setup := func(t *testing.T) (*muxEnv, *faultTools, *flapServer, func() http.Handler, *mcp.ClientSession) {
		env := startMux(t, nil)
		ft := newFaultTools(t)
		fs, restart := addFlaky(t, env, ft, flakyTimeout)
		alice := connect(t, env.gw.mcpURL, env.aliceTk)
		for _, up := range []string{"crm", "flaky"} {
			if err := callWho(t, alice, up, "user-alice"); err != nil {
				t.Fatalf("%s before the fault: %v", up, err)
			}
		}
		return env, ft, fs, restart, alice
	}
	// flakyFails asserts a failed flaky call: a JSON-RPC error naming the
	// upstream, within bound.
	flakyFails := func(t *testing.T, err error, took, bound time.Duration, what string) {
		t.Helper()
		var je *jsonrpc.Error
		if !errors.As(err, &je) {
			t.Fatalf("%s: %v, want a JSON-RPC error", what, err)
		}
		if !strings.Contains(je.Message, "flaky") {
			t.Errorf("%s: error %q does not name the upstream", what, je.Message)
		}
		if je.Code > -32000 || je.Code < -32099 {
			t.Errorf("%s: code %d, want a server error (-32000..-32099)", what, je.Code)
		}
		if took > bound {
			t.Errorf("%s took %s, want ≤ %s", what, took, bound)
		}
	}

	t.Run("slow", func(t *testing.T) {
		_, _, _, _, alice := setup(t)
		type result struct {
			err  error
			took time.Duration
		}
		done := make(chan result, 1)
		start := time.Now()
		go func() {
			_, err := callJSON(t, alice, "flaky_slow", map[string]any{"MS": 10_000})
			done <- result{err, time.Since(start)}
		}()
		// While flaky's call hangs, crm answers on the same session.
		for i := range 5 {
			if err := callWho(t, alice, "crm", "user-alice"); err != nil {
				t.Fatalf("crm call %d while flaky is slow: %v", i, err)
			}
		}
		select {
		case <-done:
			t.Fatal("the slow call returned before the crm calls were done")
		default:
		}
		r := <-done
		flakyFails(t, r.err, r.took, flakyTimeout+3*time.Second, "slow call")
		if r.err != nil && !strings.Contains(r.err.Error(), "timed out") {
			t.Errorf("slow call: %v, want a timeout", r.err)
		}
		if r.took < flakyTimeout {
			t.Errorf("slow call failed after %s, before the %s timeout", r.took, flakyTimeout)
		}
		if err := callWho(t, alice, "flaky", "user-alice"); err != nil {
			t.Fatalf("flaky after the slow call: %v", err)
		}
	})

	t.Run("killed mid-call", func(t *testing.T) {
		_, ft, fs, restart, alice := setup(t)
		errc := make(chan error, 1)
		var took time.Duration
		go func() {
			_, err := callJSON(t, alice, "flaky_block", map[string]any{"Tag": "kill"})
			errc <- err
		}()
		select {
		case <-ft.started:
		case <-time.After(10 * time.Second):
			t.Fatal("the blocking call never reached flaky")
		}
		killed := time.Now()
		fs.down()
		select {
		case err := <-errc:
			took = time.Since(killed)
			// Killed: the error arrives well before flaky's timeout would fire.
			flakyFails(t, err, took, flakyTimeout, "call cut by the kill")
		case <-time.After(10 * time.Second):
			t.Fatal("the call cut by the kill never returned")
		}
		t.Logf("call failed %s after the upstream was killed", took)
		if err := callWho(t, alice, "crm", "user-alice"); err != nil {
			t.Fatalf("crm with flaky dead: %v", err)
		}
		start := time.Now()
		_, err := callJSON(t, alice, "flaky_who", map[string]any{})
		flakyFails(t, err, time.Since(start), flakyTimeout+time.Second, "call while flaky is down")
		fs.setHandler(restart())
		fs.up()
		if err := callWho(t, alice, "flaky", "user-alice"); err != nil {
			t.Fatalf("flaky after it came back: %v", err)
		}
	})

	for _, restarted := range []bool{false, true} {
		name := "flapping, same process"
		if restarted {
			name = "flapping, restarted process"
		}
		t.Run(name, func(t *testing.T) {
			_, _, fs, restart, alice := setup(t)
			for cycle := range 3 {
				fs.down()
				start := time.Now()
				_, err := callJSON(t, alice, "flaky_who", map[string]any{})
				flakyFails(t, err, time.Since(start), flakyTimeout+time.Second, fmt.Sprintf("cycle %d: call while down", cycle))
				if err := callWho(t, alice, "crm", "user-alice"); err != nil {
					t.Fatalf("cycle %d: crm while flaky is down: %v", cycle, err)
				}
				if restarted {
					fs.setHandler(restart())
				}
				fs.up()
				if err := callWho(t, alice, "flaky", "user-alice"); err != nil {
					t.Fatalf("cycle %d: flaky after it came back: %v", cycle, err)
				}
				if err := callWho(t, alice, "crm", "user-alice"); err != nil {
					t.Fatalf("cycle %d: crm after flaky came back: %v", cycle, err)
				}
			}
		})
	}
}

// TestFaultClientDisconnect: a client that drops its HTTP connection in the
// middle of a tools/call (no notifications/cancelled, just gone) gets the
// upstream tool's context cancelled within a bounded time, on the fast path
// (warm session) and on the go-sdk path (a call with a progress token), long
// before the upstream timeout would end it. The session keeps working.
func TestFaultClientDisconnect(t *testing.T) {
	env := startMux(t, nil)
	ft := newFaultTools(t)
	addFlaky(t, env, ft, 20*time.Second)
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	if err := callWho(t, alice, "flaky", "user-alice"); err != nil {
		t.Fatal(err)
	}
	const bound = 3 * time.Second
	for _, tc := range []struct {
		name string
		meta string
		fast bool
	}{
		{"fast path", "", true},
		{"go-sdk path", `,"_meta":{"progressToken":"p-1"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tag := strings.ReplaceAll(tc.name, " ", "-")
			body := `{"jsonrpc":"2.0","id":"dc-1","method":"tools/call","params":{"name":"flaky_block","arguments":{"Tag":"` + tag + `"}` + tc.meta + `}}`
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.gw.mcpURL, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			for k, v := range sessionHeaders(env.aliceTk, alice) {
				req.Header.Set(k, v)
			}
			fastBefore := dispatch.ForwardedCalls()
			errc := make(chan error, 1)
			go func() {
				resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body) // an SSE response streams until the result
					resp.Body.Close()
				}
				errc <- err
			}()
			select {
			case got := <-ft.started:
				if got != tag {
					t.Fatalf("upstream started %q, want %q", got, tag)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the call never reached the upstream tool")
			}
			if took := dispatch.ForwardedCalls() - fastBefore; (took == 1) != tc.fast {
				t.Fatalf("fast-path calls: %d, want fast=%v", took, tc.fast)
			}
			cancel() // the client goes away
			gone := time.Now()
			if err := <-errc; err == nil {
				t.Fatal("the cancelled request completed")
			}
			select {
			case got := <-ft.cancelled:
				if got != tag {
					t.Fatalf("upstream cancelled %q, want %q", got, tag)
				}
				t.Logf("upstream tool cancelled %s after the client disconnected", time.Since(gone))
			case <-time.After(bound):
				t.Errorf("the upstream tool was not cancelled within %s of the client disconnecting (upstream timeout 20s)", bound)
			}
			if err := callWho(t, alice, "flaky", "user-alice"); err != nil {
				t.Fatalf("the session after the disconnect: %v", err)
			}
		})
	}
}

// TestFaultOversizedBodyOnWarmSession: a body over server.max_body_bytes on
// an established session (where the fast path reads the body first) gets
// 413 and nothing reaches the upstream; the session keeps working. (The
// cold-session case is TestAuthenticationBadInput's "body over the limit".)
func TestFaultOversizedBodyOnWarmSession(t *testing.T) {
	env := startMux(t, func(c *Config) { c.Server.MaxBodyBytes = 64 << 10 })
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	if err := callWho(t, alice, "crm", "user-alice"); err != nil {
		t.Fatal(err)
	}
	env.crm.mu.Lock()
	seen := len(env.crm.tokens)
	env.crm.mu.Unlock()
	for _, meta := range []string{"", `,"_meta":{"progressToken":"p"}`} {
		body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"crm_echo","arguments":{"x":"` + strings.Repeat("a", 1<<20) + `"}` + meta + `}}`
		resp, out := env.gw.post(t, body, sessionHeaders(env.aliceTk, alice))
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("1 MiB body (meta %q): status %d, want 413: %.200s", meta, resp.StatusCode, out)
		}
	}
	env.crm.mu.Lock()
	after := len(env.crm.tokens)
	env.crm.mu.Unlock()
	if after != seen {
		t.Errorf("the oversized calls reached the upstream (%d requests)", after-seen)
	}
	if err := callWho(t, alice, "crm", "user-alice"); err != nil {
		t.Fatalf("the session after the oversized bodies: %v", err)
	}
}

// TestFaultSlowloris: clients that send their headers, or a POST body,
// one byte every 200 ms are cut off by server.read_header_timeout and
// server.read_body_timeout, and the same server keeps serving health checks
// and MCP calls meanwhile.
func TestFaultSlowloris(t *testing.T) {
	// Mostly waiting: it overlaps with the package's other parallel tests.
	t.Parallel()
	const readHeaderTimeout, readBodyTimeout = 3 * time.Second, 2 * time.Second
	env := startMux(t, func(c *Config) {
		c.Server.ReadHeaderTimeout, c.Server.ReadBodyTimeout = readHeaderTimeout, readBodyTimeout
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- env.gw.g.ServeListener(ctx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-served; err != nil {
			t.Errorf("ServeListener: %v", err)
		}
	})
	base := "http://" + ln.Addr().String()

	const conns = 10 // of each kind
	type closed struct {
		kind  string
		after time.Duration
	}
	closedAfter := make(chan closed, 2*conns)
	start := time.Now()
	slow := func(kind, head string) {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		go func() { // the server closing the connection ends this read
			_, _ = io.Copy(io.Discard, c)
			closedAfter <- closed{kind, time.Since(start)}
		}()
		go func() {
			if _, err := io.WriteString(c, head); err != nil {
				return
			}
			for {
				time.Sleep(200 * time.Millisecond)
				if _, err := c.Write([]byte("a")); err != nil {
					return
				}
			}
		}()
	}
	for range conns {
		slow("header", "POST /mcp HTTP/1.1\r\nHost: "+ln.Addr().String()+"\r\nX-Slow: ")
		slow("body", "POST /mcp HTTP/1.1\r\nHost: "+ln.Addr().String()+"\r\nAuthorization: Bearer "+env.aliceTk+
			"\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: 100000\r\n\r\n{")
	}

	// Meanwhile the same server answers.
	hc := &http.Client{Timeout: 5 * time.Second}
	alice := connect(t, base+"/mcp", env.aliceTk)
	var worst time.Duration
	calls := 0
	for time.Since(start) < readHeaderTimeout+time.Second {
		t0 := time.Now()
		resp, err := hc.Get(base + "/healthz")
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("healthz during the slowloris: %v %v", err, resp)
		}
		resp.Body.Close()
		if err := callWho(t, alice, "crm", "user-alice"); err != nil {
			t.Fatalf("MCP call during the slowloris: %v", err)
		}
		worst = max(worst, time.Since(t0))
		calls++
		time.Sleep(300 * time.Millisecond)
	}
	if worst > 2*time.Second {
		t.Errorf("slowest request during the slowloris: %s", worst)
	}
	want := map[string]time.Duration{"header": readHeaderTimeout, "body": readBodyTimeout}
	for i := range 2 * conns {
		select {
		case c := <-closedAfter:
			if d := c.after; d < want[c.kind]-500*time.Millisecond || d > want[c.kind]+3*time.Second {
				t.Errorf("slow %s connection closed after %s, want about %s", c.kind, d, want[c.kind])
			}
		case <-time.After(readHeaderTimeout + 5*time.Second - time.Since(start)):
			t.Fatalf("%d of %d slow connections still open %s after they started", 2*conns-i, 2*conns, time.Since(start))
		}
	}
	t.Logf("%d slow-header connections closed after ~%s, %d slow-body after ~%s; %d health checks and MCP calls served meanwhile, slowest %s",
		conns, readHeaderTimeout, conns, readBodyTimeout, calls, worst)
}

// TestFaultAbandonedSessionsReaped: many clients open a session and walk
// away (10,000; 2,000 under -race, where each request is several times
// slower; MANDATE_FAULT_SESSIONS overrides). Every tenth also lists tools,
// so that Mandate's own per-session state exists for it. With a 1 s idle
// timeout all of them are reaped: their ids answer 404, the session registry
// and the mandate_sessions gauge return to 0, goroutines and heap return
// near their baseline.
func TestFaultAbandonedSessionsReaped(t *testing.T) {
	n := 10_000
	if raceEnabled {
		n = 2_000
	}
	if v := os.Getenv("MANDATE_FAULT_SESSIONS"); v != "" {
		fmt.Sscan(v, &n)
	}
	const idle = time.Second
	idp := startIdP(t)
	tg := startGateway(t, idp.Issuer(), func(c *Config) {
		c.Server.Session.IdleTimeout = idle
		// One user opens all n sessions: this test is about reaping, not
		// the session caps (TestSessionCaps).
		c.Server.Session.MaxPerUser, c.Server.Session.MaxTotal = 2*n, 2*n
		c.Audit.Sink, c.Audit.Path = "file", filepath.Join(t.TempDir(), "audit.jsonl")
	})
	tok := idpToken(t, idp, "alice", devidp.TokenOptions{Audience: []string{tg.mcpURL}, Lifetime: time.Hour})
	const workers = 32
	tr := &http.Transport{MaxIdleConnsPerHost: workers}
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	post := func(body, sid string) (*http.Response, error) {
		req, _ := http.NewRequest(http.MethodPost, tg.mcpURL, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+tok)
		if sid != "" {
			req.Header.Set("Mcp-Session-Id", sid)
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp, nil
	}
	// Warm the gateway (key cache, pools) before the baseline.
	if resp, err := post(initBody, ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("warm-up: %v %v", err, resp)
	}
	baseG, baseHeap := settledGoroutinesAndHeap(tr)

	sids := make([]string, n)
	var next atomic.Int64
	var failures atomic.Int64
	var firstErr atomic.Pointer[string]
	fail := func(format string, args ...any) {
		failures.Add(1)
		msg := fmt.Sprintf(format, args...)
		firstErr.CompareAndSwap(nil, &msg)
	}
	start := time.Now()
	var wg sync.WaitGroup
	var peak atomic.Int64
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				resp, err := post(initBody, "")
				if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Mcp-Session-Id") == "" {
					fail("initialize %d: %v %v", i, err, resp)
					continue
				}
				sids[i] = resp.Header.Get("Mcp-Session-Id")
				if i%10 != 0 {
					continue
				}
				if resp, err := post(`{"jsonrpc":"2.0","method":"notifications/initialized"}`, sids[i]); err != nil || resp.StatusCode/100 != 2 {
					fail("initialized %d: %v %v", i, err, resp)
					continue
				}
				if resp, err := post(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`, sids[i]); err != nil || resp.StatusCode != http.StatusOK {
					fail("tools/list %d: %v %v", i, err, resp)
					continue
				}
				if c := tg.g.sessions.Count(); c > peak.Load() {
					peak.Store(c)
				}
			}
		})
	}
	wg.Wait()
	opened := time.Since(start)
	if failures.Load() > 0 {
		t.Fatalf("%d of %d sessions failed to open; first: %s", failures.Load(), n, *firstErr.Load())
	}
	distinct := map[string]bool{}
	for _, s := range sids {
		distinct[s] = true
	}
	if len(distinct) != n {
		t.Fatalf("%d sessions opened with %d distinct ids", n, len(distinct))
	}
	if peak.Load() == 0 {
		t.Fatal("no session ever reached the gateway's registry")
	}

	// Reaped: registry empty, ids unknown.
	deadline := time.Now().Add(idle + 10*time.Second)
	for tg.g.sessions.Count() != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if c := tg.g.sessions.Count(); c != 0 {
		t.Fatalf("%d sessions still in the registry %s after the last one was opened (idle timeout %s)", c, time.Since(start)-opened, idle)
	}
	for _, i := range []int{0, 1, n / 3, n / 2, n - 2, n - 1} {
		for {
			resp, err := post(`{"jsonrpc":"2.0","id":3,"method":"ping"}`, sids[i])
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode == http.StatusNotFound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("abandoned session %d still answers %d", i, resp.StatusCode)
			}
			time.Sleep(100 * time.Millisecond) // a ping restarts its idle timer: wait past it
		}
	}
	resp, err := http.Get(tg.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	gauge := ""
	for _, l := range strings.Split(string(metrics), "\n") {
		if strings.HasPrefix(l, "mandate_sessions") {
			gauge = l
		}
	}
	if fields := strings.Fields(gauge); len(fields) < 2 || fields[len(fields)-1] != "0" {
		t.Errorf("session gauge after reaping: %q, want 0", gauge)
	}
	g, heap := settledGoroutinesAndHeap(tr)
	for time.Now().Before(deadline) && g > baseG+10 {
		time.Sleep(100 * time.Millisecond)
		g, heap = settledGoroutinesAndHeap(tr)
	}
	t.Logf("%d sessions (%d with Mandate state, peak %d in the registry) opened in %s, all reaped %s later; goroutines %d → %d, heap in use %.1f → %.1f MiB",
		n, (n+9)/10, peak.Load(), opened.Round(time.Millisecond), (time.Since(start) - opened).Round(time.Millisecond), baseG, g, mib(baseHeap), mib(heap))
	if g > baseG+10 {
		t.Errorf("goroutines: %d before, %d after the sessions were reaped", baseG, g)
	}
	if heap > baseHeap+32<<20 {
		t.Errorf("heap in use: %.1f MiB before, %.1f MiB after the sessions were reaped", mib(baseHeap), mib(heap))
	}
}

// settledGoroutinesAndHeap closes idle client connections (each holds
// goroutines on both ends), collects garbage and returns the goroutine
// count and HeapInuse.
func settledGoroutinesAndHeap(trs ...*http.Transport) (int, uint64) {
	for _, tr := range trs {
		tr.CloseIdleConnections()
	}
	closeIdleDefault()
	time.Sleep(50 * time.Millisecond)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapInuse
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
