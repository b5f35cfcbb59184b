package deploytest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot returns the main module's root directory (where go.mod is).
func repoRoot(t testing.TB) string {
	t.Helper()
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			rootErr = err
			return
		}
		for {
			if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && bytes.HasPrefix(bytes.TrimSpace(b), []byte("module github.com/mandate-gw/mandate\n")) {
				rootDir = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				rootErr = errors.New("no go.mod of module github.com/mandate-gw/mandate above the test's directory")
				return
			}
			dir = parent
		}
	})
	if rootErr != nil {
		t.Fatal(rootErr)
	}
	return rootDir
}

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// e2eRequired reports whether MANDATE_E2E=1: tests that need a missing tool
// fail instead of skipping.
func e2eRequired() bool { return os.Getenv("MANDATE_E2E") == "1" }

// testVersion is the version the tests stamp into the binary with -X.
const testVersion = "v0.0.0-deploytest"

// built is the mandate binary built once per test binary by mandateBinary.
var built struct {
	once sync.Once
	path string
	args []string // the go build arguments used (after "go")
	env  []string // the NAME=value assignments taken from the Dockerfile
	err  error
}

// mandateBinary builds ./cmd/mandate with the go build command of the
// Dockerfile's build stage (see dockerBuildCommand) and returns its path.
func mandateBinary(t testing.TB) string {
	t.Helper()
	root := repoRoot(t)
	built.once.Do(func() {
		df, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
		if err != nil {
			built.err = err
			return
		}
		dir, err := os.MkdirTemp("", "mandate-deploytest-")
		if err != nil {
			built.err = err
			return
		}
		// The directory is left for the OS to clean: several tests share the
		// binary and there is no package-level cleanup without TestMain.
		out := filepath.Join(dir, "mandate")
		env, args, err := dockerBuildCommand(string(df), map[string]string{
			"VERSION": testVersion, "TARGETOS": runtime.GOOS, "TARGETARCH": runtime.GOARCH,
		}, out)
		if err != nil {
			built.err = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), env...)
		if b, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("%s go %s: %w\n%s", strings.Join(env, " "), strings.Join(args, " "), err, b)
			return
		}
		built.path, built.args, built.env = out, args, env
	})
	if built.err != nil {
		t.Fatalf("building mandate as the Dockerfile does: %v", built.err)
	}
	return built.path
}
