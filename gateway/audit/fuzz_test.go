package audit

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// FuzzVerify: Verify never panics on arbitrary input, and its result is
// consistent: either intact, or broken at a line after Records intact lines.
// Seeds are in testdata/fuzz/FuzzVerify (intact chains, edited lines, junk).
func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := Verify(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("Verify returned an error for in-memory input: %v", err)
		}
		if res.OK {
			if res.BrokenLine != 0 || res.Reason != "" {
				t.Fatalf("OK result with a break: %+v", res)
			}
			if n := bytes.Count(data, []byte{'\n'}); res.Records < n {
				t.Fatalf("OK with %d records for %d lines", res.Records, n)
			}
		} else if res.BrokenLine != res.Records+1 || res.Reason == "" {
			t.Fatalf("inconsistent broken result: %+v", res)
		}
		_ = res.String()
	})
}

// FuzzResume: New on a file with arbitrary content either refuses it or
// continues it so that the new record is intact and links to the file.
func FuzzResume(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("garbage"))
	f.Add([]byte("garbage\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "audit.log")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
		if err != nil {
			return
		}
		r := sampleRecord(1)
		if err := l.Log(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		out, _ := os.ReadFile(path)
		if !bytes.HasPrefix(out, data) {
			t.Fatal("New modified existing content")
		}
		lines := bytes.Split(bytes.TrimSuffix(out, []byte{'\n'}), []byte{'\n'})
		last := lines[len(lines)-1]
		if _, reason := parseLine(newVerifier(VerifyOptions{}).h, last); reason != "" {
			t.Fatalf("new record is not intact: %s", reason)
		}
		if r.Seq > 1 {
			res, _ := Verify(bytes.NewReader(out))
			if res.LastHash != r.Hash && res.OK {
				t.Fatalf("chain does not end with the new record: %s", res)
			}
		}
	})
}
