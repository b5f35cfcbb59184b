package servicenow

// Field names of model-written encoded queries are checked against the
// table's dictionary before the query runs. ServiceNow ignores a condition
// on a field the table does not have and runs the rest of the query
// (system property glide.invalid_query.returns_no_rows, false by default;
// docs: "Encoded query strings", "Available system properties"), so a
// misspelled field in a query the model wrote would return MORE records
// than it asked for, silently. The dictionary is read through the Table
// API as the calling user: sys_db_object for the table and the tables it
// extends (super_class: incident's number, state and assigned_to are
// defined on task), then sys_dictionary for their fields. The field list of
// a table is cached per upstream (one cache per Adapter) and per platform
// user for dictTTL: what one user's dictionary shows never decides another
// user's query (ACLs on sys_dictionary differ between users).

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams/rest"
)

const (
	// dictTTL is how long a table's field list is reused before it is read
	// again (a new custom field becomes usable in queries after at most this).
	dictTTL = 10 * time.Minute
	// dictMaxTables bounds the cache; beyond it expired entries, then
	// arbitrary ones, are dropped.
	dictMaxTables = 512
	// maxTableDepth bounds the super_class chain followed (task → incident
	// is 2; the deepest base tables are a handful).
	maxTableDepth = 8
	// maxDotWalk bounds the dot-walked segments of one query field.
	maxDotWalk = 4
	// maxDictionaryRows bounds one sys_dictionary read.
	maxDictionaryRows = 10000
)

// tableFields are a table's fields, inherited ones included: field name →
// the table it references ("" when it is not a reference).
type tableFields map[string]string

type dictEntry struct {
	fields  tableFields
	expires time.Time
}

// dictCache caches tableFields per (platform user, table) for one upstream. Safe for
// concurrent use; concurrent misses each read the dictionary.
type dictCache struct {
	mu  sync.Mutex
	m   map[string]dictEntry
	now func() time.Time
}

func newDictCache() *dictCache { return &dictCache{m: map[string]dictEntry{}, now: time.Now} }

func (d *dictCache) get(table string) tableFields {
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.m[table]
	if !ok || !d.now().Before(e.expires) {
		return nil
	}
	return e.fields
}

func (d *dictCache) put(table string, f tableFields) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if len(d.m) >= dictMaxTables {
		for k, e := range d.m {
			if !now.Before(e.expires) || len(d.m) >= dictMaxTables {
				delete(d.m, k)
			}
		}
	}
	d.m[table] = dictEntry{fields: f, expires: now.Add(dictTTL)}
}

// dictError is a refusal to run a query whose fields could not be checked
// or are not the table's; its text is the tool error.
type dictError struct{ msg string }

func (e *dictError) Error() string { return e.msg }

// tableFields returns the fields of table as this user's dictionary shows
// them (cached per upstream and user for dictTTL: the platform user, or
// the gateway identity it runs for; not cached when neither is known).
func (c *call) tableFields(table string) (tableFields, error) {
	key := ""
	if tok := c.Token(); tok != nil && tok.PlatformSubject != "" {
		key = "p:" + tok.PlatformSubject + "\x00" + table
	} else if id := identity.FromContext(c.Context()); id != nil {
		key = "i:" + id.Key() + "\x00" + table // the platform user is that of this identity
	}
	if key != "" {
		if f := c.a.dict.get(key); f != nil {
			return f, nil
		}
	}
	chain := make([]string, 0, 2)
	for cur := table; cur != "" && len(chain) < maxTableDepth; {
		rows, err := c.rows("sys_db_object", "name="+cur, "name,super_class.name", 1)
		if err != nil {
			return nil, err
		}
		if len(rows) == 0 {
			if cur == table {
				return nil, &dictError{fmt.Sprintf("ServiceNow shows %s no table %q (in sys_db_object): it does not exist, or this user may not read its definition. Mandate checks the field names of a query against the table's dictionary before running it, so it does not run this one.", who(c.Token()), table)}
			}
			break
		}
		chain = append(chain, cur)
		next := str(rows[0]["super_class.name"])
		if next != "" && !reTable.MatchString(next) {
			return nil, fmt.Errorf("ServiceNow answered with an unexpected super_class %q for table %s", rest.Clip(next, 80), cur)
		}
		cur = next
	}
	rows, err := c.rows("sys_dictionary", "nameIN"+strings.Join(chain, ",")+"^elementISNOTEMPTY", "element,reference.name", maxDictionaryRows)
	if err != nil {
		return nil, err
	}
	f := make(tableFields, len(rows))
	for _, r := range rows {
		if el := str(r["element"]); el != "" {
			f[el] = str(r["reference.name"])
		}
	}
	if len(f) == 0 {
		return nil, &dictError{fmt.Sprintf("ServiceNow's dictionary (sys_dictionary) shows %s no fields of table %q, so Mandate cannot check the field names of the query and does not run it. ServiceNow's ACLs may keep this user from reading the dictionary; ask your ServiceNow administrator.", who(c.Token()), table)}
	}
	if key != "" {
		c.a.dict.put(key, f)
	}
	return f, nil
}

