package sandbox

// Rendering records as the Table API does: sysparm_display_value,
// sysparm_fields, reference fields, and the paging and query options
// (sysparm_limit, sysparm_offset, sysparm_query).

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
)

// ---- rendering ----

type displayMode int

const (
	displayFalse displayMode = iota
	displayTrue
	displayAll
)

type renderOptions struct {
	fields      []string // nil: all
	display     displayMode
	excludeLink bool
	// inputDisplay is sysparm_input_display_value: written reference
	// values are display values to look up (else stored as given).
	inputDisplay bool
	query        *encodedQuery
	limit        int
	offset       int
	// user is the caller, for field-level read ACLs (fieldacl.go).
	user *User
}

func parseRenderOptions(t *tableSpec, q url.Values) (*renderOptions, *queryError) {
	o := &renderOptions{limit: MaxLimit}
	if f := q.Get("sysparm_fields"); f != "" {
		if len(f) > maxQueryLength {
			return nil, qerr("sysparm_fields longer than %d characters", maxQueryLength)
		}
		seen := map[string]bool{}
		for _, name := range strings.Split(f, ",") {
			name = strings.TrimSpace(name)
			// ServiceNow silently omits unknown fields from sysparm_fields.
			if name == "" || seen[name] || checkField(t, name) != nil {
				continue
			}
			seen[name] = true
			o.fields = append(o.fields, name)
		}
		if o.fields == nil {
			o.fields = []string{}
		}
	}
	switch strings.ToLower(q.Get("sysparm_display_value")) {
	case "true":
		o.display = displayTrue
	case "all":
		o.display = displayAll
	}
	o.excludeLink = strings.EqualFold(q.Get("sysparm_exclude_reference_link"), "true")
	o.inputDisplay = strings.EqualFold(q.Get("sysparm_input_display_value"), "true")
	if l := q.Get("sysparm_limit"); l != "" {
		if n, err := strconv.Atoi(l); err == nil && n > 0 {
			o.limit = min(n, MaxLimit)
		}
	}
	if off := q.Get("sysparm_offset"); off != "" {
		if n, err := strconv.Atoi(off); err == nil && n > 0 {
			o.offset = n
		}
	}
	eq, err := parseEncodedQuery(t, q.Get("sysparm_query"))
	if err != nil {
		return nil, err
	}
	o.query = eq
	return o, nil
}

// orderedObj is a JSON object that keeps its keys in insertion order.
type orderedObj struct {
	keys []string
	vals []any
}

func (o *orderedObj) set(k string, v any) {
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

func (o *orderedObj) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range o.keys {
		if i > 0 {
			b.WriteByte(',')
		}
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		vb, err := json.Marshal(o.vals[i])
		if err != nil {
			return nil, err
		}
		b.Write(vb)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func (s *Server) lookupLocked(table, sysID string) map[string]string {
	if sysID == "" {
		return nil
	}
	return s.rows[table][sysID]
}

func (s *Server) displayOfLocked(table, sysID string) string {
	rec := s.lookupLocked(table, sysID)
	if rec == nil {
		return ""
	}
	return rec[tables[table].display]
}

func (s *Server) renderLocked(base string, t *tableSpec, rec map[string]string, o *renderOptions) *orderedObj {
	names := o.fields
	if names == nil {
		names = make([]string, len(t.fields))
		for i, f := range t.fields {
			names[i] = f.name
		}
	}
	ev := &evaluator{table: t, lookup: s.lookupLocked}
	out := &orderedObj{}
	for _, name := range names {
		v, f := ev.value(rec, name)
		var link, display string
		display = v
		if !canReadField(o.user, t.name, name) {
			// A field the read ACL denies comes back empty (fieldacl.go).
			v, display, f = "", "", nil
		} else if _, ok := journalFields[name]; ok && t.name == "incident" {
			// A journal field has no value of its own; its display value
			// is the journal (journal.go).
			v, display = "", s.journalDisplayLocked(rec["sys_id"], name)
		}
		if f != nil {
			switch f.kind {
			case kRef:
				if v != "" {
					link = base + "/api/now/table/" + f.ref + "/" + v
				}
				display = s.displayOfLocked(f.ref, v)
			case kChoice:
				if label, ok := f.choices[v]; ok {
					display = label
				}
			}
		}
		switch o.display {
		case displayTrue:
			out.set(name, display)
		case displayAll:
			obj := &orderedObj{}
			obj.set("display_value", display)
			obj.set("value", v)
			if link != "" && !o.excludeLink {
				obj.set("link", link)
			}
			out.set(name, obj)
		default:
			if link != "" && !o.excludeLink {
				obj := &orderedObj{}
				obj.set("link", link)
				obj.set("value", v)
				out.set(name, obj)
			} else {
				out.set(name, v)
			}
		}
	}
	return out
}

type resultBody struct {
	Result any `json:"result"`
}
