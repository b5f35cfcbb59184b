package gateway

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEveryPackageHasDoc: every package of the module (tests, testdata,
// hidden directories and nested modules aside) has a package comment, the
// first place a reader looks (`go doc`, pkg.go.dev).
func TestEveryPackageHasDoc(t *testing.T) {
	root := ".."
	hasGo := map[string]bool{}  // directory → has non-test Go files
	hasDoc := map[string]bool{} // directory → one of them has a package comment
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			if path != root {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // another module
				}
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err != nil {
			return err
		}
		dir := filepath.Dir(path)
		hasGo[dir] = true
		if f.Doc != nil && strings.HasPrefix(strings.TrimSpace(f.Doc.Text()), "Package "+f.Name.Name+" ") ||
			f.Doc != nil && f.Name.Name == "main" {
			hasDoc[dir] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(hasGo) < 10 {
		t.Fatalf("found only %d packages under %s: walking the wrong tree?", len(hasGo), root)
	}
	for dir := range hasGo {
		if !hasDoc[dir] {
			t.Errorf("%s: no package comment (a doc.go starting \"Package <name> ...\")", filepath.ToSlash(dir))
		}
	}
}
