package sandbox

// The Table API's operations: list (with paging links), get, create,
// update and delete.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ---- handlers ----

// list answers GET /api/now/table/{table} the way the platform does: the
// query runs, the page (sysparm_offset, sysparm_limit) is cut, and only then
// are rows the user may not read removed. So a page can hold fewer rows
// than the limit, or none, while later pages still have readable rows, and
// X-Total-Count counts the rows the query matched before ACLs (ServiceNow
// KB3047115 "Inbound Web Services — Empty or Incomplete Results": ACLs
// filter rows after the query runs, so sysparm_limit=36 can return 12
// records; the UI's "Number of rows removed from this list by Security
// constraints" is the same effect). The Link header pages by the limit,
// not by what was returned.
func (s *Server) list(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, o *renderOptions) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ev := &evaluator{table: t, lookup: s.lookupLocked, me: u}
	var rows []map[string]string
	if o.query.invalid == 0 || !s.invalidNoRows {
		for _, id := range s.order[t.name] {
			if rec := s.rows[t.name][id]; ev.match(rec, o.query) {
				rows = append(rows, rec)
			}
		}
	}
	if len(o.query.orderBy) > 0 {
		sort.SliceStable(rows, func(i, j int) bool {
			for _, ob := range o.query.orderBy {
				a, f := ev.value(rows[i], ob.field)
				b, _ := ev.value(rows[j], ob.field)
				if f != nil && f.kind == kRef { // references sort by display value
					a, b = s.displayOfLocked(f.ref, a), s.displayOfLocked(f.ref, b)
				}
				c := compareValues(f, a, b)
				if c == 0 {
					continue
				}
				return (c < 0) != ob.desc
			}
			return false
		})
	}
	total := len(rows)
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	if links := pageLinks(s.base(r), r.URL, total, o.offset, o.limit); links != "" {
		w.Header().Set("Link", links)
	}
	page := []*orderedObj{}
	if o.offset < total {
		end := min(o.offset+o.limit, total)
		for _, rec := range rows[o.offset:end] {
			if s.canReadLocked(u, t.name, rec) { // ACLs after the limit
				page = append(page, s.renderLocked(s.base(r), t, rec, o))
			}
		}
	}
	writeJSON(w, http.StatusOK, resultBody{Result: page})
}

// pageLinks builds the Link header (first, prev, next, last) as the Table
// API does.
func pageLinks(base string, u *url.URL, total, offset, limit int) string {
	link := func(off int, rel string) string {
		q := u.Query()
		q.Set("sysparm_offset", strconv.Itoa(off))
		q.Set("sysparm_limit", strconv.Itoa(limit))
		return fmt.Sprintf("<%s%s?%s>;rel=%q", base, u.Path, q.Encode(), rel)
	}
	var parts []string
	parts = append(parts, link(0, "first"))
	if offset > 0 {
		parts = append(parts, link(max(offset-limit, 0), "prev"))
	}
	if offset+limit < total {
		parts = append(parts, link(offset+limit, "next"))
	}
	last := 0
	if total > 0 {
		last = ((total - 1) / limit) * limit
	}
	parts = append(parts, link(last, "last"))
	return strings.Join(parts, ",")
}

func (s *Server) getOne(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, sysID string, o *renderOptions) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec := s.rows[t.name][sysID]
	if rec == nil || !s.canReadLocked(u, t.name, rec) {
		writeNoRecord(w)
		return
	}
	writeJSON(w, http.StatusOK, resultBody{Result: s.renderLocked(s.base(r), t, rec, o)})
}

// readBody decodes a JSON object of field values; scalars become strings
// as ServiceNow stores them, unknown and read-only fields are ignored.
func readBody(w http.ResponseWriter, r *http.Request, t *tableSpec) (map[string]string, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	var in map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil || in == nil {
		return nil, errors.New("payload is not a JSON object")
	}
	out := map[string]string{}
	for k, v := range in {
		f := t.field(k)
		if f == nil || f.readOnly {
			continue
		}
		var sv string
		switch v := v.(type) {
		case string:
			sv = v
		case json.Number:
			sv = v.String()
		case bool:
			sv = strconv.FormatBool(v)
		case nil:
			sv = ""
		default:
			continue
		}
		if len(sv) > maxValueBytes {
			sv = sv[:maxValueBytes]
		}
		out[k] = sv
	}
	return out, nil
}

