package deploytest

import (
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// instruction is one Dockerfile instruction with its continuation lines
// joined.
type instruction struct {
	Line int    // 1-based line of the keyword
	Cmd  string // upper-case keyword: FROM, RUN, ...
	Args string // the rest, continuation lines joined with a space
}

// stage is one FROM ... up to the next FROM.
type stage struct {
	Base  string // image reference as written (ARGs not expanded)
	Name  string // AS name, or ""
	Flags []string
	Insts []instruction // instructions after FROM
}

// parseDockerfile splits a Dockerfile into instructions: parser directives
// and comments dropped, backslash continuations joined (comment lines
// inside a continuation are skipped, as BuildKit does). Heredocs are not
// supported and rejected.
func parseDockerfile(src string) ([]instruction, error) {
	var out []instruction
	var cur *instruction
	for i, raw := range strings.Split(src, "\n") {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur == nil) {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		if cont {
			line = strings.TrimSuffix(line, `\`)
		}
		if cur == nil {
			kw, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
			if !regexp.MustCompile(`^[A-Za-z]+$`).MatchString(kw) {
				return nil, fmt.Errorf("line %d: not an instruction: %q", i+1, raw)
			}
			cur = &instruction{Line: i + 1, Cmd: strings.ToUpper(kw), Args: strings.TrimSpace(rest)}
		} else if t := strings.TrimSpace(line); t != "" {
			cur.Args = strings.TrimSpace(cur.Args + " " + t)
		}
		if !cont {
			if strings.Contains(cur.Args, "<<") {
				return nil, fmt.Errorf("line %d: heredocs are not supported by this parser", cur.Line)
			}
			out = append(out, *cur)
			cur = nil
		}
	}
	if cur != nil {
		return nil, fmt.Errorf("line %d: continuation at end of file", cur.Line)
	}
	return out, nil
}

// stages groups instructions by FROM; instructions before the first FROM
// (global ARGs) are returned separately.
func stages(insts []instruction) (global []instruction, st []stage, err error) {
	for _, in := range insts {
		if in.Cmd != "FROM" {
			if len(st) == 0 {
				if in.Cmd != "ARG" {
					return nil, nil, fmt.Errorf("line %d: %s before the first FROM", in.Line, in.Cmd)
				}
				global = append(global, in)
				continue
			}
			st[len(st)-1].Insts = append(st[len(st)-1].Insts, in)
			continue
		}
		var s stage
		words := strings.Fields(in.Args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--") {
			s.Flags = append(s.Flags, words[0])
			words = words[1:]
		}
		switch {
		case len(words) == 1:
			s.Base = words[0]
		case len(words) == 3 && strings.EqualFold(words[1], "AS"):
			s.Base, s.Name = words[0], words[2]
		default:
			return nil, nil, fmt.Errorf("line %d: FROM %q: want IMAGE [AS NAME]", in.Line, in.Args)
		}
		st = append(st, s)
	}
	return global, st, nil
}

// shellWords splits a simple shell command line into words: whitespace
// separated, "double" and 'single' quotes, $VAR and ${VAR} expanded from
// vars (an unknown variable is an error). Enough for the Dockerfile's go
// build line; anything fancier (;, &&, |, $(...), backslashes) is refused
// so that the test never silently runs a different command.
func shellWords(s string, vars map[string]string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	expand := func(rs []rune, i int) (int, error) { // rs[i] == '$'
		j := i + 1
		var name string
		if j < len(rs) && rs[j] == '{' {
			k := j + 1
			for k < len(rs) && rs[k] != '}' {
				k++
			}
			if k == len(rs) {
				return 0, fmt.Errorf("unterminated ${ in %q", s)
			}
			name, j = string(rs[j+1:k]), k+1
		} else {
			k := j
			for k < len(rs) && (rs[k] == '_' || rs[k] >= 'A' && rs[k] <= 'Z' || rs[k] >= 'a' && rs[k] <= 'z' || rs[k] >= '0' && rs[k] <= '9') {
				k++
			}
			name, j = string(rs[j:k]), k
		}
		v, ok := vars[name]
		if !ok {
			return 0, fmt.Errorf("variable %q is not set (have %v)", name, vars)
		}
		cur.WriteString(v)
		return j, nil
	}
	rs := []rune(s)
	for i := 0; i < len(rs); {
		c := rs[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
			i++
		case quote == '"':
			switch c {
			case '"':
				quote = 0
				i++
			case '$':
				j, err := expand(rs, i)
				if err != nil {
					return nil, err
				}
				i = j
			case '\\', '`':
				return nil, fmt.Errorf("unsupported %q inside quotes in %q", c, s)
			default:
				cur.WriteRune(c)
				i++
			}
		case c == ' ' || c == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '"' || c == '\'':
			quote, inWord = c, true
			i++
		case c == '$':
			if i+1 < len(rs) && rs[i+1] == '(' {
				return nil, fmt.Errorf("command substitution in %q", s)
			}
			j, err := expand(rs, i)
			if err != nil {
				return nil, err
			}
			i, inWord = j, true
		case strings.ContainsRune(";&|<>`\\()", c):
			return nil, fmt.Errorf("unsupported shell syntax %q in %q", c, s)
		default:
			cur.WriteRune(c)
			inWord = true
			i++
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// dockerBuildCommand finds the RUN instruction of the Dockerfile that runs
// `go build`, and returns its leading NAME=value assignments and the
// arguments after "go", with variables expanded from vars and the -o output
// replaced by out.
func dockerBuildCommand(src string, vars map[string]string, out string) (env, args []string, err error) {
	insts, err := parseDockerfile(src)
	if err != nil {
		return nil, nil, err
	}
	var run *instruction
	for i, in := range insts {
		if in.Cmd == "RUN" && strings.Contains(in.Args, "go build") {
			if run != nil {
				return nil, nil, fmt.Errorf("lines %d and %d both run go build", run.Line, in.Line)
			}
			run = &insts[i]
		}
	}
	if run == nil {
		return nil, nil, fmt.Errorf("no RUN ... go build in the Dockerfile")
	}
	words, err := shellWords(run.Args, vars)
	if err != nil {
		return nil, nil, fmt.Errorf("line %d: %w", run.Line, err)
	}
	for len(words) > 0 && strings.HasPrefix(words[0], "--mount=") {
		words = words[1:]
	}
	for len(words) > 0 && regexp.MustCompile(`^[A-Z_][A-Z0-9_]*=`).MatchString(words[0]) {
		env = append(env, words[0])
		words = words[1:]
	}
	if len(words) < 2 || words[0] != "go" || words[1] != "build" {
		return nil, nil, fmt.Errorf("line %d: want [VAR=value...] go build ..., got %q", run.Line, words)
	}
	args = slices.Clone(words[1:])
	o := slices.Index(args, "-o")
	if o < 0 || o+1 >= len(args) {
		return nil, nil, fmt.Errorf("line %d: go build has no -o OUTPUT", run.Line)
	}
	args[o+1] = out
	return env, args, nil
}

func readDockerfile(t *testing.T) (global []instruction, st []stage) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	insts, err := parseDockerfile(string(b))
	if err != nil {
		t.Fatalf("parsing deploy/Dockerfile: %v", err)
	}
	global, st, err = stages(insts)
	if err != nil {
		t.Fatalf("deploy/Dockerfile: %v", err)
	}
	return global, st
}

func find(insts []instruction, cmd string) []instruction {
	var out []instruction
	for _, in := range insts {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

// execForm decodes a JSON-array (exec form) argument; ok is false for the
// shell form.
func execForm(s string) ([]string, bool) {
	var v []string
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, false
	}
	return v, true
}

func TestDockerfileInvariants(t *testing.T) {
	t.Parallel()
	global, st := readDockerfile(t)
	if len(st) < 2 {
		t.Fatalf("want a multi-stage build (≥2 FROM), got %d stage(s)", len(st))
	}

	// Global ARGs, for the build stage's Go version.
	args := map[string]string{}
	for _, in := range global {
		k, v, _ := strings.Cut(in.Args, "=")
		args[k] = v
	}

	t.Run("build stage uses go.mod's Go version", func(t *testing.T) {
		b := st[0]
		img := b.Base
		for k, v := range args {
			img = strings.ReplaceAll(img, "${"+k+"}", v)
		}
		gomod, err := os.ReadFile(filepath.Join(repoRoot(t), "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
		if m == nil {
			t.Fatal("go.mod has no go directive")
		}
		if want := "golang:" + string(m[1]); img != want && !strings.HasPrefix(img, want+".") && !strings.HasPrefix(img, want+"-") {
			t.Errorf("build stage FROM %s (expanded %s), want %s[.patch] to match go.mod", b.Base, img, want)
		}
		if !slices.Contains(b.Flags, "--platform=$BUILDPLATFORM") {
			t.Errorf("build stage flags %v: want --platform=$BUILDPLATFORM (cross-compile natively)", b.Flags)
		}
	})

	final := st[len(st)-1]
	t.Run("final stage base is distroless static or scratch", func(t *testing.T) {
		if final.Base != "scratch" && !strings.HasPrefix(final.Base, "gcr.io/distroless/static") {
			t.Errorf("final FROM %s: want gcr.io/distroless/static* or scratch", final.Base)
		}
		if r := find(final.Insts, "RUN"); len(r) > 0 {
			t.Errorf("line %d: RUN in the final stage (no shell there)", r[0].Line)
		}
	})

	t.Run("final stage runs as numeric non-root user", func(t *testing.T) {
		users := find(final.Insts, "USER")
		if len(users) == 0 {
			t.Fatal("final stage has no USER (would run as root)")
		}
		u := users[len(users)-1].Args
		uid, gid, _ := strings.Cut(u, ":")
		n, err := strconv.Atoi(uid)
		if err != nil {
			t.Fatalf("USER %s: want a numeric uid (Kubernetes runAsNonRoot can only verify numeric users)", u)
		}
		if n == 0 || n != 65532 {
			t.Errorf("USER uid %d: want 65532 (distroless nonroot, the chart's runAsUser)", n)
		}
		if gid != "" && gid != "65532" {
			t.Errorf("USER gid %s: want 65532", gid)
		}
	})

	t.Run("no remote ADD", func(t *testing.T) {
		for _, s := range st {
			for _, in := range find(s.Insts, "ADD") {
				if regexp.MustCompile(`(?i)(https?://|git@|\.git\b)`).MatchString(in.Args) {
					t.Errorf("line %d: ADD of a remote source %q: fetch in a RUN with a checksum, or COPY", in.Line, in.Args)
				}
			}
		}
	})

	t.Run("binary, entrypoint, port, healthcheck", func(t *testing.T) {
		var bin string
		for _, in := range find(final.Insts, "COPY") {
			if f := strings.Fields(in.Args); len(f) == 3 && f[0] == "--from="+st[0].Name && strings.HasSuffix(f[1], "/mandate") {
				bin = f[2]
			}
		}
		if bin != "/mandate" {
			t.Fatalf("final stage: want COPY --from=%s .../mandate /mandate, got binary at %q", st[0].Name, bin)
		}
		ep := find(final.Insts, "ENTRYPOINT")
		if len(ep) != 1 {
			t.Fatalf("final stage: want one ENTRYPOINT, got %d", len(ep))
		}
		if v, ok := execForm(ep[0].Args); !ok || !slices.Equal(v, []string{bin}) {
			t.Errorf("ENTRYPOINT %s: want exec form [%q] (no shell in the image; signals reach mandate)", ep[0].Args, bin)
		}
		if c := find(final.Insts, "CMD"); len(c) != 1 {
			t.Errorf("final stage: want one CMD, got %d", len(c))
		} else if v, ok := execForm(c[0].Args); !ok || len(v) == 0 || v[0] != "serve" || !slices.Contains(v, "--config") {
			t.Errorf("CMD %s: want exec form [\"serve\", \"--config\", FILE]", c[0].Args)
		}
		exp := find(final.Insts, "EXPOSE")
		if len(exp) != 1 || exp[0].Args != "8080" {
			t.Fatalf("final stage: want EXPOSE 8080, got %v", exp)
		}
		hc := find(final.Insts, "HEALTHCHECK")
		if len(hc) != 1 {
			t.Fatalf("final stage: want one HEALTHCHECK, got %d", len(hc))
		}
		words := strings.Fields(hc[0].Args)
		for len(words) > 0 && strings.HasPrefix(words[0], "--") {
			words = words[1:]
		}
		if len(words) == 0 || words[0] != "CMD" {
			t.Fatalf("HEALTHCHECK %q: want [OPTIONS] CMD [...] (not NONE)", hc[0].Args)
		}
		_, rest, _ := strings.Cut(hc[0].Args, "CMD ")
		v, ok := execForm(rest)
		if !ok {
			t.Fatalf("HEALTHCHECK CMD %s: want exec form (no shell in the image)", rest)
		}
		if len(v) < 2 || v[0] != bin || v[1] != "health" {
			t.Errorf("HEALTHCHECK CMD %v: want [%q, \"health\", ...]", v, bin)
		}
		if i := slices.Index(v, "--url"); i < 0 || i+1 >= len(v) || !strings.HasPrefix(v[i+1], "http://127.0.0.1:8080/") {
			t.Errorf("HEALTHCHECK CMD %v: want --url http://127.0.0.1:8080/... (the EXPOSEd port)", v)
		}
	})

	t.Run("writable audit directory owned by the runtime user", func(t *testing.T) {
		ok := false
		for _, in := range find(final.Insts, "COPY") {
			if strings.Contains(in.Args, "--chown=65532:65532") && strings.HasSuffix(in.Args, " /var/lib/mandate") {
				ok = true
			}
		}
		if !ok {
			t.Error("final stage: want COPY --chown=65532:65532 ... /var/lib/mandate (mount point for audit files)")
		}
	})
}

func TestDockerBuildCommand(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	env, args, err := dockerBuildCommand(string(b), map[string]string{"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm64"}, "/tmp/x")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=linux", "GOARCH=arm64"} {
		if !slices.Contains(env, want) {
			t.Errorf("build env %v: want %s", env, want)
		}
	}
	want := []string{"build", "-trimpath", "-ldflags", "-s -w -X github.com/mandate-gw/mandate/gateway.Version=v1.2.3", "-o", "/tmp/x", "./cmd/mandate"}
	if !slices.Equal(args, want) {
		t.Errorf("go %q\nwant go %q", args, want)
	}
}

func TestShellWords(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"A": "x y", "B": "b"}
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: `go build -o out ./x`, want: []string{"go", "build", "-o", "out", "./x"}},
		{in: `V=$B go "a ${A}" 'l$B' c${B}d`, want: []string{"V=b", "go", "a x y", "l$B", "cbd"}},
		{in: `a && b`, err: true},
		{in: `a; b`, err: true},
		{in: `a $(b)`, err: true},
		{in: `a $C`, err: true},
		{in: `a "b`, err: true},
		{in: `a \
b`, err: true},
	} {
		got, err := shellWords(tc.in, vars)
		if (err != nil) != tc.err || !slices.Equal(got, tc.want) && !tc.err {
			t.Errorf("shellWords(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParseDockerfile(t *testing.T) {
	t.Parallel()
	src := "# syntax=docker/dockerfile:1\nARG V=1\n\nFROM --platform=$BUILDPLATFORM golang:${V} AS b\nRUN a \\\n  # comment inside\n  b \\\n  c\nFROM scratch\nUSER 1:1\n"
	insts, err := parseDockerfile(src)
	if err != nil {
		t.Fatal(err)
	}
	global, st, err := stages(insts)
	if err != nil {
		t.Fatal(err)
	}
	if len(global) != 1 || global[0].Args != "V=1" {
		t.Errorf("global = %+v", global)
	}
	if len(st) != 2 || st[0].Name != "b" || st[0].Base != "golang:${V}" || st[1].Base != "scratch" {
		t.Fatalf("stages = %+v", st)
	}
	if r := st[0].Insts[0]; r.Cmd != "RUN" || r.Args != "a b c" || r.Line != 5 {
		t.Errorf("RUN = %+v, want line 5, args \"a b c\"", r)
	}
	if _, err := parseDockerfile("RUN <<EOF\nx\nEOF\n"); err == nil {
		t.Error("heredoc: want an error")
	}
}

// TestStaticBinary builds mandate exactly as the Dockerfile's build stage
// does and checks what distroless/static or scratch needs: a static,
// stripped, path-free binary that reports its -X version.
func TestStaticBinary(t *testing.T) {
	t.Parallel()
	if runtime.GOOS != "linux" {
		t.Skip("ELF checks need linux")
	}
	bin := mandateBinary(t)
	if !slices.Contains(built.env, "CGO_ENABLED=0") {
		t.Errorf("Dockerfile build env %v lacks CGO_ENABLED=0", built.env)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("binary has PT_INTERP: dynamically linked (needs a loader the image lacks)")
		}
		if p.Type == elf.PT_DYNAMIC {
			t.Error("binary has PT_DYNAMIC: dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err != nil {
		t.Errorf("reading DT_NEEDED: %v", err)
	} else if len(libs) > 0 {
		t.Errorf("binary needs shared libraries %v", libs)
	}
	for _, s := range []string{".symtab", ".debug_info", ".zdebug_info"} {
		if f.Section(s) != nil {
			t.Errorf("binary has section %s: not stripped (-s -w)", s)
		}
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if root := repoRoot(t); bytes.Contains(data, []byte(root+"/")) {
		t.Errorf("binary contains the build path %s: not built with -trimpath", root)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("mandate version: %v\n%s", err, out)
	}
	if got, want := strings.TrimSpace(string(out)), "mandate "+testVersion; got != want {
		t.Errorf("mandate version = %q, want %q (-X github.com/mandate-gw/mandate/gateway.Version)", got, want)
	}
}

// TestHealthCommand checks the command the image's HEALTHCHECK runs.
func TestHealthCommand(t *testing.T) {
	t.Parallel()
	bin := mandateBinary(t)
	for _, tc := range []struct {
		status   int
		wantExit bool // true: exit 0
	}{
		{http.StatusOK, true},
		{http.StatusServiceUnavailable, false},
		{http.StatusNotFound, false},
	} {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/readyz" {
					http.NotFound(w, r)
					return
				}
				w.WriteHeader(tc.status)
			}))
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, bin, "health", "--url", srv.URL+"/readyz").CombinedOutput()
			if (err == nil) != tc.wantExit {
				t.Errorf("mandate health on HTTP %d: err=%v, want success=%v\n%s", tc.status, err, tc.wantExit, out)
			}
		})
	}
	t.Run("nothing listening", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, bin, "health", "--url", url+"/readyz").CombinedOutput(); err == nil {
			t.Errorf("mandate health with nothing listening exited 0\n%s", out)
		}
	})
}
