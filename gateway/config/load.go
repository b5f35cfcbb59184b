// Package config loads Mandate's configuration file: strict YAML decoding
// (an unknown key is an error with its line), ${VAR} expansion in string
// values, and validation errors annotated with the line of the key they name.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/internal/secret"
)

// Problem is one configuration error: where it is and what is wrong.
type Problem struct {
	File string
	Line int // 0 when unknown
	Path string
	Msg  string
}

func (p Problem) Error() string {
	loc := p.File
	if p.Line > 0 {
		loc += ":" + strconv.Itoa(p.Line)
	}
	if p.Path == "" {
		return loc + ": " + p.Msg
	}
	return loc + ": " + p.Path + ": " + p.Msg
}

// Problems is every error found in a file, in file order.
type Problems []Problem

func (ps Problems) Error() string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Error())
	}
	return b.String()
}

// Decode strictly decodes data into out (a pointer to a struct with yaml
// tags), expands ${VAR} in every string it decoded using lookup, and returns
// the index of key paths to lines for annotating later validation errors.
// Every problem found is returned as Problems.
func Decode(file string, data []byte, out any, lookup func(string) (string, bool)) (*Index, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, Problems{yamlProblem(file, err)}
	}
	idx := &Index{file: file, lines: map[string]int{}, byLine: map[int]string{}}
	if len(root.Content) == 0 {
		return idx, Problems{{File: file, Msg: "empty configuration"}}
	}
	idx.walk("", root.Content[0])

	var probs Problems
	// Undefined ${VAR}s, with their lines.
	for _, ref := range envRefs(root.Content[0]) {
		if _, ok := lookup(ref.name); !ok {
			probs = append(probs, Problem{File: file, Line: ref.line, Path: ref.path,
				Msg: fmt.Sprintf("environment variable %s is not set", ref.name)})
		}
	}
	probs = append(probs, literalSecrets(file, "", root.Content[0], reflect.TypeOf(out))...)
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(out); err != nil {
		for _, p := range yamlProblems(file, err) {
			if p.Path == "" && p.Line > 0 {
				p.Path = idx.byLine[p.Line]
			}
			if m := unknownFieldRE.FindStringSubmatch(p.Msg); m != nil {
				p.Msg = fmt.Sprintf("unknown key %q (misspelled? see docs/configuration.md)", m[1])
			}
			probs = append(probs, p)
		}
	}
	if len(probs) > 0 {
		sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
		return idx, probs
	}
	if err := expand(reflect.ValueOf(out), lookup); err != nil {
		return idx, Problems{{File: file, Msg: err.Error()}}
	}
	return idx, nil
}

// Index maps key paths (server.listen, upstreams[crm].url, upstreams[0].url)
// to the line that holds them.
type Index struct {
	file   string
	lines  map[string]int
	byLine map[int]string
}

// Line returns the line of path, or of its nearest ancestor; 0 if unknown.
func (x *Index) Line(path string) int {
	for p := path; p != ""; p = parent(p) {
		if l, ok := x.lines[p]; ok {
			return l
		}
	}
	return 0
}

func parent(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i <= 0 {
		return ""
	}
	return p[:i]
}

func (x *Index) walk(path string, n *yaml.Node) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			x.lines[p] = k.Line
			if _, ok := x.byLine[k.Line]; !ok {
				x.byLine[k.Line] = p
			}
			x.walk(p, v)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			// Named items (upstreams[crm]) first, so errors by line name them.
			if name := mapValue(item, "name"); name != "" {
				np := fmt.Sprintf("%s[%s]", path, name)
				if _, dup := x.lines[np]; !dup {
					x.lines[np] = item.Line
					x.walk(np, item)
				}
			}
			p := fmt.Sprintf("%s[%d]", path, i)
			x.lines[p] = item.Line
			x.walk(p, item)
		}
	}
}

func mapValue(n *yaml.Node, key string) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1].Kind == yaml.ScalarNode {
			return n.Content[i+1].Value
		}
	}
	return ""
}

// Annotate turns a validation error (possibly joined; each message shaped
// "key.path: what is wrong") into Problems with lines.
func (x *Index) Annotate(err error) error {
	if err == nil {
		return nil
	}
	var probs Problems
	for _, e := range flatten(err) {
		msg := e.Error()
		path, rest, ok := strings.Cut(msg, ": ")
		if !ok || strings.ContainsAny(path, " \t") {
			probs = append(probs, Problem{File: x.file, Msg: msg})
			continue
		}
		probs = append(probs, Problem{File: x.file, Line: x.Line(path), Path: path, Msg: rest})
	}
	sort.SliceStable(probs, func(i, j int) bool { return probs[i].Line < probs[j].Line })
	return probs
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	var ps Problems
	if errors.As(err, &ps) {
		out := make([]error, len(ps))
		for i := range ps {
			out[i] = ps[i]
		}
		return out
	}
	return []error{err}
}

