package sandbox

// SOQL evaluation: matching records against a parsed WHERE clause,
// comparisons per field type, LIKE patterns and ORDER BY.

import (
	"strings"
	"time"
	"unicode/utf8"
)

// ---- evaluation ----

// evalCtx resolves relationship fields (nil when the related record is
// missing or not visible to the caller) and supplies "now".
type evalCtx struct {
	now     time.Time
	related func(rel *relation, id string) map[string]any
	user    *User // the caller, for field-level security
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
