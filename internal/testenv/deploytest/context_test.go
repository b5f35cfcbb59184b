package deploytest

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dockerignore is the subset of .dockerignore syntax deploy's file uses:
// one pattern a line, # comments, *, ?, ** and directory prefixes (a
// pattern matching a directory excludes everything under it). Exceptions
// (!pattern) are refused, so the test never silently misreads the file.
type dockerignore []*regexp.Regexp

func parseDockerignore(src string) (dockerignore, error) {
	var d dockerignore
	for i, line := range strings.Split(src, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") {
			return nil, fmt.Errorf("line %d: exceptions (!) are not supported by this test", i+1)
		}
		p := filepath.ToSlash(filepath.Clean(strings.TrimPrefix(line, "/")))
		var re strings.Builder
		re.WriteString("^")
		for j := 0; j < len(p); j++ {
			switch {
			case strings.HasPrefix(p[j:], "**/"):
				re.WriteString("(.*/)?")
				j += 2
			case strings.HasPrefix(p[j:], "**"):
				re.WriteString(".*")
				j++
			case p[j] == '*':
				re.WriteString("[^/]*")
			case p[j] == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(p[j : j+1]))
			}
		}
		re.WriteString("$")
		r, err := regexp.Compile(re.String())
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		d = append(d, r)
	}
	return d, nil
}

// excluded reports whether the slash-separated relative path (or one of its
// parent directories) matches a pattern.
func (d dockerignore) excluded(rel string) bool {
	for p := rel; p != "." && p != ""; p = filepath.ToSlash(filepath.Dir(p)) {
		for _, r := range d {
			if r.MatchString(p) {
				return true
			}
		}
	}
	return false
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDockerignore(string(b))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]bool{
		".git/config":             true,
		".tools/bin/helm":         true,
		"bin/hydra":               true,
		"gateway/config_test.go":  true,
		"gateway/testdata/x.yaml": true,
		"internal/testenv/nodetools/node_modules/a": true,
		"deploy/tools/helm/go.mod":                  true,
		"internal/testenv/testhydra/build/go.mod":   true,
		"go.mod":                            false,
		"go.sum":                            false,
		"cmd/mandate/main.go":               false,
		"gateway/config.go":                 false,
		"internal/app/devidp/idp.go":        true, // the demo's IdP: not in the product binary
		"internal/app/demo/demo.go":         true,
		"cmd/mandate-demo/main.go":          true,
		"upstreams/salesforce/sandbox/x.go": true,
		"upstreams/servicenow/sandbox/x.go": true,
		"upstreams/salesforce/adapter.go":   false,
		"cmd/mandate/internal/cli/cli.go":   false,
		"deploy/Dockerfile":                 false,
	} {
		if got := d.excluded(path); got != want {
			t.Errorf("excluded(%q) = %v, want %v", path, got, want)
		}
	}
	if _, err := parseDockerignore("!keep\n"); err == nil {
		t.Error("an exception pattern: want an error")
	}
}

// TestDockerBuildContext builds the binary from a copy of what the image's
// build context holds (the repository minus Dockerfile.dockerignore), so an
// ignore pattern that drops a file the build needs fails here.
func TestDockerBuildContext(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("-short: copies the repository and builds the binary")
	}
	root := repoRoot(t)
	b, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile.dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDockerignore(string(b))
	if err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(t.TempDir(), "context")
	var files int
	err = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if rel != "." && d.excluded(rel) {
			if e.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !e.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dst := filepath.Join(ctxDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		files++
		return os.WriteFile(dst, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"go.mod", "go.sum", "cmd/mandate/main.go"} {
		if _, err := os.Stat(filepath.Join(ctxDir, f)); err != nil {
			t.Fatalf("build context lacks %s", f)
		}
	}
	// The build, as the Dockerfile runs it (its own go build line), in the copy.
	df, err := os.ReadFile(filepath.Join(root, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "mandate")
	env, args, err := dockerBuildCommand(string(df), map[string]string{"VERSION": testVersion, "TARGETOS": "linux", "TARGETARCH": "amd64"}, out)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = ctxDir
	cmd.Env = append(os.Environ(), append(env, "GOWORK=off", "GOFLAGS=-mod=readonly")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build in the build context (%d files): %v\n%s", files, err, b)
	}
	t.Logf("built from a %d-file build context", files)
}
