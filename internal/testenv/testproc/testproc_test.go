package testproc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTailBufferKeepsTheLastBytes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		max    int
		writes []string
		want   string
	}{
		{name: "under the bound", max: 8, writes: []string{"ab", "cd"}, want: "abcd"},
		{name: "exactly the bound", max: 4, writes: []string{"ab", "cd"}, want: "abcd"},
		{name: "small writes overflow", max: 4, writes: []string{"abc", "def", "g"}, want: "defg"},
		{name: "one write larger than the bound", max: 3, writes: []string{"x", "abcdefgh"}, want: "fgh"},
		{name: "write of exactly the bound replaces", max: 3, writes: []string{"xy", "abc"}, want: "abc"},
		{name: "empty writes", max: 3, writes: []string{"", "ab", ""}, want: "ab"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := NewTailBuffer(tc.max)
			for _, w := range tc.writes {
				n, err := b.Write([]byte(w))
				if n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v; want %d, nil", w, n, err, len(w))
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("String() = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestTailBufferTail(t *testing.T) {
	t.Parallel()
	b := NewTailBuffer(16)
	fmt.Fprint(b, "0123456789")
	for _, tc := range []struct {
		n    int
		want string
	}{
		{n: 4, want: "…6789"},
		{n: 10, want: "0123456789"},
		{n: 100, want: "0123456789"},
		{n: -1, want: "0123456789"},
		{n: 0, want: "…"},
	} {
		if got := b.Tail(tc.n); got != tc.want {
			t.Errorf("Tail(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestTailBufferDefaultBound(t *testing.T) {
	t.Parallel()
	b := NewTailBuffer(0)
	chunk := strings.Repeat("x", 4096)
	for range (DefaultMaxLogBytes / len(chunk)) + 10 {
		b.Write([]byte(chunk))
	}
	b.Write([]byte("END"))
	s := b.String()
	if len(s) != DefaultMaxLogBytes || !strings.HasSuffix(s, "END") {
		t.Fatalf("len %d, suffix %q; want %d bytes ending in END", len(s), s[len(s)-3:], DefaultMaxLogBytes)
	}
}

// TestTailBufferConcurrentWrites: concurrent writers never push it past its
// bound and every byte kept is one that was written (run with -race).
func TestTailBufferConcurrentWrites(t *testing.T) {
	t.Parallel()
	const max = 1000
	b := NewTailBuffer(max)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			line := []byte(strings.Repeat(string(rune('a'+g)), 37))
			for range 200 {
				b.Write(line)
				if n := len(b.String()); n > max {
					t.Errorf("buffer holds %d bytes, bound %d", n, max)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := b.String()
	if len(s) != max {
		t.Fatalf("after 8×200×37 bytes the buffer holds %d, want %d", len(s), max)
	}
	if strings.Trim(s, "abcdefgh") != "" {
		t.Fatalf("buffer holds bytes nobody wrote: %q", s)
	}
}

func TestBinaryPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "not-executable")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, ok := RepoRoot()
	if !ok {
		t.Fatal("RepoRoot: main module not found above the test directory")
	}
	const envVar = "MANDATE_TESTPROC_TEST_BIN"
	b := Binary{Name: "prog", EnvVar: envVar, BuildScript: "build/prog.sh"}
	tests := []struct {
		name     string
		env      string
		explicit string
		wantPath string
		wantOK   bool
	}{
		{name: "explicit binary", explicit: exe, wantPath: exe, wantOK: true},
		{name: "explicit wins over env", env: plain, explicit: exe, wantPath: exe, wantOK: true},
		{name: "env", env: exe, wantPath: exe, wantOK: true},
		{name: "env made absolute", env: "testproc_test.go", wantPath: filepath.Join(wd, "testproc_test.go")},
		{name: "not executable", explicit: plain, wantPath: plain},
		{name: "missing", explicit: filepath.Join(dir, "nope"), wantPath: filepath.Join(dir, "nope")},
		{name: "directory", explicit: dir, wantPath: dir},
		{name: "relative made absolute", explicit: "testproc_test.go", wantPath: filepath.Join(wd, "testproc_test.go")},
		{name: "default under repo bin", wantPath: filepath.Join(root, "bin", "prog")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(envVar, tc.env)
			path, ok := b.Available(tc.explicit)
			if path != tc.wantPath || ok != tc.wantOK {
				t.Errorf("Available = %s, %v; want %s, %v", path, ok, tc.wantPath, tc.wantOK)
			}
			if got := b.Path(tc.explicit); got != path {
				t.Errorf("Path = %s, Available's path %s", got, path)
			}
			found, err := b.Find(tc.explicit)
			if found != path || (err == nil) != tc.wantOK {
				t.Fatalf("Find = %s, %v; want %s and ok=%v", found, err, path, tc.wantOK)
			}
			if err != nil {
				for _, part := range []string{path, "build/prog.sh", envVar, "prog binary"} {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("Find error %q does not name %q", err, part)
					}
				}
			}
		})
	}
}

func TestRepoRootDeclaresTheModule(t *testing.T) {
	t.Parallel()
	root, ok := RepoRoot()
	if !ok {
		t.Fatal("RepoRoot not found")
	}
	if !declaresModule(filepath.Join(root, "go.mod"), Module) {
		t.Fatalf("%s/go.mod does not declare %s", root, Module)
	}
	other := filepath.Join(t.TempDir(), "go.mod")
	if err := os.WriteFile(other, []byte("// a comment\nmodule \"github.com/mandate-gw/mandate/tools\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if declaresModule(other, Module) {
		t.Errorf("a go.mod of another module counts as %s", Module)
	}
	if !declaresModule(other, "github.com/mandate-gw/mandate/tools") {
		t.Errorf("quoted module path not recognised")
	}
	if declaresModule(filepath.Join(t.TempDir(), "go.mod"), Module) {
		t.Errorf("a missing go.mod counts")
	}
}

// fakeTB records what Require does.
type fakeTB struct{ skipped, failed string }

func (f *fakeTB) Helper()                        {}
func (f *fakeTB) Skipf(format string, a ...any)  { f.skipped = fmt.Sprintf(format, a...) }
func (f *fakeTB) Fatalf(format string, a ...any) { f.failed = fmt.Sprintf(format, a...) }

func TestRequire(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "prog")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	b := Binary{Name: "prog", EnvVar: "MANDATE_TESTPROC_TEST_BIN", BuildScript: "build/prog.sh"}
	tests := []struct {
		name, bin, e2e       string
		wantSkip, wantFailed bool
	}{
		{name: "present", bin: exe},
		{name: "present with e2e", bin: exe, e2e: "1"},
		{name: "missing skips", bin: missing, wantSkip: true},
		{name: "missing fails with e2e", bin: missing, e2e: "1", wantFailed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(b.EnvVar, tc.bin)
			t.Setenv(EnvE2E, tc.e2e)
			var f fakeTB
			if got := b.Require(&f); got != tc.bin {
				t.Errorf("Require = %s, want %s", got, tc.bin)
			}
			if (f.skipped != "") != tc.wantSkip || (f.failed != "") != tc.wantFailed {
				t.Fatalf("skipped %q failed %q; want skip=%v fail=%v", f.skipped, f.failed, tc.wantSkip, tc.wantFailed)
			}
			for _, msg := range []string{f.skipped, f.failed} {
				if msg != "" && (!strings.Contains(msg, tc.bin) || !strings.Contains(msg, "build/prog.sh")) {
					t.Errorf("message %q does not name the path and the build script", msg)
				}
			}
		})
	}
}

func TestFreePorts(t *testing.T) {
	t.Parallel()
	// A released port can be taken by another process (tests run in
	// parallel) before it is listened on again here; that does not say
	// FreePorts kept it. One attempt whose ports all listen again shows
	// they were released; three attempts losing a port to someone else in
	// that instant would be a bug.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		ports, err := FreePorts(5)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{}
		lastErr = nil
		for _, p := range ports {
			if p <= 0 || seen[p] {
				t.Fatalf("ports %v: not distinct positive ports", ports)
			}
			seen[p] = true
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
			if err != nil {
				lastErr = fmt.Errorf("port %d was not released: %w", p, err)
				break
			}
			l.Close()
		}
		if lastErr == nil {
			return
		}
	}
	t.Fatal(lastErr)
}

func startProc(t *testing.T, name string, args ...string) *Process {
	t.Helper()
	p, err := Start(Command{Name: "test-" + filepath.Base(name), Path: name, Args: args, Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestStartMissingExecutable(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "nope")
	_, err := Start(Command{Name: "nope", Path: missing})
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("Start(missing) = %v, want an error naming %s", err, missing)
	}
}

func TestCloseReportsEarlyExit(t *testing.T) {
	t.Parallel()
	p := startProc(t, "/bin/sh", "-c", "echo going; exit 3")
	<-p.Exited()
	if st := p.State(); st == nil || st.ExitCode() != 3 {
		t.Fatalf("State() = %v, want exit status 3", st)
	}
	err := p.Close()
	if err == nil || !strings.Contains(err.Error(), "test-sh had already exited") || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Close after exit 3 = %v", err)
	}
	if again := p.Close(); again != err {
		t.Errorf("second Close = %v, want the first result %v", again, err)
	}
	if p.Log() != "going\n" {
		t.Errorf("Log() = %q", p.Log())
	}
}

func TestCloseAfterCleanExitIsNil(t *testing.T) {
	t.Parallel()
	p := startProc(t, "/bin/sh", "-c", "exit 0")
	<-p.Exited()
	if err := p.Close(); err != nil {
		t.Fatalf("Close after exit 0 = %v", err)
	}
}

func TestWaitHTTPReady(t *testing.T) {
	t.Parallel()
	var first, second atomic.Int32
	notYet := func(n *atomic.Int32, after int32) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) <= after {
				http.Error(w, "starting", http.StatusServiceUnavailable)
			}
		}
	}
	s1 := httptest.NewServer(notYet(&first, 3))
	defer s1.Close()
	s2 := httptest.NewServer(notYet(&second, 2))
	defer s2.Close()
	p := startProc(t, "sleep", "30")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := p.WaitHTTP(ctx, s1.URL+"/ready", s2.URL+"/ready"); err != nil {
		t.Fatal(err)
	}
	if first.Load() != 4 || second.Load() != 3 {
		t.Errorf("requests: %d and %d; want 4 (3 refusals + 200) and 3", first.Load(), second.Load())
	}
}

