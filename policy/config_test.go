package policy

import (
	"go/ast"
	"go/parser"
	"go/token"
	"reflect"
	"strings"
	"testing"
)

// TestConfigFieldsDocumented keeps the config reference honest: every
// field of the yaml structs has a yaml tag and a doc comment.
func TestConfigFieldsDocumented(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "config.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"Config": true, "Rule": true, "RateLimit": true}
	ast.Inspect(f, func(n ast.Node) bool {
		ts, ok := n.(*ast.TypeSpec)
		if !ok || !want[ts.Name.Name] {
			return true
		}
		delete(want, ts.Name.Name)
		for _, fld := range ts.Type.(*ast.StructType).Fields.List {
			name := fld.Names[0].Name
			if fld.Doc == nil || strings.TrimSpace(fld.Doc.Text()) == "" {
				t.Errorf("%s.%s has no doc comment", ts.Name.Name, name)
			}
			if fld.Tag == nil || reflect.StructTag(strings.Trim(fld.Tag.Value, "`")).Get("yaml") == "" {
				t.Errorf("%s.%s has no yaml tag", ts.Name.Name, name)
			}
		}
		return true
	})
	for name := range want {
		t.Errorf("type %s not found in config.go", name)
	}
}

func TestConfigDecodeStrict(t *testing.T) {
	t.Parallel()
	var c Config
	decodeStrict(t, []byte(`
default: allow
rules:
  - name: a
    effect: deny
    when: 'tool == "x"'
    description: text
rate_limits:
  - upstream: "*"
    requests_per_second: 0.5
    burst: 3
`), &c)
	want := Config{Default: "allow",
		Rules:      []Rule{{Name: "a", Effect: "deny", When: `tool == "x"`, Description: "text"}},
		RateLimits: []RateLimit{{Upstream: "*", RequestsPerSecond: 0.5, Burst: 3}}}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("decoded %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Error(err)
	}
}
