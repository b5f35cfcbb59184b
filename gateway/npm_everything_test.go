package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// serverEverythingEnv names the installed @modelcontextprotocol/server-everything
// entry point (dist/index.js); .ci/test.sh sets it.
const serverEverythingEnv = "MANDATE_SERVER_EVERYTHING"

// loopbackShim makes the npm server (which listens on every interface) bind
// 127.0.0.1 only, then runs it in streamable HTTP mode.
const loopbackShim = `import net from 'node:net';
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === 'number' || (typeof a[0] === 'string' && /^\d+$/.test(a[0]))) {
    return listen.call(this, Number(a[0]), '127.0.0.1', ...a.slice(1).filter(x => typeof x === 'function'));
  }
  return listen.apply(this, a);
};
process.argv.splice(2, process.argv.length, 'streamableHttp');
await import(process.env.SERVER_EVERYTHING);
`

// startNPMEverything runs @modelcontextprotocol/server-everything in
// streamable HTTP mode on a loopback port and returns its MCP URL.
func startNPMEverything(t testing.TB) string {
	t.Helper()
	node := nodetools.RequireNode22(t)
	entry := os.Getenv(serverEverythingEnv)
	if entry == "" {
		entry = filepath.Join(nodetools.RepoRoot(), ".tools/npm/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	}
	if _, err := os.Stat(entry); err != nil {
		if nodetools.E2E() {
			t.Fatalf("server-everything not installed at %s (%s=1)", entry, nodetools.EnvE2E)
		}
		t.Skipf("server-everything not installed at %s; run `bash .ci/test.sh` once", entry)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	dir := t.TempDir()
	shim := filepath.Join(dir, "loopback.mjs")
	if err := os.WriteFile(shim, []byte(loopbackShim), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(node, "node"), shim)
	cmd.Env = append(os.Environ(), fmt.Sprintf("PORT=%d", port), "SERVER_EVERYTHING="+entry)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("server-everything did not start:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "http://" + addr + "/mcp"
}

// TestNPMEverythingAndInspector: the reference TypeScript "everything"
// server and two go-sdk servers behind Mandate, listed and called through
// the go-sdk client and through the MCP Inspector CLI.
func TestNPMEverythingAndInspector(t *testing.T) {
	everything := startNPMEverything(t)
	env := startMux(t, func(c *Config) {
		c.Upstreams = append(c.Upstreams, upstreams.Config{Name: "everything", Kind: upstreams.KindMCP, URL: everything,
			Timeout: 20 * time.Second, Credentials: credentials.Config{Flow: credentials.FlowNone}})
	})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	names := toolNames(t, alice)
	for _, want := range []string{"everything_echo", "crm_who", "docs_who", "whoami"} {
		if !slices.Contains(names, want) {
			t.Fatalf("%s missing from %v", want, names)
		}
	}
	res, err := callJSON(t, alice, "everything_echo", map[string]any{"message": "hello through Mandate"})
	if err != nil || res.IsError {
		t.Fatalf("everything_echo: %v %+v", err, res)
	}
	if txt := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(txt, "hello through Mandate") {
		t.Fatalf("everything_echo answered %q", txt)
	}
	var resCount int
	for _, err := range alice.Resources(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		resCount++
	}
	if resCount == 0 {
		t.Error("no resources listed from server-everything")
	}

	// The MCP Inspector CLI (Node 22) through Mandate.
	nodetools.RequireInspector(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := nodetools.RunInspector(ctx, env.gw.mcpURL, env.aliceTk, "tools/list")
	if err != nil {
		t.Fatalf("inspector tools/list: %v", err)
	}
	var listed struct {
		Tools []struct{ Name string } `json:"tools"`
	}
	if err := nodetools.InspectorResult(out, &listed); err != nil {
		t.Fatalf("inspector output: %v\n%s", err, out)
	}
	var inspNames []string
	for _, tl := range listed.Tools {
		inspNames = append(inspNames, tl.Name)
	}
	if !slices.Contains(inspNames, "everything_echo") || !slices.Contains(inspNames, "crm_who") {
		t.Fatalf("inspector listed %v", inspNames)
	}
	out, err = nodetools.RunInspector(ctx, env.gw.mcpURL, env.aliceTk, "tools/call", "--tool-name", "crm_who")
	if err != nil {
		t.Fatalf("inspector tools/call: %v", err)
	}
	var called map[string]any
	if err := nodetools.InspectorResult(out, &called); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(called)
	if !strings.Contains(string(b), "user-alice") {
		t.Fatalf("inspector tools/call crm_who: %s", b)
	}
}