func TestWaitHTTPTimesOut(t *testing.T) {
	t.Parallel()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/health", ports[0])
	p := startProc(t, "/bin/sh", "-c", "echo still starting; exec sleep 30")
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	err = p.WaitHTTP(ctx, url)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitHTTP with nothing listening = %v, want DeadlineExceeded", err)
	}
	if errors.Is(err, ErrAddrInUse) {
		t.Errorf("timeout marked as ErrAddrInUse: %v", err)
	}
	for _, part := range []string{url, "test-sh", "still starting"} {
		if !strings.Contains(err.Error(), part) {
			t.Errorf("error %q does not mention %q", err, part)
		}
	}
	if p.State() != nil {
		t.Errorf("WaitHTTP's timeout stopped the process; only Close should")
	}
}

func TestWaitHTTPProcessExits(t *testing.T) {
	t.Parallel()
	ports, err := FreePorts(1)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, script string
		addrInUse    bool
	}{
		{name: "config error", script: "echo 'config broken' >&2; exit 2"},
		{name: "port taken", script: "echo 'listen tcp 127.0.0.1:1: bind: address already in use' >&2; exit 1", addrInUse: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := startProc(t, "/bin/sh", "-c", tc.script)
			err := p.WaitHTTP(t.Context(), fmt.Sprintf("http://127.0.0.1:%d/", ports[0]))
			if err == nil || !strings.Contains(err.Error(), "test-sh exited before becoming ready") {
				t.Fatalf("WaitHTTP = %v, want an early-exit error", err)
			}
			if !strings.Contains(err.Error(), strings.Split(tc.script, "'")[1]) {
				t.Errorf("error %q does not quote the output", err)
			}
			if errors.Is(err, ErrAddrInUse) != tc.addrInUse {
				t.Errorf("errors.Is(err, ErrAddrInUse) = %v, want %v", !tc.addrInUse, tc.addrInUse)
			}
		})
	}
}

