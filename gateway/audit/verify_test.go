package audit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strings"
	"testing"
)

// chainLines returns n intact lines.
func chainLines(t *testing.T, n int) []string {
	t.Helper()
	l, buf := newBufLogger(t)
	logN(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return splitLines(buf.Bytes())[:n] // without the close record
}

// rehash recomputes the hash of one edited line, as a forger would.
func rehash(t *testing.T, line string) string {
	t.Helper()
	cut := len(line) - len(hashMember) - 64 - 2
	body := line[:cut] + "}"
	i := strings.Index(line, `"prev_hash":"`) + len(`"prev_hash":"`)
	prev := line[i : i+64]
	sum := sha256.Sum256([]byte(prev + body))
	return line[:cut] + hashMember + hex.EncodeToString(sum[:]) + `"}`
}

func TestVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	base := chainLines(t, 6)
	tests := []struct {
		name       string
		edit       func(l []string) []string
		wantLine   int
		wantReason string
	}{
		{"intact", func(l []string) []string { return l }, 0, ""},
		{"edit a field", func(l []string) []string {
			l[2] = strings.Replace(l[2], `"subject":"alice"`, `"subject":"mallory"`, 1)
			return l
		}, 3, "hash mismatch (record edited?)"},
		{"edit a field and recompute its hash", func(l []string) []string {
			l[2] = rehash(t, strings.Replace(l[2], `"allow":true`, `"allow":false`, 1))
			return l
		}, 4, "prev_hash does not match"},
		{"delete a line", func(l []string) []string { return append(l[:2:2], l[3:]...) }, 3, "seq 4 follows seq 2"},
		{"reorder two lines", func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, 2, "seq 3 follows seq 1"},
		{"duplicate a line", func(l []string) []string { return append(l[:3:3], l[2:]...) }, 4, "seq 3 follows seq 3"},
		{"insert a foreign line", func(l []string) []string {
			return append(l[:1:1], append([]string{`{"method":"tools/call"}`}, l[1:]...)...)
		}, 2, "no trailing \"hash\" member"},
		{"truncate a line", func(l []string) []string { l[4] = l[4][:len(l[4])/2]; return l }, 5, "not an audit record"},
		{"empty line", func(l []string) []string { return append(l[:1:1], append([]string{""}, l[1:]...)...) }, 2, "empty line"},
		{"add a member", func(l []string) []string {
			l[0] = strings.Replace(l[0], `{"time"`, `{"hash":"`+strings.Repeat("0", 64)+`","time"`, 1)
			return l
		}, 1, "hash mismatch"},
		{"invalid JSON with a valid-looking tail", func(l []string) []string {
			l[1] = "{not json" + l[1][1:]
			return l
		}, 2, "not valid JSON"},
		{"uppercase hash", func(l []string) []string {
			n := len(l[3])
			l[3] = l[3][:n-66] + strings.ToUpper(l[3][n-66:n-2]) + `"}`
			return l
		}, 4, "64 lowercase hex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lines := tt.edit(append([]string(nil), base...))
			res, err := Verify(strings.NewReader(joinLines(lines)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantLine == 0 {
				if !res.OK || res.Records != 6 {
					t.Fatalf("want intact, got %s", res)
				}
				return
			}
			if res.OK || res.BrokenLine != tt.wantLine || !strings.Contains(res.Reason, tt.wantReason) {
				t.Fatalf("got %q (line %d), want broken at line %d with %q", res, res.BrokenLine, tt.wantLine, tt.wantReason)
			}
			if res.Records != tt.wantLine-1 {
				t.Errorf("Records = %d, want %d intact before the break", res.Records, tt.wantLine-1)
			}
			if !strings.HasPrefix(res.String(), "broken at line ") {
				t.Errorf("String() = %q", res)
			}
		})
	}
}

func TestVerifyMidChainAndRestarts(t *testing.T) {
	t.Parallel()
	lines := chainLines(t, 5)
	// A file that starts mid-chain (earlier records rotated away).
	res, err := Verify(strings.NewReader(joinLines(lines[2:])))
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || !res.Anchored || res.FirstSeq != 3 || res.Records != 3 || !strings.Contains(res.Anchor, strings.Split(strings.Split(lines[2], `"prev_hash":"`)[1], `"`)[0]) {
		t.Fatalf("mid-chain: %+v", res)
	}
	// Two chains in one stream: stdout collected across a restart, the
	// first ended by its close record.
	other := chainLines(t, 2)
	res, _ = Verify(strings.NewReader(joinLines(append(closedChain(t, 4), other...))))
	if !res.OK || res.Records != 7 || len(res.Restarts) != 1 || res.Restarts[0] != 6 {
		t.Fatalf("restart: %+v", res)
	}
	if !strings.Contains(res.String(), "new chain starts at line 6") {
		t.Errorf("String() = %q", res)
	}
	// Genesis prev_hash on a record that is not seq 1.
	l, buf := newBufLogger(t)
	l.seq = 41
	logN(t, l, 1)
	l.Close()
	res, _ = Verify(strings.NewReader(string(buf.Bytes())))
	if res.OK || !strings.Contains(res.Reason, "genesis") {
		t.Fatalf("genesis with seq 42: %s", res)
	}
}

func TestVerifyEmptyAndNoFinalNewline(t *testing.T) {
	t.Parallel()
	res, err := Verify(strings.NewReader(""))
	if err != nil || !res.OK || res.Records != 0 || res.String() != "ok: 0 records" {
		t.Fatalf("empty: %v %q", err, res)
	}
	lines := chainLines(t, 2)
	res, _ = Verify(strings.NewReader(strings.Join(lines, "\n")))
	if !res.OK || res.Records != 2 {
		t.Fatalf("no final newline: %s", res)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("device gone") }

func TestVerifyIOError(t *testing.T) {
	t.Parallel()
	if _, err := Verify(errReader{}); err == nil || !strings.Contains(err.Error(), "device gone") {
		t.Fatalf("err = %v", err)
	}
	if _, err := VerifyFile(t.TempDir() + "/nope.log"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v", err)
	}
}

func TestVerifyFileReportsFile(t *testing.T) {
	t.Parallel()
	lines := chainLines(t, 3)
	lines[1] = strings.Replace(lines[1], "alice", "bob", 1)
	path := filePath(t)
	os.WriteFile(path, []byte(joinLines(lines)), 0o600)
	res, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "broken at " + path + " line 2: hash mismatch (record edited?) (1 records before it are intact)"
	if res.String() != want {
		t.Errorf("String() = %q\nwant       %q", res, want)
	}
}

// closedChain returns the lines of a stdout chain of n records ended by
// Close (n records, then the close record).
func closedChain(t *testing.T, n int) []string {
	t.Helper()
	l, buf := newBufLogger(t)
	logN(t, l, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return splitLines(buf.Bytes())
}

// TestVerifyRestartNeedsCloseRecord: a new chain in the middle of an input
// is accepted only after a close record (a clean shutdown of a stdout
// sink), or with AllowRestarts. Otherwise deleting a middle range and
// re-chaining the rest from genesis would pass.
func TestVerifyRestartNeedsCloseRecord(t *testing.T) {
	t.Parallel()
	// The attack: 10 records, lines 4-7 deleted, the rest re-chained as a
	// new chain (seq 1, genesis prev_hash, hashes recomputed).
	all := chainLines(t, 10)
	forged := chainLines(t, 3) // a fresh chain standing in for lines 8-10
	attack := append(append([]string(nil), all[:3]...), forged...)
	res, err := Verify(strings.NewReader(joinLines(attack)))
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.BrokenLine != 4 || !strings.Contains(res.Reason, "close record") {
		t.Fatalf("middle range deleted and the rest re-chained: %s", res)
	}
	// The explicit flag accepts it and reports where.
	res, _ = VerifyWith(strings.NewReader(joinLines(attack)), VerifyOptions{AllowRestarts: true})
	if !res.OK || res.Records != 6 || len(res.Restarts) != 1 || res.Restarts[0] != 4 || len(res.Unclosed) != 1 {
		t.Fatalf("with AllowRestarts: %+v", res)
	}
	if !strings.Contains(res.String(), "without a close record") {
		t.Errorf("String() = %q", res)
	}
	// A clean restart: the first process's chain ends with its close record.
	clean := append(closedChain(t, 3), closedChain(t, 2)...)
	res, _ = Verify(strings.NewReader(joinLines(clean)))
	if !res.OK || res.Records != 7 || len(res.Restarts) != 1 || res.Restarts[0] != 5 || len(res.Unclosed) != 0 {
		t.Fatalf("restart after a close record: %s", res)
	}
	// A close method inside another member (arguments) does not count.
	l, buf := newBufLogger(t)
	r := sampleRecord(0)
	r.Arguments = map[string]any{"a": 1, "method": MethodAuditClose}
	if err := l.Log(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	l.Close()
	fake := splitLines(buf.Bytes())[:1]
	if !strings.Contains(fake[0], `,"method":"audit/close"`) {
		t.Fatalf("test record lacks the nested member: %s", fake[0])
	}
	res, _ = Verify(strings.NewReader(joinLines(append(fake, chainLines(t, 1)...))))
	if res.OK {
		t.Fatalf("a record whose arguments name the close method ended the chain: %s", res)
	}
}