// rows reads up to limit records of a table (raw values, no reference
// links) for the adapter's own lookups.
func (c *call) rows(table, query, fields string, limit int) ([]map[string]any, error) {
	q := url.Values{
		"sysparm_query": {query}, "sysparm_fields": {fields}, "sysparm_limit": {strconv.Itoa(limit)},
		"sysparm_display_value": {"false"}, "sysparm_exclude_reference_link": {"true"},
	}
	resp, err := c.Do(http.MethodGet, "/api/now/table/"+table, q, nil)
	if err != nil {
		return nil, err
	}
	var body struct {
		Result []map[string]any `json:"result"`
	}
	if err := c.DecodeJSON(resp.Body, &body); err != nil {
		return nil, err
	}
	return body.Result, nil
}

// QueryFields returns the field names an encoded query uses (conditions,
// ORDERBY, ORDERBYDESC, GROUPBY), each once, in order. It refuses parts it
// cannot read as one of those: a part that does not start with a field
// name or has no operator, which ServiceNow would ignore.
func QueryFields(q string) ([]string, error) {
	var fields []string
	seen := map[string]bool{}
	for _, term := range splitTerms(q) {
		switch {
		case term == "" || term == "EQ":
			continue
		case strings.HasPrefix(term, "NQ"):
			term = term[2:]
		}
		if strings.HasPrefix(term, "OR") && len(term) > 2 && isFieldStart(term[2]) {
			term = term[2:]
		}
		field, ordering := "", false
		for _, kw := range []string{"ORDERBYDESC", "ORDERBY", "GROUPBY"} {
			if strings.HasPrefix(term, kw) {
				field, ordering = term[len(kw):], true
				break
			}
		}
		if !ordering {
			i := 0
			for i < len(term) && isFieldByte(term[i]) {
				i++
			}
			field = term[:i]
			if field == "" {
				return nil, fmt.Errorf("query: %q does not start with a field name; Mandate runs only conditions (field, operator, value), ORDERBY, ORDERBYDESC and GROUPBY parts, joined with ^, ^OR and ^NQ", rest.Clip(term, 80))
			}
			if i == len(term) {
				return nil, fmt.Errorf("query: condition %q has no operator (such as =, !=, LIKE, IN, ISEMPTY); ServiceNow would ignore it", rest.Clip(term, 80))
			}
		}
		if !reQueryField.MatchString(field) {
			return nil, fmt.Errorf("query: %q is not a field name (lower-case letters, digits and underscores, dot-walked with at most %d dots, e.g. caller_id.email)", rest.Clip(field, 80), maxDotWalk-1)
		}
		if !seen[field] {
			seen[field] = true
			fields = append(fields, field)
		}
	}
	return fields, nil
}

var reQueryField = regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+){0,3}$`)

func isFieldStart(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9') || b == '_' }
func isFieldByte(b byte) bool  { return isFieldStart(b) || b == '.' }

// splitTerms splits an encoded query at every ^. A value cannot carry a
// ^: were "^^" an escape on some instance, splitting at each ^ still errs
// on the side of refusing (the part after it has no operator), never of
// letting a part through unchecked.
func splitTerms(q string) []string { return strings.Split(q, "^") }

// checkQueryFields refuses a query that names a field the table (or, for
// dot-walked fields, a referenced table) does not have. A *dictError's
// text is for the user; other errors are the platform's.
func (c *call) checkQueryFields(table, query string) error {
	fields, err := QueryFields(query)
	if err != nil {
		return &dictError{err.Error()}
	}
	for _, name := range fields {
		tbl := table
		segs := strings.Split(name, ".")
		for i, seg := range segs {
			tf, err := c.tableFields(tbl)
			if err != nil {
				return err
			}
			ref, ok := tf[seg]
			if !ok {
				what := fmt.Sprintf("table %s has no field %q", tbl, seg)
				if i > 0 {
					what = fmt.Sprintf("%s (%s references table %s, which has no field %q)", fmt.Sprintf("the query's field %q is unknown", name), strings.Join(segs[:i], "."), tbl, seg)
				}
				return &dictError{fmt.Sprintf("query: %s. ServiceNow would silently ignore that part and return more records than asked for, so Mandate refuses the query; check the field name (ServiceNow's dictionary, sys_dictionary, lists the table's fields).", what)}
			}
			if i < len(segs)-1 {
				if ref == "" {
					return &dictError{fmt.Sprintf("query: field %q of table %s is not a reference, so %q cannot be dot-walked; ServiceNow would ignore that part and return more records than asked for.", seg, tbl, name)}
				}
				tbl = ref
			}
		}
	}
	return nil
}

// asDictError reports whether err is a refusal whose text is for the user.
func asDictError(err error) (*dictError, bool) {
	var d *dictError
	ok := errors.As(err, &d)
	return d, ok
}
