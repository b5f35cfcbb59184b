package sandbox

// The SOQL parser: the query's syntax tree and a recursive-descent parser
// over the tokens of lex (soql.go), with Salesforce-shaped errors.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// ---- AST ----

type fieldRef struct {
	rel *relation // nil for a field of the queried object
	def *fieldDef
	pos int
}

func (f fieldRef) name() string {
	if f.rel != nil {
		return f.rel.name + "." + f.def.name
	}
	return f.def.name
}

type litKind int

const (
	litNull litKind = iota
	litString
	litNumber
	litBool
	litDate
	litDateTime
	litDateKeyword // TODAY, YESTERDAY, TOMORROW
)

type literal struct {
	kind litKind
	s    string // string value, date "YYYY-MM-DD", keyword name
	n    float64
	b    bool
	t    time.Time
}

type expr interface{ isExpr() }

type andExpr struct{ l, r expr }
type orExpr struct{ l, r expr }
type notExpr struct{ e expr }
type cmpExpr struct {
	f  fieldRef
	op string // = != < <= > >=
	v  literal
}
type inExpr struct {
	f    fieldRef
	vals []literal
	not  bool
}
type likeExpr struct {
	f       fieldRef
	pattern string // escaped with \% \_ \\ for literal characters
}

func (andExpr) isExpr()  {}
func (orExpr) isExpr()   {}
func (notExpr) isExpr()  {}
func (cmpExpr) isExpr()  {}
func (inExpr) isExpr()   {}
func (likeExpr) isExpr() {}

type orderItem struct {
	f          fieldRef
	desc       bool
	nullsFirst bool
}

type soqlQuery struct {
	obj      *sobject
	objPos   int
	scope    string // USING SCOPE filterScope, lower case; "" when absent
	scopePos int    // offset of USING
	count    bool   // SELECT COUNT()
	fields   []fieldRef
	where    expr
	orderBy  []orderItem
	limit    int // -1: none
	offset   int
}

// ---- parser ----

