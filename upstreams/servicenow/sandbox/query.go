package sandbox

import (
	"fmt"
	"strconv"
	"strings"
)

// Limits on encoded queries (ServiceNow caps URLs well below these).
const (
	maxQueryLength = 16 << 10
	maxConditions  = 200
	maxOrderBy     = 10
)

// condition is one encoded-query condition.
type condition struct {
	field string   // possibly dotted: caller_id.email
	op    string   // =, !=, <, <=, >, >=, LIKE, NOT LIKE, STARTSWITH, ENDSWITH, IN, NOT IN, ISEMPTY, ISNOTEMPTY, ANYTHING
	value string   // raw value (javascript:gs.getUserID() resolved at evaluation)
	list  []string // IN / NOT IN values
}

// orClause is a disjunction of conditions; an encoded query (between ^NQ)
// is a conjunction of orClauses.
type orClause []condition

type orderSpec struct {
	field string
	desc  bool
}

type encodedQuery struct {
	groups  [][]orClause // OR'd (^NQ) groups of AND'd clauses
	orderBy []orderSpec
}

// queryError is an invalid encoded query; ServiceNow's body uses message
// "Invalid query" with this detail.
type queryError struct{ detail string }

func (e *queryError) Error() string { return "invalid query: " + e.detail }

func qerr(format string, args ...any) *queryError {
	return &queryError{detail: fmt.Sprintf(format, args...)}
}

// operators in match order (longest first where prefixes overlap).
var operators = []string{
	"ISNOTEMPTY", "ISEMPTY", "ANYTHING", "NOT LIKE", "NOT IN", "STARTSWITH", "ENDSWITH",
	"LIKE", "IN", "!=", ">=", "<=", "=", ">", "<",
}

func isFieldChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'
}

// parseEncodedQuery parses sysparm_query against table t.
func parseEncodedQuery(t *tableSpec, src string) (*encodedQuery, *queryError) {
	if len(src) > maxQueryLength {
		return nil, qerr("query longer than %d characters", maxQueryLength)
	}
	q := &encodedQuery{}
	if strings.TrimSpace(src) == "" {
		return q, nil
	}
	n := 0
	for _, part := range strings.Split(src, "^NQ") {
		var group []orClause
		for _, term := range strings.Split(part, "^") {
			if term == "" || term == "EQ" {
				continue
			}
			if n++; n > maxConditions {
				return nil, qerr("more than %d conditions", maxConditions)
			}
			switch {
			case strings.HasPrefix(term, "ORDERBYDESC"):
				f := term[len("ORDERBYDESC"):]
				if err := checkField(t, f); err != nil {
					return nil, err
				}
				q.orderBy = append(q.orderBy, orderSpec{field: f, desc: true})
				continue
			case strings.HasPrefix(term, "ORDERBY"):
				f := term[len("ORDERBY"):]
				if err := checkField(t, f); err != nil {
					return nil, err
				}
				q.orderBy = append(q.orderBy, orderSpec{field: f})
				continue
			}
			or := strings.HasPrefix(term, "OR") && len(term) > 2 && isFieldChar(term[2])
			if or {
				term = term[2:]
			}
			c, err := parseCondition(t, term)
			if err != nil {
				return nil, err
			}
			if or {
				if len(group) == 0 {
					return nil, qerr("^OR without a preceding condition: %s", clip(term))
				}
				group[len(group)-1] = append(group[len(group)-1], c)
			} else {
				group = append(group, orClause{c})
			}
		}
		if len(group) > 0 || len(q.groups) > 0 {
			q.groups = append(q.groups, group)
		}
	}
	if len(q.orderBy) > maxOrderBy {
		return nil, qerr("more than %d ORDERBY terms", maxOrderBy)
	}
	return q, nil
}

func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

func parseCondition(t *tableSpec, term string) (condition, *queryError) {
	i := 0
	for i < len(term) && isFieldChar(term[i]) {
		i++
	}
	field, rest := term[:i], term[i:]
	if field == "" {
		return condition{}, qerr("malformed condition: %s", clip(term))
	}
	if err := checkField(t, field); err != nil {
		return condition{}, err
	}
	for _, op := range operators {
		if !strings.HasPrefix(rest, op) {
			continue
		}
		c := condition{field: field, op: op, value: rest[len(op):]}
		switch op {
		case "ISEMPTY", "ISNOTEMPTY", "ANYTHING":
			if c.value != "" {
				continue // e.g. a field value starting with these letters; try others
			}
		case "IN", "NOT IN":
			c.list = strings.Split(c.value, ",")
		}
		if strings.HasPrefix(c.value, "javascript:") && !isKnownScript(c.value) {
			return condition{}, qerr("scripted values are not supported: %s", clip(c.value))
		}
		return c, nil
	}
	return condition{}, qerr("malformed condition: %s", clip(term))
}

