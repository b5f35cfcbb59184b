package sandbox

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A SOSL subset:
//
//	FIND {term} [IN ALL|NAME|EMAIL|PHONE FIELDS]
//	[RETURNING Type[(field, … [WHERE cond] [ORDER BY …] [LIMIT n])][, …]]
//	[LIMIT n]
//
// The term is one or more words, all of which must match (implicit AND); a
// word ending in * matches as a prefix. Words match at token boundaries of
// the searched text fields, case-insensitively.

const (
	maxSOSLLength   = 100000
	maxSearchResult = 2000 // SOSL returns at most 2,000 records
)

type soslWord struct {
	text   string // lower-case, without the trailing *
	prefix bool
}

type soslReturn struct {
	obj     *sobject
	objPos  int
	fields  []fieldRef
	where   expr
	orderBy []orderItem
	limit   int // -1: none
}

type soslQuery struct {
	words     []soslWord
	scope     string // ALL, NAME, EMAIL, PHONE
	returning []soslReturn
	limit     int // -1: none
}

func malformedSearch(pos int, format string, args ...any) *queryError {
	return &queryError{code: "MALFORMED_SEARCH", msg: fmt.Sprintf(format, args...), pos: pos}
}

// parseSOSL parses a SOSL statement.
func parseSOSL(src string) (*soslQuery, *queryError) {
	if len(src) > maxSOSLLength {
		return nil, malformedSearch(-1, "SOSL statements cannot be longer than 100,000 characters.")
	}
	i := 0
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	if len(src)-i < 4 || !strings.EqualFold(src[i:i+4], "FIND") {
		return nil, malformedSearch(i, "unexpected token: '%s'", clip(firstWord(src[i:])))
	}
	i += 4
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	if i >= len(src) || src[i] != '{' {
		return nil, malformedSearch(i, "No search term found. The search term must be enclosed in braces.")
	}
	start := i + 1
	j := start
	var term strings.Builder
	for {
		if j >= len(src) {
			return nil, malformedSearch(j, "No search term found. The search term must be enclosed in braces.")
		}
		c := src[j]
		if c == '\\' && j+1 < len(src) {
			term.WriteByte(src[j+1])
			j += 2
			continue
		}
		if c == '}' {
			break
		}
		term.WriteByte(c)
		j++
	}
	q := &soslQuery{scope: "ALL", limit: -1}
	for _, w := range strings.Fields(term.String()) {
		w = strings.Trim(w, `"`)
		if w == "" || strings.EqualFold(w, "AND") || !strings.ContainsFunc(w, isWordRune) {
			continue // operators and punctuation-only words
		}
		word := soslWord{text: strings.ToLower(w)}
		if strings.HasSuffix(word.text, "*") {
			word.prefix = true
			word.text = strings.TrimRight(word.text, "*")
		}
		if utf8.RuneCountInString(word.text) < 2 {
			return nil, &queryError{code: "INVALID_SEARCH", msg: "search term must be longer than one character: " + clip(w), pos: -1}
		}
		if len(q.words) >= 32 {
			return nil, &queryError{code: "INVALID_SEARCH", msg: "search term has too many words", pos: -1}
		}
		q.words = append(q.words, word)
	}
	if len(q.words) == 0 {
		return nil, &queryError{code: "INVALID_SEARCH", msg: "search term must be longer than one character: " + clip(term.String()), pos: -1}
	}
	toks, qerr := lex(src, j+1)
	if qerr != nil {
		qerr.code = "MALFORMED_SEARCH"
		return nil, qerr
	}
	p := &parser{src: src, toks: toks}
	res, qerr := p.parseSOSLRest(q)
	if qerr != nil && qerr.code == "MALFORMED_QUERY" {
		qerr.code = "MALFORMED_SEARCH"
	}
	return res, qerr
}

func firstWord(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return "<EOF>"
}