type parser struct {
	src   string
	toks  []token
	i     int
	depth int
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func isKw(t token, kw string) bool { return t.kind == tIdent && strings.EqualFold(t.text, kw) }
func isPunct(t token, s string) bool {
	return t.kind == tPunct && t.text == s
}

func unexpected(t token) *queryError {
	if t.kind == tEOF {
		return malformed(t.pos, "unexpected token: <EOF>")
	}
	text := t.text
	if t.kind == tString {
		text = "'" + text + "'"
	}
	return malformed(t.pos, "unexpected token: '%s'", clip(text))
}

func (p *parser) expectKw(kw string) *queryError {
	if t := p.next(); !isKw(t, kw) {
		return unexpected(t)
	}
	return nil
}

func (p *parser) expectPunct(s string) *queryError {
	if t := p.next(); !isPunct(t, s) {
		return unexpected(t)
	}
	return nil
}

// parseSOQL parses a SOQL statement.
func parseSOQL(src string) (*soqlQuery, *queryError) {
	if len(src) > maxSOQLLength {
		return nil, &queryError{code: "MALFORMED_QUERY", msg: "SOQL statements cannot be longer than 100,000 characters.", pos: -1}
	}
	toks, err := lex(src, 0)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if err := p.expectKw("SELECT"); err != nil {
		return nil, err
	}
	// Field list, resolved after FROM names the object.
	var raw []token
	count := false
	if t := p.peek(); isKw(t, "COUNT") && p.i+1 < len(p.toks) && isPunct(p.toks[p.i+1], "(") {
		p.next()
		p.next()
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		count = true
	} else {
		for {
			t := p.next()
			if t.kind != tIdent || isKw(t, "FROM") {
				return nil, unexpected(t)
			}
			raw = append(raw, t)
			if !isPunct(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	if err := p.expectKw("FROM"); err != nil {
		return nil, err
	}
	objTok := p.next()
	if objTok.kind != tIdent {
		return nil, unexpected(objTok)
	}
	obj := schema[strings.ToLower(objTok.text)]
	if obj == nil {
		return nil, invalidType(objTok.pos, objTok.text)
	}
	q := &soqlQuery{obj: obj, objPos: objTok.pos, count: count, limit: -1}
	seen := map[string]bool{}
	for _, t := range raw {
		f, err := resolveField(obj, t)
		if err != nil {
			return nil, err
		}
		key := strings.ToLower(f.name())
		if seen[key] {
			return nil, malformed(t.pos, "duplicate field selected: %s", f.name())
		}
		seen[key] = true
		q.fields = append(q.fields, f)
	}
	if isKw(p.peek(), "USING") {
		if err := p.parseScope(q); err != nil {
			return nil, err
		}
	}
	if isKw(p.peek(), "WHERE") {
		p.next()
		e, err := p.parseOr(obj)
		if err != nil {
			return nil, err
		}
		q.where = e
	}
	if isKw(p.peek(), "ORDER") {
		p.next()
		if err := p.expectKw("BY"); err != nil {
			return nil, err
		}
		items, err := p.parseOrderBy(obj)
		if err != nil {
			return nil, err
		}
		q.orderBy = items
	}
	if isKw(p.peek(), "LIMIT") {
		p.next()
		n, err := p.parseCount()
		if err != nil {
			return nil, err
		}
		q.limit = n
	}
	if isKw(p.peek(), "OFFSET") {
		p.next()
		t := p.peek()
		n, err := p.parseCount()
		if err != nil {
			return nil, err
		}
		if n > maxOffset {
			return nil, &queryError{code: "NUMBER_OUTSIDE_VALID_RANGE", msg: "Maximum SOQL offset allowed is 2000", pos: t.pos}
		}
		q.offset = n
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, unexpected(t)
	}
	return q, nil
}

// USING SCOPE filter scopes the sandbox implements. SOQL and SOSL
// Reference, "USING SCOPE"
// (https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_using_scope.htm):
// "[USING SCOPE filterScope]" follows FROM (API version 32.0 and later);
// "everything: Filter for all records", "mine: Filter for records owned by
// the user running the query", "team: Filter for records assigned to a
// team". The scopes an object supports are its describe's supportedScopes;
// the page's Account example labels team "My team's accounts", and Salesforce
// Help "Considerations and Guidelines for Using Opportunity Teams" defines
// the matching list view filter "My team's opportunities" as "opportunities
// owned by your direct and indirect reports, based on role hierarchy" —
// which is what team means here. A scope only narrows what sharing
// already lets the user see.
const (
	scopeEverything = "everything"
	scopeMine       = "mine"
	scopeTeam       = "team"
)

// supportedScopes lists each object's scopes (describe's supportedScopes).
var supportedScopes = map[string][]string{
	"Account":     {scopeEverything, scopeMine, scopeTeam},
	"Contact":     {scopeEverything, scopeMine},
	"Opportunity": {scopeEverything, scopeMine, scopeTeam},
	"Case":        {scopeEverything, scopeMine},
	"User":        {scopeEverything},
}

// parseScope parses USING SCOPE filterScope (the scope name is
// case-insensitive: the reference writes both Mine and mine). The
// documentation names no error for a scope the object does not support;
// the sandbox answers MALFORMED_QUERY at the scope.
func (p *parser) parseScope(q *soqlQuery) *queryError {
	q.scopePos = p.next().pos // USING
	if err := p.expectKw("SCOPE"); err != nil {
		return err
	}
	t := p.next()
	if t.kind != tIdent {
		return unexpected(t)
	}
	name := strings.ToLower(t.text)
	for _, s := range supportedScopes[q.obj.name] {
		if s == name {
			q.scope = name
			return nil
		}
	}
	return malformed(t.pos, "Invalid scope: %s is not a supported scope for %s (supported: %s)", clip(t.text), q.obj.name, strings.Join(supportedScopes[q.obj.name], ", "))
}

func invalidType(pos int, name string) *queryError {
	return &queryError{code: "INVALID_TYPE", pos: pos, msg: fmt.Sprintf("sObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", clip(name))}
}

func (p *parser) parseCount() (int, *queryError) {
	t := p.next()
	if t.kind != tNumber {
		return 0, unexpected(t)
	}
	n, err := strconv.Atoi(t.text)
	if err != nil || n < 0 {
		return 0, &queryError{code: "NUMBER_OUTSIDE_VALID_RANGE", msg: fmt.Sprintf("Invalid number: %s", clip(t.text)), pos: t.pos}
	}
	return n, nil
}

func resolveField(obj *sobject, t token) (fieldRef, *queryError) {
	parts := strings.Split(t.text, ".")
	switch len(parts) {
	case 1:
		if d := obj.field(parts[0]); d != nil {
			return fieldRef{def: d, pos: t.pos}, nil
		}
	case 2:
		rel, ok := obj.relations[strings.ToLower(parts[0])]
		if !ok {
			return fieldRef{}, &queryError{code: "INVALID_FIELD", pos: t.pos, msg: fmt.Sprintf("Didn't understand relationship '%s' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.", clip(parts[0]))}
		}
		target := schema[strings.ToLower(rel.target)]
		if d := target.field(parts[1]); d != nil {
			r := rel
			return fieldRef{rel: &r, def: d, pos: t.pos}, nil
		}
		return fieldRef{}, noSuchColumn(t.pos, parts[1], target.name)
	}
	return fieldRef{}, noSuchColumn(t.pos, t.text, obj.name)
}

func noSuchColumn(pos int, field, obj string) *queryError {
	return &queryError{code: "INVALID_FIELD", pos: pos, msg: fmt.Sprintf("No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", clip(field), obj)}
}

func (p *parser) parseOr(obj *sobject) (expr, *queryError) {
	l, err := p.parseAnd(obj)
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "OR") {
		p.next()
		r, err := p.parseAnd(obj)
		if err != nil {
			return nil, err
		}
		l = orExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseAnd(obj *sobject) (expr, *queryError) {
	l, err := p.parseNot(obj)
	if err != nil {
		return nil, err
	}
	for isKw(p.peek(), "AND") {
		p.next()
		r, err := p.parseNot(obj)
		if err != nil {
			return nil, err
		}
		l = andExpr{l, r}
	}
	return l, nil
}

func (p *parser) parseNot(obj *sobject) (expr, *queryError) {
	if isKw(p.peek(), "NOT") {
		t := p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxNesting {
			return nil, &queryError{code: "QUERY_TOO_COMPLICATED", msg: "Query is either selecting too many fields or the filter conditions are too complicated.", pos: t.pos}
		}
		e, err := p.parseNot(obj)
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	}
	return p.parsePrimary(obj)
}

func (p *parser) parsePrimary(obj *sobject) (expr, *queryError) {
	t := p.next()
	if isPunct(t, "(") {
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxNesting {
			return nil, &queryError{code: "QUERY_TOO_COMPLICATED", msg: "Query is either selecting too many fields or the filter conditions are too complicated.", pos: t.pos}
		}
		e, err := p.parseOr(obj)
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return e, nil
	}
	if t.kind != tIdent {
		return nil, unexpected(t)
	}
	f, err := resolveField(obj, t)
	if err != nil {
		return nil, err
	}
	op := p.next()
	switch {
	case op.kind == tPunct && op.text != "(" && op.text != ")" && op.text != ",":
		v, err := p.parseLiteral(f)
		if err != nil {
			return nil, err
		}
		sym := op.text
		if sym == "<>" {
			sym = "!="
		}
		if sym != "=" && sym != "!=" {
			if f.def.typ == ftBool || f.def.typ == ftID {
				return nil, malformed(op.pos, "invalid operator on %s field", f.def.typ)
			}
			if v.kind == litNull {
				return nil, malformed(op.pos, "invalid operator for null value")
			}
		}
		return cmpExpr{f: f, op: sym, v: v}, nil
	case isKw(op, "LIKE"):
		if f.def.typ != ftString {
			return nil, malformed(op.pos, "invalid operator on %s field", f.def.typ)
		}
		s := p.next()
		if s.kind != tString {
			return nil, unexpected(s)
		}
		pat, ok := unescapeSOQL(s.text, true)
		if !ok {
			return nil, malformed(s.pos, "Invalid string literal '%s'. Illegal character sequence '\\' in string literal.", clip(s.text))
		}
		return likeExpr{f: f, pattern: pat}, nil
	case isKw(op, "IN"), isKw(op, "NOT") && isKw(p.peek(), "IN"):
		not := isKw(op, "NOT")
		if not {
			p.next()
		}
		if err := p.expectPunct("("); err != nil {
			return nil, err
		}
		var vals []literal
		for {
			v, err := p.parseLiteral(f)
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
			if !isPunct(p.peek(), ",") {
				break
			}
			p.next()
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return inExpr{f: f, vals: vals, not: not}, nil
	}
	return nil, unexpected(op)
}

// parseLiteral parses a value and checks it against the field's type, the
// way Salesforce reports "value of filter criterion for field …".
func (p *parser) parseLiteral(f fieldRef) (literal, *queryError) {
	t := p.next()
	var v literal
	switch {
	case t.kind == tString:
		s, ok := unescapeSOQL(t.text, false)
		if !ok {
			return v, malformed(t.pos, "Invalid string literal '%s'. Illegal character sequence '\\' in string literal.", clip(t.text))
		}
		v = literal{kind: litString, s: s}
	case t.kind == tNumber:
		n, _ := strconv.ParseFloat(t.text, 64)
		if math.IsInf(n, 0) || math.IsNaN(n) {
			return v, unexpected(t)
		}
		v = literal{kind: litNumber, n: n}
	case t.kind == tDate:
		v = literal{kind: litDate, s: t.text}
	case t.kind == tDateTime:
		tm, _ := parseSOQLDateTime(t.text)
		v = literal{kind: litDateTime, t: tm}
	case isKw(t, "null"):
		return literal{kind: litNull}, nil
	case isKw(t, "true"), isKw(t, "false"):
		v = literal{kind: litBool, b: isKw(t, "true")}
	case isKw(t, "TODAY"), isKw(t, "YESTERDAY"), isKw(t, "TOMORROW"):
		v = literal{kind: litDateKeyword, s: strings.ToUpper(t.text)}
	default:
		return v, unexpected(t)
	}
	ok := false
	switch f.def.typ {
	case ftID, ftString:
		ok = v.kind == litString
	case ftDouble:
		ok = v.kind == litNumber
	case ftBool:
		ok = v.kind == litBool
	case ftDate:
		ok = v.kind == litDate || v.kind == litDateKeyword
	case ftDateTime:
		ok = v.kind == litDateTime || v.kind == litDateKeyword
	}
	if !ok {
		quote := "should not be enclosed in quotes"
		if f.def.typ == ftString || f.def.typ == ftID {
			quote = "should be enclosed in quotes"
		}
		return v, malformed(t.pos, "value of filter criterion for field '%s' must be of type %s and %s", f.name(), f.def.typ, quote)
	}
	return v, nil
}

func (p *parser) parseOrderBy(obj *sobject) ([]orderItem, *queryError) {
	var items []orderItem
	for {
		t := p.next()
		if t.kind != tIdent {
			return nil, unexpected(t)
		}
		f, err := resolveField(obj, t)
		if err != nil {
			return nil, err
		}
		it := orderItem{f: f, nullsFirst: true}
		if isKw(p.peek(), "ASC") {
			p.next()
		} else if isKw(p.peek(), "DESC") {
			p.next()
			it.desc = true
			it.nullsFirst = false
		}
		if isKw(p.peek(), "NULLS") {
			p.next()
			switch n := p.next(); {
			case isKw(n, "FIRST"):
				it.nullsFirst = true
			case isKw(n, "LAST"):
				it.nullsFirst = false
			default:
				return nil, unexpected(n)
			}
		}
		items = append(items, it)
		if !isPunct(p.peek(), ",") {
			return items, nil
		}
		p.next()
	}
}

// scopeVersion reports whether REST API version v ("v62.0") knows USING
// SCOPE: "With API version 32.0 and later".
func scopeVersion(v string) bool {
	n, err := strconv.ParseFloat(strings.TrimPrefix(v, "v"), 64)
	return err == nil && n >= 32
}
