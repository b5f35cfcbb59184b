package sandbox

// The REST API's data resources: record visibility (sharing), JSON
// output in Salesforce's field order, query and queryMore, search, and
// record reads.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// ---- sharing ----

func (u *User) canRead(typ string) bool {
	if typ == "User" || u.Objects == nil {
		return true
	}
	for _, o := range u.Objects {
		if strings.EqualFold(o, typ) {
			return true
		}
	}
	return false
}

// visibleLocked reports whether u may see the record: the object's
// organization-wide default (Server.sharing, see SharingModel), then
// ownership and the role hierarchy, which add access under every model.
// Callers hold s.mu.
func (s *Server) visibleLocked(u *User, typ string, rec map[string]any) bool {
	if typ == "User" {
		return true
	}
	if !u.canRead(typ) {
		return false
	}
	switch s.sharing[typ] {
	case SharingRead, SharingReadWrite, SharingReadWriteTransfer:
		// "Public Read Only: All users can view all records for the object."
		return true
	case SharingControlledByParent:
		// "Controlled by Parent: A user can perform an action (such as view
		// …) on a contact … based on whether he or she can perform that same
		// action on the record associated with it." A contact without an
		// account is private to its owner (and the hierarchy above).
		if acct, _ := rec["AccountId"].(string); acct != "" {
			if parent := s.records[acct]; parent != nil && s.types[acct] == "Account" {
				return s.visibleLocked(u, "Account", parent)
			}
		}
	}
	owner, _ := rec["OwnerId"].(string)
	return owner == u.ID || s.aboveLocked(u, owner)
}

// aboveLocked reports whether u's role is above the role of the user
// ownerID in the role hierarchy (transitively): the owner is one of u's
// direct or indirect reports. Callers hold s.mu.
func (s *Server) aboveLocked(u *User, ownerID string) bool {
	ou := s.users[ownerID]
	if ou == nil || ou.RoleID == "" || u.RoleID == "" {
		return false
	}
	role := s.roles[ou.RoleID]
	for hops := 0; role != nil && role.ParentID != "" && hops < 1000; hops++ {
		if role.ParentID == u.RoleID {
			return true
		}
		role = s.roles[role.ParentID]
	}
	return false
}

// inScopeLocked applies a query's USING SCOPE filter (see parseScope) to a
// record u can see. Scopes narrow a result; they never widen sharing.
// Callers hold s.mu.
func (s *Server) inScopeLocked(u *User, scope string, rec map[string]any) bool {
	owner, _ := rec["OwnerId"].(string)
	switch scope {
	case scopeMine:
		return owner == u.ID
	case scopeTeam:
		return s.aboveLocked(u, owner)
	}
	return true // "", everything
}

func (s *Server) evalCtxLocked(u *User) *evalCtx {
	return &evalCtx{now: s.now(), user: u, related: func(rel *relation, id string) map[string]any {
		for rid, rec := range s.lookupLocked(id) {
			if typ := s.types[rid]; typ == rel.target && s.visibleLocked(u, typ, rec) {
				return rec
			}
		}
		return nil
	}}
}

// lookupLocked finds a record by 15- or 18-character id.
func (s *Server) lookupLocked(id string) map[string]map[string]any {
	if rec, ok := s.records[id]; ok {
		return map[string]map[string]any{id: rec}
	}
	if len(id) == 15 {
		for rid, rec := range s.records {
			if rid[:15] == id {
				return map[string]map[string]any{rid: rec}
			}
		}
	}
	return nil
}

// ---- output ----

// orderedObj is a JSON object that keeps its keys in insertion order, so
// records come back with "attributes" first and fields in SELECT order.
type orderedObj struct {
	keys []string
	vals []any
}

func (o *orderedObj) set(k string, v any) {
	for i, key := range o.keys {
		if key == k {
			o.vals[i] = v
			return
		}
	}
	o.keys = append(o.keys, k)
	o.vals = append(o.vals, v)
}