func (p *parser) parseSOSLRest(q *soslQuery) (*soslQuery, *queryError) {
	if isKw(p.peek(), "IN") {
		p.next()
		t := p.next()
		switch {
		case isKw(t, "ALL"), isKw(t, "NAME"), isKw(t, "EMAIL"), isKw(t, "PHONE"):
			q.scope = strings.ToUpper(t.text)
		default:
			return nil, unexpected(t)
		}
		if err := p.expectKw("FIELDS"); err != nil {
			return nil, err
		}
	}
	if isKw(p.peek(), "RETURNING") {
		p.next()
		seen := map[string]bool{}
		for {
			t := p.next()
			if t.kind != tIdent {
				return nil, unexpected(t)
			}
			obj := schema[strings.ToLower(t.text)]
			if obj == nil {
				return nil, invalidType(t.pos, t.text)
			}
			if seen[obj.name] {
				return nil, malformedSearch(t.pos, "duplicate entity: %s", obj.name)
			}
			seen[obj.name] = true
			r := soslReturn{obj: obj, objPos: t.pos, limit: -1}
			if isPunct(p.peek(), "(") {
				p.next()
				fseen := map[string]bool{}
				for {
					ft := p.next()
					if ft.kind != tIdent {
						return nil, unexpected(ft)
					}
					f, err := resolveField(obj, ft)
					if err != nil {
						return nil, err
					}
					if fseen[strings.ToLower(f.name())] {
						return nil, malformedSearch(ft.pos, "duplicate field selected: %s", f.name())
					}
					fseen[strings.ToLower(f.name())] = true
					r.fields = append(r.fields, f)
					if !isPunct(p.peek(), ",") {
						break
					}
					p.next()
				}
				if isKw(p.peek(), "WHERE") {
					p.next()
					e, err := p.parseOr(obj)
					if err != nil {
						return nil, err
					}
					r.where = e
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
					r.orderBy = items
				}
				if isKw(p.peek(), "LIMIT") {
					p.next()
					n, err := p.parseCount()
					if err != nil {
						return nil, err
					}
					r.limit = n
				}
				if err := p.expectPunct(")"); err != nil {
					return nil, err
				}
			}
			q.returning = append(q.returning, r)
			if !isPunct(p.peek(), ",") {
				break
			}
			p.next()
		}
	}
	if isKw(p.peek(), "LIMIT") {
		p.next()
		n, err := p.parseCount()
		if err != nil {
			return nil, err
		}
		q.limit = n
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, unexpected(t)
	}
	return q, nil
}

// searchFields returns the fields of obj that the scope searches.
func searchFields(obj *sobject, scope string) []*fieldDef {
	var out []*fieldDef
	for i := range obj.fields {
		f := &obj.fields[i]
		if f.searchGroup == "" {
			continue
		}
		if scope == "ALL" || strings.EqualFold(scope, f.searchGroup) {
			out = append(out, f)
		}
	}
	return out
}

// soslMatch reports whether every word matches one of the record's fields.
func soslMatch(rec map[string]any, fields []*fieldDef, words []soslWord) bool {
	for _, w := range words {
		found := false
		for _, f := range fields {
			s, ok := rec[f.name].(string)
			if ok && wordIn(strings.ToLower(s), w) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

func isWordRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) }

// wordIn finds w in text at a token boundary (and ending at one unless w is
// a prefix search).
func wordIn(text string, w soslWord) bool {
	for off := 0; off <= len(text); {
		i := strings.Index(text[off:], w.text)
		if i < 0 {
			return false
		}
		i += off
		before, _ := utf8.DecodeLastRuneInString(text[:i])
		startOK := i == 0 || !isWordRune(before)
		end := i + len(w.text)
		after, _ := utf8.DecodeRuneInString(text[end:])
		endOK := w.prefix || end == len(text) || !isWordRune(after)
		if startOK && endOK {
			return true
		}
		_, n := utf8.DecodeRuneInString(text[i:])
		off = i + max(n, 1)
	}
	return false
}
