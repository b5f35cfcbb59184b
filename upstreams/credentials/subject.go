package credentials

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/internal/identity"
)

// maxSubjectLen bounds a rendered platform username.
const maxSubjectLen = 512

// ErrUnverifiedEmail (wrapped in *Error) refuses a subject template that
// reads an email-like value of an identity whose email is not verified.
var ErrUnverifiedEmail = errors.New("email not verified")

// subjectData is what a subject template sees. Claim values are data: a
// claim holding "{{ ... }}" is printed, never parsed. Email is a string, or
// a withheld value when the identity's email is not trusted.
type subjectData struct {
	Issuer  string
	Subject string
	Email   any
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
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			checkPrinted(tt.Tree, tt.Tree.Root)
		}
	}
	return t, nil
}

// checkPrinted appends valueFunc to the pipeline of every action that
// prints, so that each printed value is a string or an integer.
func checkPrinted(tree *parse.Tree, n parse.Node) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			checkPrinted(tree, c)
		}
	case *parse.ActionNode:
		if len(n.Pipe.Decl) > 0 {
			return // an assignment prints nothing
		}
		src := n.String()
		fn := parse.NewIdentifier(valueFunc).SetTree(tree).SetPos(n.Pos)
		arg := &parse.StringNode{NodeType: parse.NodeString, Pos: n.Pos, Quoted: strconv.Quote(src), Text: src}
		n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos, Args: []parse.Node{fn, arg}})
	case *parse.IfNode:
		checkPrinted(tree, n.List)
		checkPrinted(tree, n.ElseList)
	case *parse.RangeNode:
		checkPrinted(tree, n.List)
		checkPrinted(tree, n.ElseList)
	case *parse.WithNode:
		checkPrinted(tree, n.List)
		checkPrinted(tree, n.ElseList)
	}
}

// emailRefs lists the places where template t reads an email-like value:
// .Email, a claim EmailLikeClaim names (.Claims.upn, .Claims.ext.mail, a
// field of a with block), or such a constant key of index. Reads it cannot
// see (a computed key, a range over .Claims) are caught when the template
// runs: an untrusted identity's email-like claims are withheld.
func emailRefs(t *template.Template) []string {
	var refs []string
	add := func(r string) {
		if !slices.Contains(refs, r) {
			refs = append(refs, r)
		}
	}
	var walk func(n parse.Node)
	walkPipe := func(p *parse.PipeNode) {
		if p != nil {
			walk(p)
		}
	}
	walk = func(n parse.Node) {
		switch n := n.(type) {
		case *parse.ListNode:
			if n != nil {
				for _, c := range n.Nodes {
					walk(c)
				}
			}
		case *parse.ActionNode:
			walkPipe(n.Pipe)
		case *parse.PipeNode:
			for _, c := range n.Cmds {
				walk(c)
			}
		case *parse.CommandNode:
			if len(n.Args) > 2 {
				if id, ok := n.Args[0].(*parse.IdentifierNode); ok && id.Ident == "index" {
					for _, a := range n.Args[2:] {
						if s, ok := a.(*parse.StringNode); ok && identity.EmailLikeClaim(s.Text) {
							add(n.String())
						}
					}
				}
			}
			for _, a := range n.Args {
				walk(a)
			}
		case *parse.FieldNode:
			if slices.ContainsFunc(n.Ident, identity.EmailLikeClaim) {
				add(n.String())
			}
		case *parse.VariableNode:
			if slices.ContainsFunc(n.Ident[1:], identity.EmailLikeClaim) {
				add(n.String())
			}
		case *parse.ChainNode:
			if slices.ContainsFunc(n.Field, identity.EmailLikeClaim) {
				add(n.String())
			}
			walk(n.Node)
		case *parse.IfNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.RangeNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.WithNode:
			walkPipe(n.Pipe)
			walk(n.List)
			walk(n.ElseList)
		case *parse.TemplateNode:
			walkPipe(n.Pipe)
		}
	}
	for _, tt := range t.Templates() {
		if tt.Tree != nil {
			walk(tt.Tree.Root)
		}
	}
	return refs
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
	tmpl      *template.Template
	emailRefs []string          // where the template reads email-like values
	mapping   map[string]string // nil: no map file
	mapFile   string
}

// newSubjectMapper compiles the subject template and, when mapFile is set,
// parses mapData, the bytes read from it.
func newSubjectMapper(text, mapFile string, mapData []byte) (*subjectMapper, error) {
	t, err := parseSubjectTemplate(orString(text, DefaultSubject))
	if err != nil {
		return nil, err
	}
	m := &subjectMapper{tmpl: t, emailRefs: emailRefs(t), mapFile: mapFile}
	if mapFile != "" {
		if m.mapping, err = parseSubjectMap(mapData); err != nil {
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

// render returns the platform username of id. An identity whose email is
// not trusted (identity.Identity.EmailTrusted) gets no username from a
// template that reads an email-like value: ErrUnverifiedEmail.
func (m *subjectMapper) render(id *identity.Identity) (string, error) {
	d := subjectData{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Roles: id.Roles, Groups: id.Groups, Claims: id.Claims}
	if !id.EmailTrusted {
		if len(m.emailRefs) > 0 {
			return "", unverifiedEmail(strings.Join(m.emailRefs, ", "))
		}
		d.Email = withheld{".Email"}
		d.Claims = withholdEmailClaims(d.Claims)
	}
	if d.Claims == nil {
		d.Claims = map[string]any{}
	}
	var b bytes.Buffer
	if err := m.tmpl.Execute(&limitWriter{w: &b, n: maxSubjectLen}, d); err != nil {
		var w withheldError
		if errors.Is(err, ErrUnverifiedEmail) && errors.As(err, &w) {
			return "", unverifiedEmail(w.name)
		}
		if errors.Is(err, ErrUnverifiedEmail) {
			return "", unverifiedEmail("an email-like claim")
		}
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

// withheldError is the error a template run ends with when it reads a
// withheld value.
type withheldError struct{ name string }

func (e withheldError) Error() string { return "reads " + e.name }
func (e withheldError) Unwrap() error { return ErrUnverifiedEmail }

// unverifiedEmail is the error for a template that reads what (".Email",
// ".Claims.upn") of an identity whose email is not verified.
func unverifiedEmail(what string) error { return unverifiedEmailError{what} }

type unverifiedEmailError struct{ what string }

func (e unverifiedEmailError) Error() string {
	return "the subject template reads " + e.what + ", which is used only from tokens with email_verified: true (else anyone who can change their own email at the identity provider could act as another platform user); administrators: map an immutable id ({{ .Subject }}, a subject_map_file keyed by it, an employee-id claim) or, if the identity provider issues only verified values, set identity.trust_unverified_email: true"
}

func (e unverifiedEmailError) Is(target error) bool { return target == ErrUnverifiedEmail }

// withholdEmailClaims returns a copy of claims whose email-like claims (at
// any depth) are withheld values.
func withholdEmailClaims(claims map[string]any) map[string]any {
	if claims == nil {
		return nil
	}
	out := make(map[string]any, len(claims))
	for k, v := range claims {
		if identity.EmailLikeClaim(k) {
			out[k] = withheld{"claim " + strconv.Quote(k)}
			continue
		}
		out[k] = withholdIn(v)
	}
	return out
}

func withholdIn(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return withholdEmailClaims(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = withholdIn(e)
		}
		return out
	}
	return v
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
