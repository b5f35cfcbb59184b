package demo

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// privateFiles checks that dir is 0700 and every file in it 0600.
func privateFiles(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("demo directory %s has mode %v, want 0700", dir, fi.Mode().Perm())
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), fi.Mode().Perm())
		}
	}
	for _, f := range []string{ConfigFile, SalesforceKeyFile, ClientSecretFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// Without Options.Dir the demo writes into a new private directory (not a
// fixed, shared /tmp/mandate-demo that another local user could create
// first, or whose config.yaml the running demo re-reads), a new one per
// run; every file is 0600.
func TestDefaultDirIsPrivate(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// Someone else's shared directory at the old fixed path is not used.
	shared := filepath.Join(tmp, "mandate-demo")
	if err := os.Mkdir(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(shared, 0o777); err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for range 2 {
		d, err := Start(testCtx(t), Options{})
		if err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, d.Dir)
		if filepath.Dir(d.Dir) != tmp || !strings.HasPrefix(filepath.Base(d.Dir), DefaultDirName) || d.Dir == shared {
			t.Errorf("demo directory %s, want a new mandate-demo* directory in %s", d.Dir, tmp)
		}
		if filepath.Dir(d.ConfigPath) != d.Dir || filepath.Dir(d.AuditPath) != d.Dir {
			t.Errorf("files outside the demo directory: %s %s", d.ConfigPath, d.AuditPath)
		}
		privateFiles(t, d.Dir)
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		privateFiles(t, d.Dir) // the audit log included
	}
	if dirs[0] == dirs[1] {
		t.Errorf("two runs shared the directory %s", dirs[0])
	}
	if ents, _ := os.ReadDir(shared); len(ents) > 0 {
		t.Errorf("the demo wrote into the shared %s", shared)
	}
}

// An explicit directory gets 0600 files too (also over an existing
// config.yaml with looser permissions); one that other users may write to
// is refused.
func TestExplicitDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte("# old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	d, err := Start(testCtx(t), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	privateFiles(t, dir)
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	open := filepath.Join(t.TempDir(), "open")
	if err := os.Mkdir(open, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	d, err = Start(testCtx(t), Options{Dir: open})
	if err == nil {
		d.Close()
		t.Fatalf("a world-writable demo directory was accepted")
	}
	if !strings.Contains(err.Error(), open) || !strings.Contains(err.Error(), "writable by other users") {
		t.Errorf("error %q does not name the directory and the problem", err)
	}
	if ents, _ := os.ReadDir(open); len(ents) > 0 {
		t.Errorf("files were written into the refused directory")
	}
}
