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

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/internal/app/demo"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCLITour: `mandate-demo --tour` exits 0 after printing the tour, the
// gateway's configuration loader (what `mandate validate` runs) accepts the
// configuration it wrote, and the audit log it wrote verifies.
func TestCLITour(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := demo.Main(ctxT(t), []string{"--tour", "--dir", dir}, &stdout, &stderr); code != 0 {
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
	cfg := filepath.Join(dir, demo.ConfigFile)
	if c, err := gateway.LoadConfig(cfg); err != nil {
		t.Errorf("gateway.LoadConfig(%s): %v", cfg, err)
	} else if w := c.Warnings(); len(w) != 0 {
		t.Errorf("gateway.LoadConfig(%s): warnings %q", cfg, w)
	}
	if res, err := audit.VerifyFilesWith(audit.VerifyOptions{}, filepath.Join(dir, demo.AuditFile)); err != nil || !res.OK {
		t.Errorf("audit verify: %v, %v", res, err)
	}
}

// TestCLIPortTaken: a taken port ends `mandate-demo` with exit 1 and one
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
		{"--gateway-port", port, "--idp-port", "0", "--salesforce-port", "0", "--servicenow-port", "0", "--kb-port", "0", "--tracker-port", "0", "--tracker-as-port", "0"},
		{"--tour", "--gateway-port", port},
	} {
		var stdout, stderr bytes.Buffer
		code := demo.Main(ctxT(t), append(args, "--dir", t.TempDir()), &stdout, &stderr)
		want := "port " + port + " (demo gateway) is already in use on 127.0.0.1: stop what is using it, or choose another port with --gateway-port N (or move every demo port with --port-base N)\n"
		if code != 1 || stderr.String() != want || stdout.Len() != 0 {
			t.Errorf("%v: exit %d\nstderr %q\nwant   %q\nstdout %q", args, code, stderr.String(), want, stdout.String())
		}
	}
}

func TestCLIBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{
		{"--port-base", "70000"},
		{"--kb-port", "-1"},
		{"--tracker-as-port", "70000"},
		{"--port-base", "65530"}, // the tracker's AS would be 65536
		{"--log-level", "loud"},
		{"extra"},
	} {
		var stdout, stderr bytes.Buffer
		if code := demo.Main(ctxT(t), args, &stdout, &stderr); code != 2 || !strings.HasPrefix(stderr.String(), "mandate-demo: ") {
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

// running is a demo started with Run, its banner parsed.
type running struct {
	w      *signalWriter
	dir    string
	mcpURL string
	tokens map[string]string // RITA_TOKEN → token
	cancel context.CancelFunc
	done   chan struct{} // closed when Run returned
	err    error         // what Run returned
}

func startRun(t *testing.T) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(ctxT(t))
	r := &running{w: &signalWriter{done: make(chan struct{})}, dir: t.TempDir(), tokens: map[string]string{}, cancel: cancel, done: make(chan struct{})}
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not stop")
		}
	})
	go func() {
		defer close(r.done)
		r.err = demo.Run(ctx, demo.Options{Dir: r.dir}, r.w)
	}()
	select {
	case <-r.w.done:
	case <-r.done:
		t.Fatalf("Run returned early: %v\n%s", r.err, r.w.String())
	case <-time.After(30 * time.Second):
		t.Fatal("no banner")
	}
	for _, l := range strings.Split(r.w.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "  MCP endpoint  "); ok {
			r.mcpURL = v
		}
		if v, ok := strings.CutPrefix(l, "  export "); ok {
			name, tok, _ := strings.Cut(v, "=")
			r.tokens[name] = tok
		}
	}
	if !strings.HasPrefix(r.mcpURL, "http://127.0.0.1:") || !strings.HasSuffix(r.mcpURL, "/mcp") {
		t.Fatalf("MCP URL %q", r.mcpURL)
	}
	return r
}