var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type`)

var lineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

func yamlProblems(file string, err error) Problems {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var ps Problems
		for _, m := range te.Errors {
			ps = append(ps, lineProblem(file, m))
		}
		return ps
	}
	return Problems{yamlProblem(file, err)}
}

func yamlProblem(file string, err error) Problem {
	return lineProblem(file, strings.TrimPrefix(err.Error(), "yaml: "))
}

func lineProblem(file, msg string) Problem {
	if m := lineRE.FindStringSubmatch(msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Problem{File: file, Line: n, Msg: m[2]}
	}
	return Problem{File: file, Msg: msg}
}

var secretType = reflect.TypeFor[secret.String]()

// envOnlyRE is a value that is exactly one ${VAR} reference.
var envOnlyRE = regexp.MustCompile(`^\$\{[A-Za-z_][A-Za-z0-9_]*\}$`)

// literalSecrets reports secret keys (fields of type secret.String) whose
// value is written in the file instead of referring to the environment:
// secrets come only from ${VAR} or a *_file key, so a configuration in git
// never holds one.
func literalSecrets(file, path string, n *yaml.Node, t reflect.Type) []Problem {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		var out []Problem
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1]
			f, ok := fieldByTag(t, k)
			if !ok {
				continue
			}
			p := k
			if path != "" {
				p = path + "." + k
			}
			if f.Type != secretType {
				out = append(out, literalSecrets(file, p, v, f.Type)...)
				continue
			}
			val := v
			if val.Kind == yaml.AliasNode && val.Alias != nil {
				val = val.Alias // *anchor of a literal written under another key
			}
			if val.Kind == yaml.ScalarNode && val.Value != "" && !envOnlyRE.MatchString(val.Value) {
				msg := "a secret must not be written in the configuration: use ${ENV_VAR} as the whole value"
				if _, ok := fieldByTag(t, k+"_file"); ok {
					msg += " or " + k + "_file"
				}
				out = append(out, Problem{File: file, Line: v.Line, Path: p, Msg: msg})
			}
		}
		return out
	case (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && n.Kind == yaml.SequenceNode:
		var out []Problem
		for i, item := range n.Content {
			p := fmt.Sprintf("%s[%d]", path, i)
			if name := mapValue(item, "name"); name != "" {
				p = fmt.Sprintf("%s[%s]", path, name)
			}
			out = append(out, literalSecrets(file, p, item, t.Elem())...)
		}
		return out
	}
	return nil
}

// fieldByTag finds the field of struct t decoded from YAML key k (inline
// structs included).
func fieldByTag(t reflect.Type, k string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if opts == "inline" || (f.Anonymous && name == "") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if g, ok := fieldByTag(ft, k); ok {
					return g, true
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == k && f.IsExported() {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// ${VAR} references; $${ escapes a literal ${.
var envRE = regexp.MustCompile(`\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

type envRef struct {
	name, path string
	line       int
}

func envRefs(n *yaml.Node) []envRef {
	var out []envRef
	var visit func(path string, n *yaml.Node)
	visit = func(path string, n *yaml.Node) {
		switch n.Kind {
		case yaml.ScalarNode:
			for _, m := range envRE.FindAllStringSubmatch(n.Value, -1) {
				if m[1] != "" {
					out = append(out, envRef{name: m[1], path: path, line: n.Line})
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := n.Content[i].Value
				if path != "" {
					p = path + "." + p
				}
				visit(p, n.Content[i+1])
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				visit(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	visit("", n)
	return out
}

// ExpandString replaces ${VAR} with its value and $${ with a literal ${.
func ExpandString(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "${") {
		return s
	}
	return envRE.ReplaceAllStringFunc(s, func(m string) string {
		if m == "$${" {
			return "${"
		}
		v, _ := lookup(m[2 : len(m)-1])
		return v
	})
}

// expand walks decoded values and expands every string field in place.
// Expansion happens after decoding, so a variable's value is data and can
// never inject YAML structure.
func expand(v reflect.Value, lookup func(string) (string, bool)) error {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return expand(v.Elem(), lookup)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := expand(v.Field(i), lookup); err != nil {
					return err
				}
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			if err := expand(v.Index(i), lookup); err != nil {
				return err
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			e := v.MapIndex(k)
			if e.Kind() == reflect.String || (e.Kind() == reflect.Interface && e.Elem().Kind() == reflect.String) {
				s := e.String()
				if e.Kind() == reflect.Interface {
					s = e.Elem().String()
				}
				v.SetMapIndex(k, reflect.ValueOf(ExpandString(s, lookup)).Convert(v.Type().Elem()))
			}
		}
	case reflect.String:
		if v.CanSet() {
			v.SetString(ExpandString(v.String(), lookup))
		}
	}
	return nil
}

// ReadSecretFile reads a *_file secret: trimmed of one trailing newline,
// refused if empty or larger than secret.MaxFileBytes (64 KiB).
func ReadSecretFile(path string) (string, error) {
	b, err := secret.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", fmt.Errorf("%s: empty", path)
	}
	return s, nil
}
