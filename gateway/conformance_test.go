package gateway

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/devidp"
	"github.com/mandate-gw/mandate/internal/nodetools"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// startEverythingServer runs go-sdk's conformance everything-server
// (stateful) on a loopback port and returns its MCP URL.
func startEverythingServer(t testing.TB) string {
	t.Helper()
	nodetools.Require(t, nodetools.ToolEverythingServer)
	bin, _ := nodetools.EverythingServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-http", addr, "-stateless=false")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("everything-server did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr + "/mcp"
}

// bearerProxy is a tiny reverse proxy that adds a bearer token: the
// conformance suite cannot send headers.
func bearerProxy(t testing.TB, target, token string) string {
	t.Helper()
	u, _ := url.Parse(target)
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // keep what the client sent (DNS-rebinding checks)
			r.Out.Header.Set("Authorization", "Bearer "+token)
		},
		FlushInterval: -1,
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return srv.URL
}

var totalRE = regexp.MustCompile(`Total: (\d+) passed, (\d+) failed`)

// runConformance runs `conformance server --suite all` against url and
// returns passed and failed checks with the output.
func runConformance(t testing.TB, url string) (int, int, string) {
	t.Helper()
	node := nodetools.RequireNode22(t)
	cli := nodetools.RequireConformance(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(node, "node"), cli, "server", "--url", url, "--suite", "all")
	cmd.Env = append(os.Environ(), "PATH="+node+string(os.PathListSeparator)+os.Getenv("PATH"))
	cmd.Dir = t.TempDir()
	out, _ := cmd.CombinedOutput()
	m := totalRE.FindSubmatch(out)
	if m == nil {
		t.Fatalf("conformance printed no total:\n%s", out)
	}
	p, _ := strconv.Atoi(string(m[1]))
	f, _ := strconv.Atoi(string(m[2]))
	return p, f, string(out)
}

// TestConformanceThroughGateway runs the official MCP conformance suite
// against Mandate fronting go-sdk's everything-server (one upstream, no
// prefix, authenticated via a header-injecting proxy), and directly, in
// one run: the scores must be equal, five runs in a row.
func TestConformanceThroughGateway(t *testing.T) {
	upstreamURL := startEverythingServer(t)
	directPass, directFail, directOut := runConformance(t, upstreamURL)
	if directFail != 0 {
		t.Logf("direct run has failures:\n%s", directOut)
	}

	idp := startIdP(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{}
	cfg.Server.PublicURL = "http://" + ln.Addr().String()
	cfg.Server.Listen = ln.Addr().String()
	cfg.Identity.Issuer = idp.Issuer()
	cfg.Upstreams = []upstreams.Config{{Name: "everything", Kind: upstreams.KindMCP, URL: upstreamURL,
		Prefix: upstreams.PrefixNever, Credentials: credentials.Config{Flow: credentials.FlowNone}}}
	cfg.Policy = policy.Config{Default: "allow"}
	cfg.applyDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g, err := New(ctx, cfg, Options{AuditOutput: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(g.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() { srv.Close(); cancel(); g.Close() })
	for !g.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	tok := idpToken(t, idp, "alice", devidp.TokenOptions{Audience: []string{cfg.MCPURL()}, Lifetime: time.Hour})
	proxied := bearerProxy(t, cfg.Server.PublicURL, tok) + "/mcp"

	for run := 1; run <= 5; run++ {
		p, f, out := runConformance(t, proxied)
		t.Logf("run %d: through Mandate %d passed, %d failed; direct %d passed, %d failed", run, p, f, directPass, directFail)
		if p != directPass || f != directFail {
			t.Fatalf("run %d: through Mandate %d/%d, direct %d/%d:\n%s", run, p, p+f, directPass, directPass+directFail, failures(out))
		}
	}
}

// failures keeps the failing lines of a conformance report.
func failures(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "✗") || strings.Contains(l, "FAIL") || strings.Contains(l, "failed") && !strings.Contains(l, " 0 failed") {
			fmt.Fprintln(&b, l)
		}
	}
	return b.String()
}

var _ = http.StatusOK