// connect opens a session as the demo user called name with the printed token.
func (r *running) connect(t *testing.T, name string) *mcp.ClientSession {
	t.Helper()
	for _, u := range demo.Users {
		if u.Name == name {
			u.Token = r.tokens[demo.EnvName(u)]
			cs, err := (&demo.Demo{MCPURL: r.mcpURL}).Connect(ctxT(t), u)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			t.Cleanup(func() { cs.Close() })
			return cs
		}
	}
	t.Fatalf("no user %s", name)
	return nil
}

func toolNames(t *testing.T, cs *mcp.ClientSession) []string {
	t.Helper()
	var names []string
	for tool, err := range cs.Tools(ctxT(t), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	return names
}

// waitFor waits until the Run output contains s.
func (r *running) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(r.w.String(), s) {
		if time.Now().After(deadline) {
			t.Fatalf("output never said %q:\n%s", s, r.w.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRunBanner: `mandate-demo` prints the MCP URL, the files, a working
// token per user and Inspector commands, serves until ctx is done, then
// stops cleanly.
func TestRunBanner(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	out := r.w.String()
	for _, want := range []string{
		"config        " + filepath.Join(r.dir, demo.ConfigFile),
		"npx -y " + demo.InspectorPackage + " --cli " + r.mcpURL + ` --transport http --method tools/list --header "Authorization: Bearer $RITA_TOKEN"`,
		"Node.js >= 22.19",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	if len(r.tokens) != len(demo.Users) {
		t.Fatalf("tokens for %v, want one per user", r.tokens)
	}
	// Each printed token works at the printed URL, as its user.
	for _, u := range demo.Users {
		cs := r.connect(t, u.Name)
		res, err := cs.CallTool(ctxT(t), &mcp.CallToolParams{Name: "whoami"})
		if err != nil {
			t.Fatal(err)
		}
		if got := res.StructuredContent.(map[string]any)["email"]; got != u.Email {
			t.Errorf("%s's token is %v's", u.Name, got)
		}
		cs.Close()
	}
	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("Run: %v", r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
	if !strings.HasSuffix(r.w.String(), "Stopping the demo.\n") {
		t.Errorf("no stop message")
	}
	if _, err := os.Stat(filepath.Join(r.dir, demo.AuditFile)); err != nil {
		t.Errorf("audit log: %v", err)
	}
}

// TestRunReloadsEditedConfig: saving an edited config.yaml changes what the
// running demo serves; a broken edit is reported and changes nothing.
func TestRunReloadsEditedConfig(t *testing.T) {
	t.Parallel()
	r := startRun(t)
	path := filepath.Join(r.dir, demo.ConfigFile)
	orig, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hasKB := func(names []string) bool {
		for _, n := range names {
			if strings.HasPrefix(n, "kb_") {
				return true
			}
		}
		return false
	}
	if !hasKB(toolNames(t, r.connect(t, "oscar"))) {
		t.Fatal("oscar does not see kb before the edit")
	}
	const rule = `when: 'upstream == "kb"'`
	if !strings.Contains(string(orig), rule) {
		t.Fatalf("config lacks %s", rule)
	}
	edited := strings.Replace(string(orig), rule, `when: 'upstream == "kb" && "it" in user.roles'`, 1)
	if err := os.WriteFile(path, []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "changed: reloaded")
	if hasKB(toolNames(t, r.connect(t, "oscar"))) {
		t.Error("oscar still sees kb after the policy edit")
	}
	if !hasKB(toolNames(t, r.connect(t, "ivy"))) {
		t.Error("ivy lost kb")
	}
	if err := os.WriteFile(path, []byte(edited+"bogus_key: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "rejected; the previous configuration keeps serving")
	if !strings.Contains(r.w.String(), "bogus_key") {
		t.Errorf("the rejection does not name the bad key:\n%s", r.w.String())
	}
	if hasKB(toolNames(t, r.connect(t, "oscar"))) {
		t.Error("the broken edit changed what oscar sees")
	}
}