func isKnownScript(v string) bool {
	switch strings.TrimSpace(strings.TrimPrefix(v, "javascript:")) {
	case "gs.getUserID()", "gs.getUserID();", "gs.getUserName()", "gs.getUserName();":
		return true
	}
	return false
}

// checkField validates a possibly dot-walked field name.
func checkField(t *tableSpec, name string) *queryError {
	base, sub, dotted := strings.Cut(name, ".")
	f := t.field(base)
	if f == nil {
		return qerr("Unknown field %s in table %s", clip(name), t.name)
	}
	if !dotted {
		return nil
	}
	if f.kind != kRef || strings.Contains(sub, ".") {
		return qerr("Unknown field %s in table %s", clip(name), t.name)
	}
	if tables[f.ref].field(sub) == nil {
		return qerr("Unknown field %s in table %s", clip(name), t.name)
	}
	return nil
}

// evaluator resolves field values (with dot-walking) for one caller.
type evaluator struct {
	table  *tableSpec
	lookup func(table, sysID string) map[string]string
	me     *User
}

func (e *evaluator) value(rec map[string]string, name string) (string, *fieldSpec) {
	base, sub, dotted := strings.Cut(name, ".")
	f := e.table.field(base)
	if !dotted {
		return rec[base], f
	}
	ref := e.lookup(f.ref, rec[base])
	if ref == nil {
		return "", tables[f.ref].field(sub)
	}
	return ref[sub], tables[f.ref].field(sub)
}

func (e *evaluator) match(rec map[string]string, q *encodedQuery) bool {
	if len(q.groups) == 0 {
		return true
	}
	for _, group := range q.groups {
		ok := true
		for _, clause := range group {
			hit := false
			for _, c := range clause {
				if e.cond(rec, c) {
					hit = true
					break
				}
			}
			if !hit {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (e *evaluator) resolve(v string) string {
	if !strings.HasPrefix(v, "javascript:") {
		return v
	}
	if strings.Contains(v, "getUserName") {
		return e.me.UserName
	}
	return e.me.SysID
}

func (e *evaluator) cond(rec map[string]string, c condition) bool {
	v, f := e.value(rec, c.field)
	want := e.resolve(c.value)
	lv, lw := strings.ToLower(v), strings.ToLower(want)
	switch c.op {
	case "=":
		return eqValue(f, v, want)
	case "!=":
		return !eqValue(f, v, want)
	case "<", "<=", ">", ">=":
		if v == "" {
			return false
		}
		cmp := compareValues(f, v, want)
		switch c.op {
		case "<":
			return cmp < 0
		case "<=":
			return cmp <= 0
		case ">":
			return cmp > 0
		}
		return cmp >= 0
	case "LIKE":
		return strings.Contains(lv, lw)
	case "NOT LIKE":
		return !strings.Contains(lv, lw)
	case "STARTSWITH":
		return strings.HasPrefix(lv, lw)
	case "ENDSWITH":
		return strings.HasSuffix(lv, lw)
	case "IN", "NOT IN":
		in := false
		for _, item := range c.list {
			if eqValue(f, v, e.resolve(item)) {
				in = true
				break
			}
		}
		return in == (c.op == "IN")
	case "ISEMPTY":
		return v == ""
	case "ISNOTEMPTY":
		return v != ""
	case "ANYTHING":
		return true
	}
	return false
}

func eqValue(f *fieldSpec, v, want string) bool {
	if f != nil && (f.kind == kSysID || f.kind == kRef) {
		return v == want
	}
	return strings.EqualFold(v, want)
}

// compareValues compares numerically when both sides are integers (state,
// priority, …), otherwise as case-insensitive strings (dates are
// "YYYY-MM-DD HH:MM:SS" and compare correctly as strings).
func compareValues(f *fieldSpec, a, b string) int {
	x, errA := strconv.ParseInt(a, 10, 64)
	y, errB := strconv.ParseInt(b, 10, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}