func (o *orderedObj) get(k string) (any, bool) {
	for i, key := range o.keys {
		if key == k {
			return o.vals[i], true
		}
	}
	return nil, false
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

func attributes(version, typ, id string) *orderedObj {
	a := &orderedObj{}
	a.set("type", typ)
	a.set("url", "/services/data/"+version+"/sobjects/"+typ+"/"+id)
	return a
}

// projectLocked renders rec with the selected fields (all fields if nil).
func (s *Server) projectLocked(ctx *evalCtx, version, typ string, rec map[string]any, fields []fieldRef) *orderedObj {
	id, _ := rec["Id"].(string)
	out := &orderedObj{}
	out.set("attributes", attributes(version, typ, id))
	if fields == nil {
		obj := schema[strings.ToLower(typ)]
		for _, f := range obj.fields {
			if !ctx.user.hidesField(typ, f.name) {
				out.set(f.name, rec[f.name])
			}
		}
		return out
	}
	for _, f := range fields {
		if f.rel == nil {
			out.set(f.def.name, rec[f.def.name])
			continue
		}
		fk, _ := rec[f.rel.field].(string)
		var related map[string]any
		if fk != "" {
			related = ctx.related(f.rel, fk)
		}
		if related == nil {
			if _, ok := out.get(f.rel.name); !ok {
				out.set(f.rel.name, nil)
			}
			continue
		}
		cur, _ := out.get(f.rel.name)
		sub, _ := cur.(*orderedObj)
		if sub == nil {
			rid, _ := related["Id"].(string)
			sub = &orderedObj{}
			sub.set("attributes", attributes(version, f.rel.target, rid))
			out.set(f.rel.name, sub)
		}
		sub.set(f.def.name, related[f.def.name])
	}
	return out
}

// selectLocked runs a scope/filter/order/offset/limit over one object's
// records as seen by u.
func (s *Server) selectLocked(u *User, ctx *evalCtx, obj *sobject, scope string, where expr, orderBy []orderItem, offset, limit int) []map[string]any {
	var rows []map[string]any
	for _, id := range s.order[obj.name] {
		rec := s.records[id]
		if s.visibleLocked(u, obj.name, rec) && s.inScopeLocked(u, scope, rec) && ctx.match(rec, where) {
			rows = append(rows, rec)
		}
	}
	if len(orderBy) > 0 {
		sort.SliceStable(rows, func(i, j int) bool {
			for _, it := range orderBy {
				a, b := ctx.value(rows[i], it.f), ctx.value(rows[j], it.f)
				switch {
				case a == nil && b == nil:
					continue
				case a == nil:
					return it.nullsFirst
				case b == nil:
					return !it.nullsFirst
				}
				c := lessValue(it.f.def.typ, a, b)
				if c == 0 {
					continue
				}
				if it.desc {
					return c > 0
				}
				return c < 0
			}
			return false
		})
	}
	if offset >= len(rows) {
		return nil
	}
	rows = rows[offset:]
	if limit >= 0 && limit < len(rows) {
		rows = rows[:limit]
	}
	return rows
}

// ---- query ----

type queryResponse struct {
	TotalSize      int           `json:"totalSize"`
	Done           bool          `json:"done"`
	NextRecordsURL string        `json:"nextRecordsUrl,omitempty"`
	Records        []*orderedObj `json:"records"`
}

var reBatchSize = regexp.MustCompile(`(?i)batchSize\s*=\s*(\d+)`)

func (s *Server) handleQuery(w http.ResponseWriter, r *http.Request, u *User, version string) {
	src := r.URL.Query().Get("q")
	if strings.TrimSpace(src) == "" {
		writeAPIError(w, http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified")
		return
	}
	q, qerr := parseSOQL(src)
	if qerr == nil && q.scope != "" && !scopeVersion(version) {
		// "With API version 32.0 and later, you can use USING SCOPE"; an
		// older version's grammar has no USING.
		qerr = malformed(q.scopePos, "unexpected token: 'USING'")
	}
	if qerr != nil {
		writeQueryError(w, src, qerr)
		return
	}
	if !u.canRead(q.obj.name) {
		writeQueryError(w, src, invalidType(q.objPos, q.obj.name))
		return
	}
	if qerr := u.checkFLS(q); qerr != nil {
		writeQueryError(w, src, qerr)
		return
	}
	batch := s.batch
	if m := reBatchSize.FindStringSubmatch(r.Header.Get("Sforce-Query-Options")); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil {
			n = min(max(n, 200), 2000)
			batch = min(batch, n)
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := s.evalCtxLocked(u)
	rows := s.selectLocked(u, ctx, q.obj, q.scope, q.where, q.orderBy, q.offset, q.limit)
	if q.count {
		writeJSON(w, http.StatusOK, queryResponse{TotalSize: len(rows), Done: true, Records: []*orderedObj{}})
		return
	}
	out := make([]*orderedObj, len(rows))
	for i, rec := range rows {
		out[i] = s.projectLocked(ctx, version, q.obj.name, rec, q.fields)
	}
	resp := queryResponse{TotalSize: len(out), Done: true, Records: out}
	if len(out) > batch {
		loc := s.newCursorLocked(u, version, out)
		resp.Done = false
		resp.Records = out[:batch]
		resp.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", version, loc, batch)
	}
	if resp.Records == nil {
		resp.Records = []*orderedObj{}
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *Server) newCursorLocked(u *User, version string, recs []*orderedObj) string {
	now := s.now()
	for loc, c := range s.cursors {
		if now.Sub(c.lastUsed) > cursorTTL {
			delete(s.cursors, loc)
		}
	}
	for len(s.cursors) >= maxCursors { // evict the least recently used
		var oldest string
		var t time.Time
		for loc, c := range s.cursors {
			if oldest == "" || c.lastUsed.Before(t) {
				oldest, t = loc, c.lastUsed
			}
		}
		delete(s.cursors, oldest)
	}
	loc := "01g" + randomString(15)
	s.cursors[loc] = &cursor{userID: u.ID, version: version, records: recs, total: len(recs), lastUsed: now}
	return loc
}

func (s *Server) handleQueryMore(w http.ResponseWriter, u *User, version, locator string) {
	i := strings.LastIndexByte(locator, '-')
	if i <= 0 {
		writeAPIError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	loc := locator[:i]
	pos, err := strconv.Atoi(locator[i+1:])
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cursors[loc]
	if err != nil || c == nil || c.userID != u.ID || pos < 0 || pos > len(c.records) || s.now().Sub(c.lastUsed) > cursorTTL {
		writeAPIError(w, http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator")
		return
	}
	c.lastUsed = s.now()
	end := min(pos+s.batch, len(c.records))
	resp := queryResponse{TotalSize: c.total, Done: end == len(c.records), Records: c.records[pos:end]}
	if resp.Done {
		delete(s.cursors, loc)
	} else {
		resp.NextRecordsURL = fmt.Sprintf("/services/data/%s/query/%s-%d", version, loc, end)
	}
	if resp.Records == nil {
		resp.Records = []*orderedObj{}
	}
	writeJSON(w, http.StatusOK, resp)
}

// ---- search ----

type searchResponse struct {
	SearchRecords []*orderedObj `json:"searchRecords"`
}

func (s *Server) handleSearch(w http.ResponseWriter, r *http.Request, u *User, version string) {
	src := r.URL.Query().Get("q")
	if strings.TrimSpace(src) == "" {
		writeAPIError(w, http.StatusBadRequest, "MALFORMED_SEARCH", "No search term found. The search term must be enclosed in braces.")
		return
	}
	q, qerr := parseSOSL(src)
	if qerr != nil {
		writeQueryError(w, src, qerr)
		return
	}
	returning := q.returning
	if len(returning) == 0 {
		for _, name := range searchOrder {
			if u.canRead(name) {
				obj := schema[strings.ToLower(name)]
				returning = append(returning, soslReturn{obj: obj, fields: []fieldRef{{def: obj.field("Id")}}, limit: -1})
			}
		}
	}
	limit := maxSearchResult
	if q.limit >= 0 && q.limit < limit {
		limit = q.limit
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx := s.evalCtxLocked(u)
	out := []*orderedObj{}
	for _, ret := range returning {
		if !u.canRead(ret.obj.name) {
			writeQueryError(w, src, invalidType(ret.objPos, ret.obj.name))
			return
		}
		if qerr := u.checkFLS(&soqlQuery{obj: ret.obj, fields: ret.fields, where: ret.where, orderBy: ret.orderBy}); qerr != nil {
			writeQueryError(w, src, qerr)
			return
		}
		fields := searchFields(ret.obj, q.scope)
		rows := s.selectLocked(u, ctx, ret.obj, "", ret.where, ret.orderBy, 0, -1)
		n := 0
		for _, rec := range rows {
			if len(out) >= limit || (ret.limit >= 0 && n >= ret.limit) {
				break
			}
			if !soslMatch(rec, fields, q.words) {
				continue
			}
			sel := ret.fields
			if sel == nil {
				sel = []fieldRef{{def: ret.obj.field("Id")}}
			}
			out = append(out, s.projectLocked(ctx, version, ret.obj.name, rec, sel))
			n++
		}
	}
	writeJSON(w, http.StatusOK, searchResponse{SearchRecords: out})
}

// ---- records ----

func (s *Server) handleGetRecord(w http.ResponseWriter, r *http.Request, u *User, version, typ, id string) {
	obj := schema[strings.ToLower(typ)]
	if obj == nil || !u.canRead(obj.name) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	if !reID.MatchString(id) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+clip(id))
		return
	}
	fields, ok := fieldsParam(w, r, u, obj)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for rid, rec := range s.lookupLocked(id) {
		if s.types[rid] == obj.name && s.visibleLocked(u, obj.name, rec) {
			writeJSON(w, http.StatusOK, s.projectLocked(s.evalCtxLocked(u), version, obj.name, rec, fields))
			return
		}
	}
	writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
}

func (s *Server) handleChatterMe(w http.ResponseWriter, r *http.Request, u *User, version string) {
	writeJSON(w, http.StatusOK, map[string]any{
		"id": u.ID, "username": u.Username, "displayName": u.Name, "name": u.Name, "email": u.Email,
		"type": "User", "url": "/services/data/" + version + "/chatter/users/" + u.ID,
	})
}

// readForm parses a bounded urlencoded body.

// fieldsParam resolves the ?fields=a,b parameter of a record read against
// obj as u may see it (a field u's profile hides is no such column); on a
// bad field it answers 400 INVALID_FIELD and ok is false. No parameter:
// nil fields (the whole record).
func fieldsParam(w http.ResponseWriter, r *http.Request, u *User, obj *sobject) (fields []fieldRef, ok bool) {
	fl := r.URL.Query().Get("fields")
	if fl == "" {
		return nil, true
	}
	if len(fl) > maxSOQLLength {
		writeAPIError(w, http.StatusBadRequest, "INVALID_FIELD", "too many fields")
		return nil, false
	}
	for _, name := range strings.Split(fl, ",") {
		name = strings.TrimSpace(name)
		f, qerr := resolveField(obj, token{kind: tIdent, text: name})
		if qerr != nil || u.hiddenRef(obj, f) {
			writeAPIError(w, http.StatusBadRequest, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on sobject of type %s", clip(name), obj.name))
			return nil, false
		}
		fields = append(fields, f)
	}
	return fields, true
}
