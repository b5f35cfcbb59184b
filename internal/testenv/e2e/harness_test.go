package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// mandateBin is the mandate binary built once by TestMain; repoRoot is the
// module root it was built from.
var mandateBin, repoRoot string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "mandate-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin, err := buildMandate(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	mandateBin = bin
	return m.Run()
}

// buildMandate runs `go build -o DIR/mandate ./cmd/mandate` in the module root.
func buildMandate(dir string) (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not in a module")
	}
	repoRoot = filepath.Dir(gomod)
	bin := filepath.Join(dir, "mandate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/mandate")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/mandate: %w\n%s", err, out)
	}
	return bin, nil
}

// runMandate runs the binary with args to completion and returns its exit
// code, stdout and stderr.
func runMandate(t testing.TB, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, mandateBin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, o.String(), e.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), o.String(), e.String()
	default:
		t.Fatalf("running mandate %v: %v", args, err)
		return -1, "", ""
	}
}

// startIdP starts the devidp OP (alice: user-alice, sales; bob: user-bob,
// support) and closes it when the test ends.
func startIdP(t testing.TB) *devidp.IdP {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{})
	if err != nil {
		t.Fatalf("devidp.Start: %v", err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	return idp
}

// token returns user's access token for audience with scope mcp.
func token(t testing.TB, idp *devidp.IdP, user, audience string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := idp.Token(ctx, user, devidp.TokenOptions{Audience: []string{audience}, Scopes: []string{"mcp"}})
	if err != nil {
		t.Fatalf("token for %s: %v", user, err)
	}
	return tok
}

// baseConfig is a minimal valid configuration trusting issuer and
// requiring scope mcp; {{ADDR}} and {{URL}} are filled in by startMandate.
func baseConfig(issuer string) string {
	return fmt.Sprintf(`server:
  listen: {{ADDR}}
  public_url: {{URL}}
  shutdown_grace: 5s
identity:
  issuer: %s
  required_scopes: [mcp]
telemetry:
  traces: none
`, issuer)
}

// proc is a running `mandate serve`.
type proc struct {
	Addr       string // 127.0.0.1:PORT
	URL        string // http://127.0.0.1:PORT (public_url)
	MCPURL     string // URL + /mcp
	ConfigPath string

	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{} // closed when the process has exited
	err  error         // cmd.Wait's result, valid after done
}

// Logs returns everything the process wrote to stdout and stderr so far.
func (p *proc) Logs() string { return p.logs.String() }

// Exited reports whether the process has exited.
func (p *proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig to the process.
func (p *proc) Signal(sig os.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to timeout for the process to exit and returns its exit
// code, or -1 and false on timeout.
func (p *proc) Wait(timeout time.Duration) (int, bool) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		return -1, false
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), true
	}
	if p.err != nil {
		return -1, true
	}
	return 0, true
}

// Stop sends SIGTERM and waits (up to 30 s) for the exit code.
func (p *proc) Stop(t testing.TB) int {
	t.Helper()
	if !p.Exited() {
		if err := p.Signal(syscall.SIGTERM); err != nil && !p.Exited() {
			t.Fatalf("SIGTERM: %v", err)
		}
	}
	code, ok := p.Wait(30 * time.Second)
	if !ok {
		_ = p.cmd.Process.Kill()
		t.Fatalf("mandate did not exit within 30s of SIGTERM; logs:\n%s", p.Logs())
	}
	return code
}

// startMandate writes cfgYAML (with {{ADDR}} and {{URL}} replaced by a free
// loopback address and its http:// URL) to a file, runs `mandate serve
// --config FILE [extraArgs...]`, and waits until /readyz answers 200. The
// process is killed when the test ends if it is still running; its logs are
// printed if the test failed.
func startMandate(t testing.TB, cfgYAML string, extraArgs ...string) *proc {
	t.Helper()
	return startMandateEnv(t, nil, cfgYAML, extraArgs...)
}

// startMandateEnv is startMandate with env added to the process's
// environment (e.g. SSL_CERT_FILE).
func startMandateEnv(t testing.TB, env []string, cfgYAML string, extraArgs ...string) *proc {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := tryStartMandate(t, env, cfgYAML, extraArgs)
		if err == nil {
			return p
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) {
			break
		}
	}
	t.Fatalf("starting mandate: %v", lastErr)
	return nil
}

var errAddrInUse = errors.New("address already in use")

func tryStartMandate(t testing.TB, env []string, cfgYAML string, extraArgs []string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	url := "http://" + addr
	cfg := strings.NewReplacer("{{ADDR}}", addr, "{{URL}}", url).Replace(cfgYAML)
	path := filepath.Join(t.TempDir(), "mandate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	p := &proc{Addr: addr, URL: url, MCPURL: url + "/mcp", ConfigPath: path, logs: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(mandateBin, append([]string{"serve", "--config", path}, extraArgs...)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if len(env) > 0 {
		p.cmd.Env = append(os.Environ(), env...)
	}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		if !p.Exited() {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("mandate logs:\n%s", p.Logs())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		if p.Exited() {
			if strings.Contains(p.Logs(), "address already in use") {
				return nil, errAddrInUse
			}
			code, _ := p.Wait(0)
			return nil, fmt.Errorf("mandate exited with code %d before ready; logs:\n%s", code, p.Logs())
		}
		resp, err := client.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			_ = p.cmd.Process.Kill()
			return nil, fmt.Errorf("mandate not ready at %s/readyz after 30s (last: %v); logs:\n%s", url, describe(resp, err), p.Logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func describe(resp *http.Response, err error) string {
	if err != nil {
		return err.Error()
	}
	return resp.Status
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// portClosed reports whether nothing accepts connections on addr.
func portClosed(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
