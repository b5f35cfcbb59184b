package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/gateway/config"
	"github.com/mandate-gw/mandate/internal/secret"
)

// The configuration reference (docs/configuration.md) is checked against the
// Go config structs so it cannot drift. The convention, stated at the top of
// that file:
//
//   - Every configuration key is one table row whose first cell is the full
//     dotted key path in backticks and whose second cell is its type:
//     | `upstreams[].credentials.token_url` | string | default | example | description |
//     A list of objects is written `name[]`; a key inside it continues the path.
//   - Types are: string, secret, duration, integer, number, boolean,
//     list of strings, map of strings, map of lists of strings.
//   - Every ```yaml block in docs/*.md is a configuration fragment rooted at
//     the top level; it must decode strictly (no unknown key, right types).
//
// docsDir is relative to this package.
const docsDir = "../docs"

// configKey is one key path of the configuration and its documented type.
type configKey struct {
	path string
	typ  string // "" for sections (structs, lists of structs)
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	secretType   = reflect.TypeFor[secret.String]()
)

// configKeys walks t by its yaml tags and returns every key path: leaves
// with their type, and sections with typ "".
func configKeys(t reflect.Type, prefix string) ([]configKey, error) {
	var out []configKey
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		inline := strings.Contains(opts, "inline")
		if name == "" && !inline {
			return nil, fmt.Errorf("%s%s (%s): exported field without a yaml tag", prefix, f.Name, t)
		}
		path := prefix + name
		ft := f.Type
		switch {
		case inline && ft.Kind() == reflect.Struct:
			sub, err := configKeys(ft, prefix)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case ft == durationType || ft == secretType:
			out = append(out, configKey{path, typeName(ft)})
		case ft.Kind() == reflect.Struct:
			out = append(out, configKey{path: path})
			sub, err := configKeys(ft, path+".")
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != durationType:
			out = append(out, configKey{path: path + "[]"})
			sub, err := configKeys(ft.Elem(), path+"[].")
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		default:
			tn := typeName(ft)
			if tn == "" {
				return nil, fmt.Errorf("%s: type %s has no documented type name; extend typeName", path, ft)
			}
			out = append(out, configKey{path, tn})
		}
	}
	return out, nil
}

// typeName is the type as docs/configuration.md writes it.
func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == secretType:
		return "secret"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list of strings"
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.Slice && t.Elem().Elem().Kind() == reflect.String {
			return "map of lists of strings"
		}
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return "map of strings"
		}
	}
	return ""
}

// docRow is one key row of the reference.
type docRow struct {
	path, typ string
	line      int
}

var rowRE = regexp.MustCompile("^\\|\\s*`([^`]+)`\\s*\\|\\s*([^|]*?)\\s*\\|")

// docRows returns the key rows of a markdown file: table rows whose first
// cell is a single backticked key path.
func docRows(t *testing.T, data []byte) []docRow {
	t.Helper()
	var rows []docRow
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		if m := rowRE.FindStringSubmatch(sc.Text()); m != nil {
			rows = append(rows, docRow{path: m[1], typ: m[2], line: n})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func readDoc(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(docsDir + "/" + name)
	if err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	return data
}

func allConfigKeys(t *testing.T) (leaves map[string]string, sections map[string]bool) {
	t.Helper()
	keys, err := configKeys(reflect.TypeFor[Config](), "")
	if err != nil {
		t.Fatal(err)
	}
	leaves, sections = map[string]string{}, map[string]bool{}
	for _, k := range keys {
		if k.typ == "" {
			sections[k.path] = true
		} else {
			leaves[k.path] = k.typ
		}
	}
	return leaves, sections
}

// TestDocsConfigReferenceMatchesStructs: every key of the config structs has
// a row with its type in docs/configuration.md, and every row names a key
// that exists.
func TestDocsConfigReferenceMatchesStructs(t *testing.T) {
	t.Parallel()
	leaves, sections := allConfigKeys(t)
	if len(leaves) < 50 {
		t.Fatalf("walked only %d keys; the walk is broken", len(leaves))
	}
	rows := docRows(t, readDoc(t, "configuration.md"))
	documented := map[string]int{}
	for _, r := range rows {
		if prev, dup := documented[r.path]; dup {
			t.Errorf("configuration.md:%d: `%s` is documented twice (also line %d)", r.line, r.path, prev)
		}
		documented[r.path] = r.line
		want, isLeaf := leaves[r.path]
		switch {
		case isLeaf && r.typ != want:
			t.Errorf("configuration.md:%d: `%s` has type %q, the struct says %q", r.line, r.path, r.typ, want)
		case !isLeaf && !sections[r.path]:
			t.Errorf("configuration.md:%d: `%s` is not a configuration key (renamed or removed?)", r.line, r.path)
		}
	}
	var missing []string
	for p := range leaves {
		if _, ok := documented[p]; !ok {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("configuration.md: key `%s` (%s) is not documented: add a row | `%s` | %s | default | example | description |", p, leaves[p], p, leaves[p])
	}
}

// yamlKeyPaths lists the key paths of a YAML document, with sequences as [].
func yamlKeyPaths(n *yaml.Node, prefix string, out map[string]int) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			yamlKeyPaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if prefix != "" {
				p = prefix + "." + p
			}
			if _, seen := out[p]; !seen {
				out[p] = n.Content[i].Line
			}
			yamlKeyPaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Kind == yaml.MappingNode {
				yamlKeyPaths(c, prefix+"[]", out)
			}
		}
	}
}

