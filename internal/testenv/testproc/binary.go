package testproc

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Module is the module path whose go.mod marks the repository root.
const Module = "github.com/mandate-gw/mandate"

// EnvE2E names the environment variable that, when set (to anything), turns
// a missing binary in [Binary.Require] into a test failure instead of a skip.
const EnvE2E = "MANDATE_E2E"

// Binary names an external program tests run.
type Binary struct {
	// Name is the file name under <repo>/bin and the name used in messages
	// ("hydra").
	Name string
	// EnvVar is the environment variable that may hold the program's path
	// ("MANDATE_HYDRA_BIN").
	EnvVar string
	// BuildScript is the repository-relative script that builds the program,
	// named in error and skip messages.
	BuildScript string
}

// Path returns the program's path: explicit if not empty, else $EnvVar if
// set, else <repo>/bin/<Name> (bin/<Name> when the repository root is not
// found). Explicit and environment paths are made absolute, since the
// program usually runs in another directory.
func (b Binary) Path(explicit string) string {
	for _, p := range []string{explicit, b.env()} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
			return p
		}
	}
	if root, ok := RepoRoot(); ok {
		return filepath.Join(root, "bin", b.Name)
	}
	return filepath.Join("bin", b.Name)
}

func (b Binary) env() string {
	if b.EnvVar == "" {
		return ""
	}
	return os.Getenv(b.EnvVar)
}

// Available reports the path [Binary.Path] picks and whether it is an
// executable regular file.
func (b Binary) Available(explicit string) (path string, ok bool) {
	path = b.Path(explicit)
	return path, isExecutable(path)
}

// Find is [Binary.Available] as an error: one naming the path, the build
// script and the environment variable when the binary is missing.
func (b Binary) Find(explicit string) (string, error) {
	path, ok := b.Available(explicit)
	if !ok {
		return path, fmt.Errorf("no executable %s binary at %s (build it with %s or set %s)", b.Name, path, b.BuildScript, b.EnvVar)
	}
	return path, nil
}

// TB is the part of testing.TB that Require uses.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Require returns the default path of the binary ([Binary.Path] with no
// explicit path) when it is available. When it is not, it skips t, or fails
// t if $MANDATE_E2E is set; the message names the path and the build script.
func (b Binary) Require(t TB) string {
	t.Helper()
	path, ok := b.Available("")
	if !ok {
		if os.Getenv(EnvE2E) != "" {
			t.Fatalf("%s is set but no %s binary at %s: run %s (or set %s)", EnvE2E, b.Name, path, b.BuildScript, b.EnvVar)
		} else {
			t.Skipf("SKIPPED, NOT PASSED: no %s binary at %s; run %s (%s=1 turns this into a failure)", b.Name, path, b.BuildScript, EnvE2E)
		}
	}
	return path
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// RepoRoot finds the Mandate repository root: the nearest directory whose
// go.mod declares [Module], searched upward first from the working directory
// (tests run in their package directory), then from this source file.
func RepoRoot() (string, bool) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if declaresModule(filepath.Join(dir, "go.mod"), Module) {
				return dir, true
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", false
}

// declaresModule reports whether the go.mod file at gomod declares module.
func declaresModule(gomod, module string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == module
		}
	}
	return false
}