// refValueLocked is what a reference field stores for input v. With
// sysparm_input_display_value=false (the default) the platform stores the
// value as given, without manipulation: a user name or an email in
// assigned_to is stored as that string, not resolved to a sys_id, and the
// reference is broken. With sysparm_input_display_value=true the input is
// a display value (for sys_user the name, e.g. "Ivy Agent") and is looked
// up. ServiceNow docs: Table API, sysparm_input_display_value ("false:
// Treats input values as actual values and stores them in the database
// without manipulation").
func (s *Server) refValueLocked(f *fieldSpec, v string, inputDisplay bool) string {
	if !inputDisplay || v == "" || s.rows[f.ref][v] != nil {
		return v
	}
	for _, id := range s.order[f.ref] {
		if rec := s.rows[f.ref][id]; strings.EqualFold(rec[tables[f.ref].display], v) {
			return id
		}
	}
	return v
}

func (s *Server) nowString() string { return s.now().UTC().Format("2006-01-02 15:04:05") }

// applyLocked writes values into rec and maintains derived incident fields.
func (s *Server) applyLocked(u *User, t *tableSpec, rec, values map[string]string, o *renderOptions) {
	for k, v := range values {
		f := t.field(k)
		if !canWriteField(u, t.name, k) {
			continue // the field's write ACL silently keeps the old value (fieldacl.go)
		}
		if _, ok := journalFields[k]; ok && t.name == "incident" {
			s.appendJournalLocked(u, rec["sys_id"], k, v) // appended, never overwritten
			continue
		}
		if f.kind == kRef {
			v = s.refValueLocked(f, v, o.inputDisplay)
		}
		rec[k] = v
	}
	_, impact := values["impact"]
	_, urgency := values["urgency"]
	if impact || urgency {
		rec["priority"] = priorityMatrix(rec["impact"], rec["urgency"])
	}
	if st, ok := values["state"]; ok {
		now := s.nowString()
		switch st {
		case "6":
			rec["resolved_at"] = now
		case "7":
			rec["closed_at"] = now
		}
	}
	rec["active"] = strconv.FormatBool(rec["state"] != "7" && rec["state"] != "8")
	rec["sys_updated_on"] = s.nowString()
	rec["sys_updated_by"] = u.UserName
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, o *renderOptions) {
	if t.name != "incident" {
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the record insert")
		return
	}
	values, err := readBody(w, r, t)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.incSeq++
	now := s.nowString()
	rec := map[string]string{
		"sys_id": newSysID(), "number": fmt.Sprintf("INC%07d", s.incSeq),
		"caller_id": u.SysID, "opened_by": u.SysID, "opened_at": now,
		"state": "1", "impact": "3", "urgency": "3", "category": "inquiry",
		"sys_created_on": now, "sys_created_by": u.UserName,
	}
	s.applyLocked(u, t, rec, values, o)
	rec["priority"] = priorityMatrix(rec["impact"], rec["urgency"])
	s.insert("incident", rec)
	s.log.Info("servicenow sandbox: incident created", "number", rec["number"], "user", u.UserName)
	w.Header().Set("Location", s.base(r)+"/api/now/table/incident/"+rec["sys_id"])
	writeJSON(w, http.StatusCreated, resultBody{Result: s.renderLocked(s.base(r), t, rec, o)})
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, u *User, t *tableSpec, sysID string, o *renderOptions) {
	values, err := readBody(w, r, t)
	if err != nil {
		writeError(w, http.StatusBadRequest, "Exception while reading request", "The payload is not valid JSON.")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rows[t.name][sysID]
	if rec == nil || !s.canReadLocked(u, t.name, rec) {
		writeNoRecord(w)
		return
	}
	if !canWrite(u, t.name, rec) {
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the record update")
		return
	}
	if rule := tableRules[t.name]; rule != nil && rule.update != nil { // daily.go
		if status, msg, detail := rule.update(s, u, rec, values); status != 0 {
			writeError(w, status, msg, detail)
			return
		}
	} else {
		s.applyLocked(u, t, rec, values, o)
	}
	n, _ := strconv.Atoi(rec["sys_mod_count"])
	rec["sys_mod_count"] = strconv.Itoa(n + 1)
	s.log.Info("servicenow sandbox: record updated", "table", t.name, "sys_id", sysID, "user", u.UserName)
	writeJSON(w, http.StatusOK, resultBody{Result: s.renderLocked(s.base(r), t, rec, o)})
}

func (s *Server) remove(w http.ResponseWriter, u *User, t *tableSpec, sysID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec := s.rows[t.name][sysID]
	if rec == nil || !s.canReadLocked(u, t.name, rec) {
		writeNoRecord(w)
		return
	}
	// Deleting incidents is reserved to admins (no seeded user is one).
	if t.name != "incident" || !u.hasRole("admin") {
		writeError(w, http.StatusForbidden, "Operation Failed", "ACL restricts the record deletion")
		return
	}
	delete(s.rows[t.name], sysID)
	s.order[t.name] = slices.DeleteFunc(s.order[t.name], func(id string) bool { return id == sysID })
	w.WriteHeader(http.StatusNoContent)
}