// TestDocsExampleConfigKeysDocumented: every key used in the root
// config.yaml is a documented configuration key.
func TestDocsExampleConfigKeysDocumented(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		t.Fatal(err)
	}
	used := map[string]int{}
	yamlKeyPaths(&root, "", used)
	if len(used) == 0 {
		t.Fatal("config.yaml has no keys")
	}
	leaves, sections := allConfigKeys(t)
	documented := map[string]bool{}
	for _, r := range docRows(t, readDoc(t, "configuration.md")) {
		documented[r.path] = true
	}
	for p, line := range used {
		_, isLeaf := leaves[p]
		isSection := sections[p] || sections[p+"[]"]
		switch {
		case !isLeaf && !isSection:
			t.Errorf("config.yaml:%d: %s is not a configuration key", line, p)
		case isLeaf && !documented[p]:
			t.Errorf("config.yaml:%d: %s is not documented in docs/configuration.md", line, p)
		}
	}
}

var yamlBlockRE = regexp.MustCompile("(?ms)^```yaml\\n(.*?)^```")

// TestDocsYAMLExamplesDecode: every yaml block in docs/*.md is a
// configuration fragment that decodes strictly, so an example never shows a
// key that does not exist or a value of the wrong type. (Fragments are not
// validated as a whole: they may omit required keys.)
func TestDocsYAMLExamplesDecode(t *testing.T) {
	t.Parallel()
	entries, err := os.ReadDir(docsDir)
	if err != nil {
		t.Fatal(err)
	}
	anyEnv := func(string) (string, bool) { return "x", true }
	blocks := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		data := readDoc(t, e.Name())
		for _, m := range yamlBlockRE.FindAllSubmatchIndex(data, -1) {
			blocks++
			line := bytes.Count(data[:m[2]], []byte("\n")) + 1
			name := fmt.Sprintf("%s:%d", e.Name(), line)
			var c Config
			if _, err := config.Decode(name, data[m[2]:m[3]], &c, anyEnv); err != nil {
				var ps config.Problems
				if !errors.As(err, &ps) {
					t.Errorf("yaml example at %s does not decode: %v", name, err)
					continue
				}
				for _, p := range ps {
					// Lines are relative to the block; report them in the file.
					t.Errorf("%s:%d: yaml example does not decode: %s: %s", e.Name(), line+p.Line-1, p.Path, p.Msg)
				}
			}
		}
	}
	if blocks == 0 {
		t.Fatal("no yaml examples found in docs/")
	}
}

// TestDocsCompleteExampleIsValid: the complete example of
// docs/configuration.md (the yaml block after the "Complete example"
// heading) passes full validation, apart from files it names.
func TestDocsCompleteExampleIsValid(t *testing.T) {
	t.Parallel()
	data := readDoc(t, "configuration.md")
	_, rest, ok := bytes.Cut(data, []byte("\n## Complete example"))
	if !ok {
		t.Fatal(`configuration.md has no "## Complete example" section`)
	}
	m := yamlBlockRE.FindSubmatch(rest)
	if m == nil {
		t.Fatal("no yaml block in the complete example section")
	}
	vars := map[string]string{}
	for _, v := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllSubmatch(m[1], -1) {
		vars[string(v[1])] = "example-value-of-" + string(v[1])
	}
	_, err := ParseConfig("complete-example.yaml", m[1], env(vars))
	if err == nil {
		return
	}
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatal(err)
	}
	for _, p := range ps {
		// The example names key files and secret files that exist only in
		// a real deployment; everything else must be valid.
		if strings.HasSuffix(p.Path, "_file") && strings.Contains(p.Msg, "no such file") {
			continue
		}
		t.Errorf("complete example: %v", p)
	}
}

