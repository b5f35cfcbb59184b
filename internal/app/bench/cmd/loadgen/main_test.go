package main

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/app/bench"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func fakeJWT(sub string) string {
	e := base64.RawURLEncoding.EncodeToString
	return e([]byte(`{"alg":"none"}`)) + "." + e([]byte(`{"sub":"`+sub+`"}`)) + ".x"
}

// startServer runs a go-sdk server whose whoami answers the bearer's subject,
// or always "mallory" when lying is set.
func startServer(t *testing.T, lying bool) string {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "t", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(_ context.Context, _ *mcp.CallToolRequest, a struct {
		Text string `json:"text"`
	}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
	})
	mcp.AddTool(s, &mcp.Tool{Name: "whoami"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		who, _ := bench.UnverifiedSubject(bench.BearerToken(req.Extra.Header.Get("Authorization")))
		if lying {
			who = "mallory"
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: who}}}, nil, nil
	})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	return srv.URL
}

func newConfig(t *testing.T, url, tool, args string, lying bool) *config {
	t.Helper()
	dir := t.TempDir()
	tf := filepath.Join(dir, "tokens.txt")
	if err := os.WriteFile(tf, []byte(fakeJWT("user-a")+"\n"+fakeJWT("user-b")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &config{url: url, sessions: 2, duration: 300 * time.Millisecond, warmup: 100 * time.Millisecond,
		tool: tool, scenario: "calls", timeout: 5 * time.Second, connectPar: 2}
	if err := c.parse(args, []string{"X-Bench: 1"}, tf); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCallsScenario(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tool, args string
		lying            bool
		wantWrong        bool
	}{
		{"echo", "echo", `{"text":"hi"}`, false, false},
		{"whoami names each session's own user", "whoami", `{}`, false, false},
		{"a wrong whoami answer is counted", "whoami", `{}`, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := newConfig(t, startServer(t, tc.lying)+"/", tc.tool, tc.args, tc.lying)
			res, err := run(context.Background(), c, map[string][]int{"self": {os.Getpid()}})
			if err != nil {
				t.Fatal(err)
			}
			if res.Errors != 0 {
				t.Fatalf("errors: %d (%s)", res.Errors, res.FirstError)
			}
			if tc.wantWrong {
				if res.Wrong == 0 || res.Calls != 0 {
					t.Fatalf("lying server: wrong=%d calls=%d", res.Wrong, res.Calls)
				}
				return
			}
			if res.Calls == 0 || res.Wrong != 0 || res.P50us <= 0 || res.P99us < res.P50us || res.MaxUs < res.P99us {
				t.Fatalf("result: %+v", res)
			}
			if _, ok := res.CPU["self"]; !ok {
				t.Fatalf("no CPU entry: %+v", res.CPU)
			}
		})
	}
}

func TestSetupScenario(t *testing.T) {
	t.Parallel()
	c := newConfig(t, startServer(t, false)+"/", "echo", `{"text":"x"}`, false)
	c.scenario = "setup"
	c.warmup, c.duration = 0, 2*time.Second // one setup can take ~100 ms under -race on a busy machine
	res, err := run(context.Background(), c, map[string][]int{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls == 0 || res.Errors != 0 {
		t.Fatalf("setup: %+v", res)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, args string
		hdrs       []string
	}{
		{"args not an object", `[1]`, nil},
		{"header without colon", `{}`, []string{"nocolon"}},
	} {
		c := config{sessions: 1, scenario: "calls"}
		if err := c.parse(tc.args, tc.hdrs, ""); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := parsePIDs([]string{"x=notanumber"}); err == nil {
		t.Error("bad -pid accepted")
	}
}

func TestListScenario(t *testing.T) {
	t.Parallel()
	c := newConfig(t, startServer(t, false)+"/", "echo", `{"text":"x"}`, false)
	c.scenario = "list"
	res, err := run(context.Background(), c, map[string][]int{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Calls == 0 || res.Errors != 0 || res.Tools != 2 {
		t.Fatalf("list: %+v", res)
	}
}

func TestColdScenarioFreshTokens(t *testing.T) {
	t.Parallel()
	url := startServer(t, false) + "/"
	t.Run("used up", func(t *testing.T) {
		t.Parallel()
		c := newConfig(t, url, "whoami", `{}`, false)
		c.scenario, c.fresh, c.sessions = "cold", true, 1
		c.warmup, c.duration = 0, 2*time.Second
		res, err := run(context.Background(), c, map[string][]int{})
		if err != nil {
			t.Fatal(err)
		}
		// Two tokens: two first calls, each answered with its own user, then none left.
		if res.TokensUsed != 2 || res.Calls != 2 || res.Wrong != 0 || res.Errors != 1 ||
			!strings.Contains(res.FirstError, "used up") {
			t.Fatalf("cold: %+v", res)
		}
	})
	t.Run("wrap", func(t *testing.T) {
		t.Parallel()
		c := newConfig(t, url, "whoami", `{}`, false)
		c.scenario, c.fresh, c.wrap, c.offset = "cold", true, true, 1
		c.warmup, c.duration = 0, time.Second
		res, err := run(context.Background(), c, map[string][]int{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Calls < 3 || res.Errors != 0 || res.Wrong != 0 || res.TokensUsed < res.Calls {
			t.Fatalf("cold wrap: %+v", res)
		}
	})
}

func TestIdleScenario(t *testing.T) {
	t.Parallel()
	c := newConfig(t, startServer(t, false)+"/", "echo", `{}`, false)
	ms := httptest.NewServer(bench.MemStatsHandler())
	t.Cleanup(ms.Close)
	c.scenario, c.sessions, c.hold = "idle", 20, 10*time.Millisecond
	c.memstats = map[string]string{"self": ms.URL}
	res, err := run(context.Background(), c, map[string][]int{"self": {os.Getpid()}})
	if err != nil {
		t.Fatal(err)
	}
	m, ok := res.Idle["self"]
	// This process is both client and server: 20 sessions with their SSE
	// streams add goroutines on both sides.
	if !ok || res.Calls != 20 || res.Errors != 0 || m.RSSBeforeKiB <= 0 || m.RSSAfterKiB <= 0 ||
		m.GoroutinesAfter < m.GoroutinesBefore+20 || m.HeapAfter == 0 || m.ReleasedAfterKiB <= 0 {
		t.Fatalf("idle: %+v", res)
	}
}

func TestParseRejectsFreshTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tf := filepath.Join(dir, "t.txt")
	if err := os.WriteFile(tf, []byte(fakeJWT("a")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*config{
		{sessions: 1, scenario: "calls", fresh: true},
		{sessions: 1, scenario: "cold", fresh: true, offset: 1},
		{sessions: 1, scenario: "nope"},
	} {
		if err := c.parse(`{}`, nil, tf); err == nil {
			t.Errorf("%s fresh=%v offset=%d: accepted", c.scenario, c.fresh, c.offset)
		}
	}
	if _, err := parsePIDs([]string{"x=1+"}); err == nil {
		t.Error("-pid x=1+ accepted")
	}
	if p, err := parsePIDs([]string{"x=" + strconv.Itoa(os.Getpid()) + "+" + strconv.Itoa(os.Getpid())}); err != nil || len(p["x"]) != 2 {
		t.Errorf("-pid with two PIDs: %v, %v", p, err)
	}
}
