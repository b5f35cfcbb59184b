package demo_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/cli"
	"github.com/mandate-gw/mandate/internal/demo"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCLITour: `mandate demo --tour` exits 0 after printing the tour, and
// `mandate validate` accepts the configuration it wrote.
func TestCLITour(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := cli.Main(ctxT(t), []string{"demo", "--tour", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	for _, want := range []string{"salesforce_my_pipeline      Acme Widgets - Renewal", "Audit log " + filepath.Join(dir, demo.AuditFile)} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr: %s", stderr.String())
	}
	stdout.Reset()
	cfg := filepath.Join(dir, demo.ConfigFile)
	if code := cli.Main(ctxT(t), []string{"validate", "--config", cfg}, &stdout, &stderr); code != 0 || stdout.String() != cfg+": ok\n" {
		t.Errorf("mandate validate: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	// The audit log the tour wrote verifies.
	stdout.Reset()
	if code := cli.Main(ctxT(t), []string{"audit", "verify", filepath.Join(dir, demo.AuditFile)}, &stdout, &stderr); code != 0 {
		t.Errorf("mandate audit verify: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
}

// TestCLIPortTaken: a taken port ends `mandate demo` with exit 1 and one
// line naming the port and the flag, no stack trace.
func TestCLIPortTaken(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := strconv.Itoa(taken.Addr().(*net.TCPAddr).Port)
	for _, args := range [][]string{
		{"demo", "--gateway-port", port, "--idp-port", "0", "--salesforce-port", "0", "--servicenow-port", "0", "--kb-port", "0"},
		{"demo", "--tour", "--gateway-port", port},
	} {
		var stdout, stderr bytes.Buffer
		code := cli.Main(ctxT(t), append(args, "--dir", t.TempDir()), &stdout, &stderr)
		want := "port " + port + " (demo gateway) is already in use on 127.0.0.1: stop what is using it, or choose another port with --gateway-port N (or move every demo port with --port-base N)\n"
		if code != 1 || stderr.String() != want || stdout.Len() != 0 {
			t.Errorf("%v: exit %d\nstderr %q\nwant   %q\nstdout %q", args, code, stderr.String(), want, stdout.String())
		}
	}
}

func TestCLIBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"demo", "--port-base", "70000"},
		{"demo", "--kb-port", "-1"},
		{"demo", "--log-level", "loud"},
		{"demo", "extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := cli.Main(ctxT(t), args, &stdout, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "mandate demo: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

// signalWriter reports when the banner is complete.
type signalWriter struct {
	mu   sync.Mutex
	b    bytes.Buffer
	done chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if strings.Contains(w.b.String(), "--tour` shows it all at once.") {
		w.once.Do(func() { close(w.done) })
	}
	return n, err
}

func (w *signalWriter) String() string { w.mu.Lock(); defer w.mu.Unlock(); return w.b.String() }

// TestRunBanner: `mandate demo` prints the MCP URL, the files, a working
// token per user and Inspector commands, serves until ctx is done, then
// stops cleanly.
func TestRunBanner(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(ctxT(t))
	defer cancel()
	dir := t.TempDir()
	w := &signalWriter{done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() { errc <- demo.Run(ctx, demo.Options{Dir: dir}, w) }()
	select {
	case <-w.done:
	case err := <-errc:
		t.Fatalf("Run returned early: %v\n%s", err, w.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no banner")
	}
	out := w.String()
	var mcpURL string
	tokens := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "  MCP endpoint  "); ok {
			mcpURL = v
		}
		if v, ok := strings.CutPrefix(l, "  export "); ok {
			name, tok, _ := strings.Cut(v, "=")
			tokens[name] = tok
		}
	}
	if !strings.HasPrefix(mcpURL, "http://127.0.0.1:") || !strings.HasSuffix(mcpURL, "/mcp") {
		t.Fatalf("MCP URL %q", mcpURL)
	}
	for _, want := range []string{
		"config        " + filepath.Join(dir, demo.ConfigFile),
		"npx -y " + demo.InspectorPackage + " --cli " + mcpURL + ` --transport http --method tools/list --header "Authorization: Bearer $RITA_TOKEN"`,
		"Node.js >= 22.19",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if len(tokens) != len(demo.Users) {
		t.Fatalf("tokens for %v, want one per user", tokens)
	}
	// Each printed token works at the printed URL, as its user.
	d := &demo.Demo{MCPURL: mcpURL}
	for _, u := range demo.Users {
		u.Token = tokens[demo.EnvName(u)]
		cs, err := d.Connect(ctx, u)
		if err != nil {
			t.Fatalf("%s: %v", u.Name, err)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.StructuredContent.(map[string]any)["email"]; got != u.Email {
			t.Errorf("%s's token is %v's", u.Name, got)
		}
		cs.Close()
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if _, err := os.Stat(filepath.Join(dir, demo.AuditFile)); err != nil {
		t.Errorf("audit log: %v", err)
	}
}
