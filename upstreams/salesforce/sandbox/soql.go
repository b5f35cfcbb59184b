package sandbox

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file holds a SOQL subset: lexer, parser (with Salesforce-shaped
// error messages) and evaluator.
//
//	SELECT field[, field…] | COUNT()
//	FROM Account|Contact|Opportunity|Case|User
//	[WHERE cond]          cond: field op value | field [NOT] IN (v, …) |
//	                      field LIKE 'pat%' | NOT cond | cond AND/OR cond | (cond)
//	                      op: = != <> < <= > >=
//	                      value: 'string' | number | true | false | null |
//	                      2026-01-31 | 2026-01-31T00:00:00Z | TODAY | YESTERDAY | TOMORROW
//	[ORDER BY field [ASC|DESC] [NULLS FIRST|LAST][, …]]
//	[LIMIT n] [OFFSET n]
//
// Fields may be relationship paths one level deep (Account.Name, Owner.Name).

// Limits from the SOQL documentation.
const (
	maxSOQLLength = 100000 // "SOQL statements cannot be longer than 100,000 characters"
	maxOffset     = 2000   // "Maximum SOQL offset allowed is 2000"
	maxNesting    = 100    // parenthesis depth before QUERY_TOO_COMPLICATED
)

// queryError is a SOQL/SOSL error carrying the Salesforce errorCode.
type queryError struct {
	code string // MALFORMED_QUERY, INVALID_FIELD, INVALID_TYPE, ...
	msg  string
	pos  int // byte offset in the statement; -1 if none
}

func (e *queryError) Error() string { return e.code + ": " + e.msg }

// format renders the message the way Salesforce does: the offending line, a
// caret, the row/column and the reason.
func (e *queryError) format(src string) string {
	if e.pos < 0 || e.pos > len(src) {
		return e.msg
	}
	row, lineStart := 1, 0
	for i := 0; i < e.pos; i++ {
		if src[i] == '\n' {
			row++
			lineStart = i + 1
		}
	}
	lineEnd := strings.IndexByte(src[lineStart:], '\n')
	line := src[lineStart:]
	if lineEnd >= 0 {
		line = src[lineStart : lineStart+lineEnd]
	}
	col := utf8.RuneCountInString(src[lineStart:e.pos]) + 1
	if len(line) > 200 { // keep messages bounded
		line = line[:200]
	}
	return fmt.Sprintf("\n%s\n%s^\nERROR at Row:%d:Column:%d\n%s", line, strings.Repeat(" ", col-1), row, col, e.msg)
}

func malformed(pos int, format string, args ...any) *queryError {
	return &queryError{code: "MALFORMED_QUERY", msg: fmt.Sprintf(format, args...), pos: pos}
}

// ---- lexer ----

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDate
	tDateTime
	tPunct
)

type token struct {
	kind tokKind
	text string // source text (strings: without quotes, still escaped)
	pos  int
}

