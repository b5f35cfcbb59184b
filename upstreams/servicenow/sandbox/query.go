package sandbox

import (
	"fmt"
	"slices"
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
	// invalid counts the parts that were dropped: conditions on unknown
	// fields, malformed conditions, ORDERBY on unknown fields.
	invalid int
}

// queryError is a query the sandbox refuses outright (too long, too many
// conditions, a script it cannot run); ServiceNow's body uses message
// "Invalid query" with this detail. Invalid parts of an otherwise
// acceptable query are not errors: they are dropped (encodedQuery.invalid).
type queryError struct {
	detail string
	// invalidPart marks an invalid part of a query (unknown field,
	// malformed condition), which the platform ignores.
	invalidPart bool
}

func (e *queryError) Error() string { return "invalid query: " + e.detail }

func qerr(format string, args ...any) *queryError {
	return &queryError{detail: fmt.Sprintf(format, args...)}
}

// operators in match order (longest first where prefixes overlap).
var operators = []string{
	"ISNOTEMPTY", "ISEMPTY", "ANYTHING", "DYNAMIC", "NOT LIKE", "NOT IN", "STARTSWITH", "ENDSWITH",
	"LIKE", "IN", "!=", ">=", "<=", "=", ">", "<",
}

func isFieldChar(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.'
}

// parseEncodedQuery parses sysparm_query against table t.
//
// Like ServiceNow, invalid parts are ignored rather than refused: a
// condition on a field the table does not have, a malformed condition or an
// ORDERBY on an unknown field is dropped and the rest of the query runs, so
// the answer has MORE rows, not an error. The syntax follows ServiceNow's
// "Encoded query strings" documentation; the dropping follows its system
// property glide.invalid_query.returns_no_rows (docs: "Available system
// properties"; ServiceNow Developer blog "Use this glide sys property to
// prevent data loss"): false by default, in which case the invalid part of
// the query condition is ignored and the results are based on the valid
// part. Options.InvalidQueryReturnsNoRows turns the property on. The count
// of dropped parts is encodedQuery.invalid.
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
			if f, desc, ok := orderByTerm(term); ok {
				if checkField(t, f) != nil {
					q.invalid++
					continue
				}
				q.orderBy = append(q.orderBy, orderSpec{field: f, desc: desc})
				continue
			}
			or := strings.HasPrefix(term, "OR") && len(term) > 2 && isFieldChar(term[2])
			if or {
				term = term[2:]
			}
			c, err := parseCondition(t, term)
			if err != nil {
				if err.invalidPart {
					q.invalid++
					continue
				}
				return nil, err
			}
			if or && len(group) > 0 {
				group[len(group)-1] = append(group[len(group)-1], c)
			} else {
				// An ^OR whose left side was dropped stands alone.
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

func orderByTerm(term string) (field string, desc, ok bool) {
	switch {
	case strings.HasPrefix(term, "ORDERBYDESC"):
		return term[len("ORDERBYDESC"):], true, true
	case strings.HasPrefix(term, "ORDERBY"):
		return term[len("ORDERBY"):], false, true
	}
	return "", false, false
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
		return condition{}, invalidPart("malformed condition: %s", clip(term))
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
		case "DYNAMIC":
			if !knownDynamic[c.value] {
				return condition{}, invalidPart("unknown dynamic filter option %s", clip(c.value))
			}
		}
		if strings.HasPrefix(c.value, "javascript:") && !isKnownScript(c.value) {
			return condition{}, qerr("scripted values are not supported: %s", clip(c.value))
		}
		return c, nil
	}
	return condition{}, invalidPart("malformed condition: %s", clip(term))
}

func invalidPart(format string, args ...any) *queryError {
	e := qerr(format, args...)
	e.invalidPart = true
	return e
}

func isKnownScript(v string) bool {
	switch strings.TrimSpace(strings.TrimPrefix(v, "javascript:")) {
	case "gs.getUserID()", "gs.getUserID();", "gs.getUserName()", "gs.getUserName();", "getMyGroups()", "getMyGroups();":
		return true
	}
	return false
}

// checkField validates a possibly dot-walked field name.
func checkField(t *tableSpec, name string) *queryError {
	base, sub, dotted := strings.Cut(name, ".")
	f := t.field(base)
	if f == nil {
		return invalidPart("Unknown field %s in table %s", clip(name), t.name)
	}
	if !dotted {
		return nil
	}
	if f.kind != kRef || strings.Contains(sub, ".") {
		return invalidPart("Unknown field %s in table %s", clip(name), t.name)
	}
	if tables[f.ref].field(sub) == nil {
		return invalidPart("Unknown field %s in table %s", clip(name), t.name)
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
	if c.op == "DYNAMIC" {
		return e.dynamic(v, c.value)
	}
	if isMyGroups(c.value) && (c.op == "=" || c.op == "!=") {
		// getMyGroups() answers a list; = matches any of it (as IN).
		return e.dynamic(v, DynamicOneOfMyGroups) == (c.op == "=")
	}
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

// Dynamic filter options (sys_filter_option_dynamic) the sandbox knows, by
// sys_id, for the DYNAMIC operator. ServiceNow docs, "Dynamic operators":
// "is (dynamic)" computes the condition value for the current user; the
// default options include Me ("the reference field contains the current
// user") and One of My Groups ("the reference field contains a group to
// which the current user belongs"), e.g.
// assignment_groupDYNAMICd6435e965f510100a9ad2572f2b47744.
const (
	DynamicMe            = "90d1921e5f510100a9ad2572f2b477fe"
	DynamicOneOfMyGroups = "d6435e965f510100a9ad2572f2b47744"
)

var knownDynamic = map[string]bool{DynamicMe: true, DynamicOneOfMyGroups: true}

func (e *evaluator) dynamic(v, option string) bool {
	switch option {
	case DynamicMe:
		return v != "" && v == e.me.SysID
	case DynamicOneOfMyGroups:
		return v != "" && slices.Contains(e.me.Groups, v)
	}
	return false
}

// isMyGroups reports whether v is javascript:getMyGroups(), the global
// function that answers the current user's groups.
func isMyGroups(v string) bool {
	s := strings.TrimSpace(strings.TrimPrefix(v, "javascript:"))
	return strings.HasPrefix(v, "javascript:") && (s == "getMyGroups()" || s == "getMyGroups();")
}