// TestDocsConfigKeysWalk pins the walk itself on a few known paths.
func TestDocsConfigKeysWalk(t *testing.T) {
	t.Parallel()
	leaves, sections := allConfigKeys(t)
	for p, typ := range map[string]string{
		"server.listen":                              "string",
		"server.session.idle_timeout":                "duration",
		"upstreams[].credentials.token_url":          "string",
		"upstreams[].credentials.client_secret":      "secret",
		"upstreams[].credentials.scopes":             "list of strings",
		"upstreams[].credentials.actor_token":        "boolean",
		"policy.rate_limits[].requests_per_second":   "number",
		"policy.rules[].when":                        "string",
		"upstreams[].salesforce.max_records":         "integer",
		"admin.token":                                "secret",
		"identity.claims.subject":                    "string",
		"audit.fsync_interval":                       "duration",
		"telemetry.traces":                           "string",
		"catalog.separator":                          "string",
		"server.max_body_bytes":                      "integer",
		"upstreams[].credentials.assertion_lifetime": "duration",
	} {
		if leaves[p] != typ {
			t.Errorf("%s: type %q, want %q", p, leaves[p], typ)
		}
	}
	for _, p := range []string{"server", "server.session", "upstreams[]", "upstreams[].credentials", "policy.rules[]", "identity.claims"} {
		if !sections[p] {
			t.Errorf("section %s not found", p)
		}
	}
	if _, ok := leaves["upstreams"]; ok {
		t.Error("upstreams is a list of objects, not a leaf")
	}
}

// goFiles returns the contents of the repository's .go files (tests when
// tests is true, non-test sources otherwise), skipping vendor-like dirs.
func goFiles(t *testing.T, tests bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != ".." && (strings.HasPrefix(n, ".") || n == "node_modules" || n == "testdata") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") != tests {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out[path] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestDocsCitedTestsExist: every test, fuzz target or benchmark the docs
// cite (`TestX`, `FuzzX`, `BenchmarkX` in backticks) exists in the
// repository, so the security page's "which test proves it" cannot rot.
func TestDocsCitedTestsExist(t *testing.T) {
	t.Parallel()
	defined := map[string]bool{}
	funcRE := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)[A-Za-z0-9_]*)\(`)
	for _, src := range goFiles(t, true) {
		for _, m := range funcRE.FindAllStringSubmatch(src, -1) {
			defined[m[1]] = true
		}
	}
	citeRE := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z][A-Za-z0-9_]*)`")
	entries, err := os.ReadDir(docsDir)
	if err != nil {
		t.Fatal(err)
	}
	cited := 0
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".md") {
			continue
		}
		for _, m := range citeRE.FindAllSubmatch(readDoc(t, e.Name()), -1) {
			cited++
			if !defined[string(m[1])] {
				t.Errorf("%s cites %s, which no _test.go file defines (renamed or removed?)", e.Name(), m[1])
			}
		}
	}
	if cited == 0 {
		t.Fatal("no cited tests found; the pattern is broken")
	}
}

// TestDocsTelemetryNamesExist: every metric instrument, span and attribute
// name the operations page cites (backticked names starting with mcp.,
// mandate., credentials. or policy.) is a string literal in the sources.
func TestDocsTelemetryNamesExist(t *testing.T) {
	t.Parallel()
	var all strings.Builder
	for _, src := range goFiles(t, false) {
		all.WriteString(src)
	}
	srcText := all.String()
	nameRE := regexp.MustCompile("`((?:mcp|mandate|credentials|policy)\\.[a-z_.]*[a-z_])`")
	n := 0
	for _, m := range nameRE.FindAllSubmatch(readDoc(t, "operations.md"), -1) {
		n++
		if !strings.Contains(srcText, `"`+string(m[1])+`"`) {
			t.Errorf("operations.md names %s, which is not a string literal in any source file", m[1])
		}
	}
	if n < 20 {
		t.Fatalf("found only %d telemetry names in operations.md; the pattern is broken", n)
	}
}