var (
	reDate     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	reDateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,3})?(Z|[+-]\d{2}:?\d{2})$`)
)

func isIdentStart(c byte) bool { return c == '_' || (c|0x20 >= 'a' && c|0x20 <= 'z') }
func isIdentChar(c byte) bool  { return isIdentStart(c) || (c >= '0' && c <= '9') || c == '.' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }

// lex splits src[start:] into tokens; positions are offsets into src.
func lex(src string, start int) ([]token, *queryError) {
	var toks []token
	i := start
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(src) && isIdentChar(src[j]) {
				j++
			}
			toks = append(toks, token{tIdent, src[i:j], i})
			i = j
		case c == '\'':
			j := i + 1
			for {
				if j >= len(src) {
					return nil, malformed(j, "line 1:%d mismatched character '<EOF>' expecting '''", j)
				}
				if src[j] == '\\' {
					j += 2
					continue
				}
				if src[j] == '\'' {
					break
				}
				j++
			}
			toks = append(toks, token{tString, src[i+1 : j], i})
			i = j + 1
		case isDigit(c) || ((c == '-' || c == '+') && i+1 < len(src) && isDigit(src[i+1])):
			j := i + 1
			for j < len(src) && (isDigit(src[j]) || src[j] == '.' || src[j] == '-' || src[j] == ':' || src[j] == 'T' || src[j] == 'Z' || (src[j] == '+' && j > i+4)) {
				j++
			}
			text := src[i:j]
			switch {
			case reDate.MatchString(text):
				if _, err := time.Parse("2006-01-02", text); err != nil {
					return nil, malformed(i, "line 1:%d no viable alternative at character '%s'", i, text)
				}
				toks = append(toks, token{tDate, text, i})
			case reDateTime.MatchString(text):
				if _, err := parseSOQLDateTime(text); err != nil {
					return nil, malformed(i, "line 1:%d no viable alternative at character '%s'", i, text)
				}
				toks = append(toks, token{tDateTime, text, i})
			default:
				if _, err := strconv.ParseFloat(text, 64); err != nil {
					return nil, malformed(i, "unexpected token: '%s'", clip(text))
				}
				toks = append(toks, token{tNumber, text, i})
			}
			i = j
		case c == '!' || c == '<' || c == '>':
			if i+1 < len(src) && (src[i+1] == '=' || (c == '<' && src[i+1] == '>')) {
				toks = append(toks, token{tPunct, src[i : i+2], i})
				i += 2
			} else if c == '!' {
				return nil, malformed(i, "line 1:%d no viable alternative at character '!'", i)
			} else {
				toks = append(toks, token{tPunct, src[i : i+1], i})
				i++
			}
		case c == '(' || c == ')' || c == ',' || c == '=':
			toks = append(toks, token{tPunct, src[i : i+1], i})
			i++
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, malformed(i, "line 1:%d no viable alternative at character '%s'", i, string(r))
		}
	}
	toks = append(toks, token{tEOF, "", len(src)})
	return toks, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// unescapeSOQL decodes a string literal's escapes. With like=true, \% and \_
// stay escaped so the LIKE matcher can treat them as literals.
func unescapeSOQL(s string, like bool) (string, bool) {
	if !strings.Contains(s, "\\") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i >= len(s) {
			return "", false
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		case 'b':
			b.WriteByte('\b')
		case 'f':
			b.WriteByte('\f')
		case '"', '\'', '\\':
			if like && s[i] == '\\' {
				b.WriteString(`\\`)
			} else {
				b.WriteByte(s[i])
			}
		case '%', '_':
			if like {
				b.WriteByte('\\')
			}
			b.WriteByte(s[i])
		case 'u':
			if i+5 > len(s) {
				return "", false
			}
			n, err := strconv.ParseUint(s[i+1:i+5], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(n))
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}

func parseSOQLDateTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02T15:04:05Z07:00", "2006-01-02T15:04:05.000Z07:00", "2006-01-02T15:04:05Z0700", "2006-01-02T15:04:05.000Z0700", "2006-01-02T15:04:05.999999999Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("invalid datetime %q", s)
}

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
	obj     *sobject
	objPos  int
	count   bool // SELECT COUNT()
	fields  []fieldRef
	where   expr
	orderBy []orderItem
	limit   int // -1: none
	offset  int
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

// ---- evaluation ----

// evalCtx resolves relationship fields (nil when the related record is
// missing or not visible to the caller) and supplies "now".
type evalCtx struct {
	now     time.Time
	related func(rel *relation, id string) map[string]any
}

func (c *evalCtx) value(rec map[string]any, f fieldRef) any {
	if f.rel == nil {
		return rec[f.def.name]
	}
	id, _ := rec[f.rel.field].(string)
	if id == "" {
		return nil
	}
	r := c.related(f.rel, id)
	if r == nil {
		return nil
	}
	return r[f.def.name]
}

func (c *evalCtx) match(rec map[string]any, e expr) bool {
	switch e := e.(type) {
	case nil:
		return true
	case andExpr:
		return c.match(rec, e.l) && c.match(rec, e.r)
	case orExpr:
		return c.match(rec, e.l) || c.match(rec, e.r)
	case notExpr:
		return !c.match(rec, e.e)
	case cmpExpr:
		v := c.value(rec, e.f)
		if e.v.kind == litNull {
			if e.op == "=" {
				return v == nil
			}
			return v != nil
		}
		if v == nil {
			return e.op == "!="
		}
		cmp, ok := c.compare(e.f.def.typ, v, e.v)
		if !ok {
			return false
		}
		switch e.op {
		case "=":
			return cmp == 0
		case "!=":
			return cmp != 0
		case "<":
			return cmp < 0
		case "<=":
			return cmp <= 0
		case ">":
			return cmp > 0
		case ">=":
			return cmp >= 0
		}
		return false
	case inExpr:
		v := c.value(rec, e.f)
		found := false
		for _, l := range e.vals {
			if l.kind == litNull {
				if v == nil {
					found = true
				}
				continue
			}
			if v == nil {
				continue
			}
			if cmp, ok := c.compare(e.f.def.typ, v, l); ok && cmp == 0 {
				found = true
				break
			}
		}
		return found != e.not
	case likeExpr:
		s, ok := c.value(rec, e.f).(string)
		return ok && likeMatch(strings.ToLower(s), strings.ToLower(e.pattern))
	}
	return false
}

func (c *evalCtx) dateKeyword(kw string) string {
	d := c.now.UTC()
	switch kw {
	case "YESTERDAY":
		d = d.AddDate(0, 0, -1)
	case "TOMORROW":
		d = d.AddDate(0, 0, 1)
	}
	return d.Format("2006-01-02")
}

// compare compares a record value with a literal; ok is false when they
// cannot be compared.
func (c *evalCtx) compare(typ fieldType, v any, l literal) (int, bool) {
	switch typ {
	case ftID:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		if idEqual(s, l.s) {
			return 0, true
		}
		return strings.Compare(s, l.s), true
	case ftString:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(strings.ToLower(s), strings.ToLower(l.s)), true
	case ftDouble:
		n, ok := v.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case n < l.n:
			return -1, true
		case n > l.n:
			return 1, true
		}
		return 0, true
	case ftBool:
		b, ok := v.(bool)
		if !ok {
			return 0, false
		}
		if b == l.b {
			return 0, true
		}
		if !b {
			return -1, true
		}
		return 1, true
	case ftDate:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		want := l.s
		if l.kind == litDateKeyword {
			want = c.dateKeyword(l.s)
		}
		return strings.Compare(s, want), true
	case ftDateTime:
		s, ok := v.(string)
		if !ok {
			return 0, false
		}
		t, err := parseSOQLDateTime(s)
		if err != nil {
			return 0, false
		}
		if l.kind == litDateKeyword {
			return strings.Compare(t.UTC().Format("2006-01-02"), c.dateKeyword(l.s)), true
		}
		return t.Compare(l.t), true
	}
	return 0, false
}

// idEqual compares Salesforce ids, accepting the 15-character
// (case-sensitive) form for an 18-character id.
func idEqual(a, b string) bool {
	if a == b {
		return true
	}
	if len(a) >= 15 && len(b) >= 15 && (len(a) == 15 || len(b) == 15) {
		return a[:15] == b[:15]
	}
	return false
}

// likeMatch matches s against a SOQL LIKE pattern: % any run, _ one
// character, \x a literal x. Linear backtracking on the last %; no regexp.
func likeMatch(s, pattern string) bool {
	type pc struct {
		r       rune
		literal bool
	}
	var pat []pc
	for i := 0; i < len(pattern); {
		r, n := utf8.DecodeRuneInString(pattern[i:])
		if r == '\\' && i+n < len(pattern) {
			r2, n2 := utf8.DecodeRuneInString(pattern[i+n:])
			pat = append(pat, pc{r2, true})
			i += n + n2
			continue
		}
		pat = append(pat, pc{r, false})
		i += n
	}
	str := []rune(s)
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(pat) && !pat[pi].literal && pat[pi].r == '%':
			star, mark = pi, si
			pi++
		case pi < len(pat) && ((!pat[pi].literal && pat[pi].r == '_') || pat[pi].r == str[si]):
			si++
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pat) && !pat[pi].literal && pat[pi].r == '%' {
		pi++
	}
	return pi == len(pat)
}

// lessValue orders two record values of one field type for ORDER BY
// (nil handled by the caller).
func lessValue(typ fieldType, a, b any) int {
	switch typ {
	case ftDouble:
		x, _ := a.(float64)
		y, _ := b.(float64)
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	case ftBool:
		x, _ := a.(bool)
		y, _ := b.(bool)
		switch {
		case x == y:
			return 0
		case !x:
			return -1
		}
		return 1
	case ftString:
		x, _ := a.(string)
		y, _ := b.(string)
		return strings.Compare(strings.ToLower(x), strings.ToLower(y))
	default:
		x, _ := a.(string)
		y, _ := b.(string)
		return strings.Compare(x, y)
	}
}
