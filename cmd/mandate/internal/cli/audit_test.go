package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/cmd/mandate/internal/cli"
	"github.com/mandate-gw/mandate/gateway/audit"
)

// chain returns n records of a fresh stdout chain, without its close record
// when closed is false (a process that crashed).
func chain(t *testing.T, n int, closed bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	l, err := audit.New(audit.Config{}, audit.Options{Stdout: &buf})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if err := l.Log(context.Background(), &audit.Record{Method: "tools/call", Tool: "t", Outcome: audit.OutcomeOK}); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(buf.Bytes(), []byte{'\n'})
	if !closed {
		return bytes.Join(lines[:n], nil)
	}
	return buf.Bytes()
}

// TestAuditVerifyRestarts: `mandate audit verify` fails on a new chain
// that does not follow a close record (a middle range deleted and the rest
// re-chained), passes after a clean shutdown, and passes with
// --allow-restarts, saying so.
func TestAuditVerifyRestarts(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, parts ...[]byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Join(parts, nil), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	unclean := write("unclean.log", chain(t, 3, false), chain(t, 2, false))
	clean := write("clean.log", chain(t, 3, true), chain(t, 2, true))
	run := func(args ...string) (int, string) {
		var out, errb bytes.Buffer
		code := cli.Main(context.Background(), append([]string{"audit", "verify"}, args...), &out, &errb)
		return code, out.String() + errb.String()
	}
	if code, out := run(unclean); code != 1 || !strings.Contains(out, "line 4") || !strings.Contains(out, "close record") {
		t.Errorf("restart without a close record: exit %d, %q", code, out)
	}
	if code, out := run("--allow-restarts", unclean); code != 0 || !strings.Contains(out, "without a close record before line 4") {
		t.Errorf("--allow-restarts: exit %d, %q", code, out)
	}
	if code, out := run(clean); code != 0 || !strings.Contains(out, "clean shutdown") {
		t.Errorf("restart after a close record: exit %d, %q", code, out)
	}
	if code, _ := run("--allow-restarts"); code != 2 {
		t.Errorf("no file: exit %d, want 2 (usage)", code)
	}
}
