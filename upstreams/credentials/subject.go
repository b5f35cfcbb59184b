package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/template"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/internal/identity"
)

// maxSubjectLen bounds a rendered platform username.
const maxSubjectLen = 512

// subjectFuncs are the functions a subject template may call. None has side
// effects or reaches outside its arguments.
var subjectFuncs = template.FuncMap{
	"lower":      strings.ToLower,
	"upper":      strings.ToUpper,
	"trim":       strings.TrimSpace,
	"trimPrefix": func(prefix, s string) string { return strings.TrimPrefix(s, prefix) },
	"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
	"replace":    func(old, new, s string) string { return strings.ReplaceAll(s, old, new) },
	"split":      func(sep, s string) []string { return strings.Split(s, sep) },
	"join":       func(sep string, xs []string) string { return strings.Join(xs, sep) },
	"first": func(xs []string) string {
		if len(xs) == 0 {
			return ""
		}
		return xs[0]
	},
	"last": func(xs []string) string {
		if len(xs) == 0 {
			return ""
		}
		return xs[len(xs)-1]
	},
	"default": func(def string, v any) string {
		if s, ok := v.(string); ok && s != "" {
			return s
		}
		if v != nil {
			if s := fmt.Sprint(v); s != "" {
				return s
			}
		}
		return def
	},
}

// subjectData is what a subject template sees. Claim values are data: a
// claim holding "{{ ... }}" is printed, never parsed.
type subjectData struct {
	Issuer  string
	Subject string
	Email   string
	Roles   []string
	Groups  []string
	Claims  map[string]any
}

func parseSubjectTemplate(text string) (*template.Template, error) {
	if len(text) > 4096 {
		return nil, errors.New("template longer than 4096 bytes")
	}
	t, err := template.New("subject").Funcs(subjectFuncs).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("template: %v", strings.TrimPrefix(err.Error(), "template: "))
	}
	return t, nil
}

// checkSubjectFields runs the template once on a sample identity and
// reports a reference to a field the identity does not have (a typo such
// as .Emial), which would otherwise fail only at a user's first call.
// Errors that depend on the user (a missing claim, an empty result) are
// not reported.
func checkSubjectFields(t *template.Template) error {
	d := subjectData{Issuer: "https://idp.example/", Subject: "sample", Email: "sample@example.com",
		Roles: []string{"sample"}, Groups: []string{"sample"}, Claims: map[string]any{}}
	err := t.Execute(&limitWriter{w: new(bytes.Buffer), n: maxSubjectLen}, d)
	if err != nil && strings.Contains(err.Error(), "can't evaluate field") {
		msg := err.Error()
		if i := strings.Index(msg, "can't evaluate field"); i >= 0 {
			msg = msg[i:]
		}
		return fmt.Errorf("template: %s (fields: .Issuer .Subject .Email .Roles .Groups .Claims.<name>)", strings.Replace(msg, "credentials.subjectData", "the identity", 1))
	}
	return nil
}

// subjectMapper computes the platform username of an identity.
type subjectMapper struct {
	tmpl    *template.Template
	mapping map[string]string // nil: no map file
	mapFile string
}

func newSubjectMapper(text, mapFile string) (*subjectMapper, error) {
	t, err := parseSubjectTemplate(orString(text, DefaultSubject))
	if err != nil {
		return nil, err
	}
	m := &subjectMapper{tmpl: t, mapFile: mapFile}
	if mapFile != "" {
		data, err := os.ReadFile(mapFile)
		if err != nil {
			return nil, err
		}
		if m.mapping, err = parseSubjectMap(data); err != nil {
			return nil, fmt.Errorf("%s: %w", mapFile, err)
		}
	}
	return m, nil
}

// parseSubjectMap reads a YAML (or JSON, a YAML subset) object of string to
// string.
func parseSubjectMap(data []byte) (map[string]string, error) {
	var m map[string]string
	if err := yaml.Unmarshal(data, &m); err != nil {
		// yaml.v3 refuses some JSON (e.g. invalid UTF-8 escapes) that
		// encoding/json accepts; the entries are checked either way.
		m = nil
		if jerr := json.Unmarshal(data, &m); jerr != nil {
			return nil, fmt.Errorf("subject map must be a YAML or JSON object of IdP subject to platform username: %v", err)
		}
	}
	for k, v := range m {
		if k == "" {
			return nil, errors.New("empty IdP subject as a key")
		}
		if err := checkUsername(v); err != nil {
			return nil, fmt.Errorf("entry %q: %v", k, err)
		}
	}
	if m == nil {
		m = map[string]string{}
	}
	return m, nil
}

// render returns the platform username of id.
func (m *subjectMapper) render(id *identity.Identity) (string, error) {
	d := subjectData{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Roles: id.Roles, Groups: id.Groups, Claims: id.Claims}
	if d.Claims == nil {
		d.Claims = map[string]any{}
	}
	var b bytes.Buffer
	if err := m.tmpl.Execute(&limitWriter{w: &b, n: maxSubjectLen}, d); err != nil {
		return "", fmt.Errorf("subject template: %v", strings.TrimPrefix(err.Error(), "template: "))
	}
	s := b.String()
	if m.mapping != nil {
		u, ok := m.mapping[s]
		if !ok {
			return "", fmt.Errorf("no platform username is mapped for %q in %s", s, m.mapFile)
		}
		s = u
	}
	if err := checkUsername(s); err != nil {
		return "", fmt.Errorf("subject template result: %v", err)
	}
	return s, nil
}

// checkUsername refuses empty names and any control character, so a claim
// holding CR/LF cannot smuggle anything into headers or logs.
func checkUsername(s string) error {
	if strings.TrimSpace(s) == "" {
		return errors.New("empty platform username")
	}
	if len(s) > maxSubjectLen {
		return fmt.Errorf("platform username longer than %d bytes", maxSubjectLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\uFFFD' {
			return errors.New("platform username contains a control character")
		}
	}
	return nil
}

// limitWriter fails once more than n bytes are written.
type limitWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.w.Len()+len(p) > l.n {
		return 0, fmt.Errorf("result longer than %d bytes", l.n)
	}
	return l.w.Write(p)
}