func TestStartRetrying(t *testing.T) {
	t.Parallel()
	other := errors.New("config broken")
	inUse := fmt.Errorf("%w: port 1", ErrAddrInUse)
	tests := []struct {
		name      string
		results   []error
		wantCalls int
		wantErr   error
	}{
		{name: "first try", results: []error{nil}, wantCalls: 1},
		{name: "port clash then success", results: []error{inUse, inUse, nil}, wantCalls: 3},
		{name: "other error is final", results: []error{other, nil}, wantCalls: 1, wantErr: other},
		{name: "gives up after three clashes", results: []error{inUse, inUse, inUse, nil}, wantCalls: 3, wantErr: ErrAddrInUse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			v, err := StartRetrying(context.Background(), time.Minute, func(ctx context.Context) (int, error) {
				if _, ok := ctx.Deadline(); !ok {
					t.Error("start's context has no deadline")
				}
				err := tc.results[calls]
				calls++
				if err != nil {
					return 0, err
				}
				return 42, nil
			})
			if calls != tc.wantCalls {
				t.Errorf("%d calls, want %d", calls, tc.wantCalls)
			}
			if tc.wantErr == nil && (err != nil || v != 42) {
				t.Errorf("= %d, %v; want 42, nil", v, err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestStartRetryingStopsWhenContextEnds(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := StartRetrying(ctx, time.Minute, func(context.Context) (int, error) {
		calls++
		cancel()
		return 0, ErrAddrInUse
	})
	if calls != 1 || !errors.Is(err, ErrAddrInUse) {
		t.Fatalf("%d calls, err %v; want 1 call and ErrAddrInUse", calls, err)
	}
}
