package sandbox

// The REST API's writes (DML): create a record (POST sobjects/{type}/) and
// update one (PATCH sobjects/{type}/{id}), as the user, under the org's
// sharing and the user's field-level security, answering as Salesforce does.
//
// REST API Developer Guide:
//   - "Create a Record" (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_sobject_create.htm):
//     201 {"id":…,"errors":[],"success":true}; an Id in the body answers
//     [{"message":"The Id field should not be specified in the sobject data.","errorCode":"INVALID_FIELD"}].
//   - "Update a Record" (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/dome_update_fields.htm):
//     PATCH, 204 No Content.
//   - "Status Codes and Error Responses" (https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm):
//     400 with the JSON array [{"message","errorCode","fields"}] for a
//     request the org refuses (DML errors are 400, not 403).
// The error codes are the API's StatusCode values (SOAP API Developer
// Guide, "Core Data Types Used in API Calls" → StatusCode,
// https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_concepts_core_data_objects.htm):
// INSUFFICIENT_ACCESS_OR_READONLY (no edit access to the record),
// REQUIRED_FIELD_MISSING, FIELD_INTEGRITY_EXCEPTION (a lookup to the wrong
// kind of record), INVALID_FIELD_FOR_INSERT_UPDATE (a field that is not
// createable/updateable, or read-only for the user's profile by field-level
// security), INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST,
// INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY (a lookup to a record the
// user cannot see), MALFORMED_ID, INVALID_FIELD and JSON_PARSER_ERROR.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// maxDMLBody bounds a create/update request body.
const maxDMLBody = 1 << 20

// dmlField is what the sandbox knows about writing one field (the
// describe's createable, updateable, nillable/defaultedOnCreate and
// picklist attributes). A schema field without an entry is a system field:
// neither createable nor updateable (Id, IsClosed, CreatedDate, Name of a
// person, CaseNumber, …).
type dmlField struct {
	create, update bool
	// required: not nillable and not defaulted on create.
	required bool
	// picklist holds a restricted picklist's values.
	picklist []string
	// refs are the object types a lookup may point to.
	refs []string
	// label names the field in error messages, as Salesforce does.
	label string
	// def is the value set on create when the body has none.
	def any
}

// Standard picklist values of a new org ("Opportunity", "Task", "Lead" in
// the Object Reference for the Salesforce Platform).
var (
	opportunityStages = []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers",
		"Perception Analysis", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"}
	taskStatuses   = []string{"Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred"}
	taskSubtypes   = []string{"Task", "Email", "ListEmail", "Cadence", "Call", "LinkedIn"}
	taskPriorities = []string{"High", "Normal", "Low"}
	leadStatuses   = []string{"Open - Not Contacted", "Working - Contacted", "Closed - Converted", "Closed - Not Converted"}
)

func rw(label string) dmlField { return dmlField{create: true, update: true, label: label} }

// dmlSchema is the write side of the describe of the supported objects.
var dmlSchema = map[string]map[string]dmlField{
	"Account": {
		"Name": {create: true, update: true, required: true, label: "Account Name"}, "Industry": rw("Industry"),
		"Type": rw("Account Type"), "BillingCity": rw("Billing City"), "AnnualRevenue": rw("Annual Revenue"),
	},
	"Contact": {
		"FirstName": rw("First Name"), "LastName": {create: true, update: true, required: true, label: "Last Name"},
		"Email": rw("Email"), "Title": rw("Title"), "Phone": rw("Business Phone"),
		"AccountId": {create: true, update: true, refs: []string{"Account"}, label: "Account ID"},
	},
	"Lead": {
		"FirstName": rw("First Name"), "LastName": {create: true, update: true, required: true, label: "Last Name"},
		"Company": {create: true, update: true, required: true, label: "Company"},
		"Email":   rw("Email"), "Title": rw("Title"), "Phone": rw("Phone"),
		"Status": {create: true, update: true, picklist: leadStatuses, label: "Lead Status", def: "Open - Not Contacted"},
	},
	"Opportunity": {
		"Name":        {create: true, update: true, required: true, label: "Name"},
		"AccountId":   {create: true, update: true, refs: []string{"Account"}, label: "Account ID"},
		"Amount":      rw("Amount"),
		"StageName":   {create: true, update: true, required: true, picklist: opportunityStages, label: "Stage"},
		"CloseDate":   {create: true, update: true, required: true, label: "Close Date"},
		"NextStep":    rw("Next Step"),
		"Probability": rw("Probability (%)"),
	},
	"Case": {
		"Subject": rw("Subject"), "Status": rw("Status"), "Priority": rw("Priority"), "Origin": rw("Case Origin"),
		"AccountId": {create: true, update: true, refs: []string{"Account"}, label: "Account ID"},
		"ContactId": {create: true, update: true, refs: []string{"Contact"}, label: "Contact ID"},
	},
	"Task": {
		"Subject":      rw("Subject"),
		"Status":       {create: true, update: true, picklist: taskStatuses, label: "Status", def: "Not Started"},
		"Priority":     {create: true, update: true, picklist: taskPriorities, label: "Priority", def: "Normal"},
		"TaskSubtype":  {create: true, picklist: taskSubtypes, label: "Task Subtype", def: "Task"},
		"ActivityDate": rw("Due Date Only"),
		"Description":  rw("Description"),
		// WhatId: "Related To" — a non-person object; WhoId: "Name" — a
		// contact or lead (Object Reference, "Task").
		"WhatId": {create: true, update: true, refs: []string{"Account", "Opportunity", "Case"}, label: "Related To ID"},
		"WhoId":  {create: true, update: true, refs: []string{"Contact", "Lead"}, label: "Name ID"},
	},
}

func init() {
	// Task and Lead, and Opportunity.NextStep, exist for the writes (the
	// activities a rep logs, the leads they create).
	opp := schema["opportunity"]
	opp.fields = append(opp.fields, fieldDef{"NextStep", ftString, "other"})
	opp.byLower = map[string]*fieldDef{}
	for i := range opp.fields {
		opp.byLower[strings.ToLower(opp.fields[i].name)] = &opp.fields[i]
	}
	schema["task"] = newSObject("Task", "00T", []fieldDef{
		{"Id", ftID, ""}, {"Subject", ftString, "name"}, {"Status", ftString, "other"}, {"Priority", ftString, "other"},
		{"TaskSubtype", ftString, ""}, {"ActivityDate", ftDate, ""}, {"Description", ftString, "other"},
		{"WhatId", ftID, ""}, {"WhoId", ftID, ""}, {"IsClosed", ftBool, ""}, {"OwnerId", ftID, ""}, {"CreatedDate", ftDateTime, ""},
	}, relOwner)
	schema["lead"] = newSObject("Lead", "00Q", []fieldDef{
		{"Id", ftID, ""}, {"FirstName", ftString, "name"}, {"LastName", ftString, "name"}, {"Name", ftString, "name"},
		{"Company", ftString, "name"}, {"Email", ftString, "email"}, {"Title", ftString, "other"}, {"Phone", ftString, "phone"},
		{"Status", ftString, "other"}, {"IsConverted", ftBool, ""}, {"OwnerId", ftID, ""}, {"CreatedDate", ftDateTime, ""},
	}, relOwner)
	// Lead accepts Public Read/Write/Transfer like Case; activities are
	// Private (owner and role hierarchy) and not configurable here.
	sharingModels["Lead"] = []SharingModel{SharingPrivate, SharingRead, SharingReadWrite, SharingReadWriteTransfer}
}

// SetReadOnlyFields sets the fields ("Object.Field") the user's profile may
// read but not edit (field-level security), replacing earlier ones.
func (s *Server) SetReadOnlyFields(username string, fields ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usernames[strings.ToLower(username)]
	if u == nil {
		return fmt.Errorf("sandbox: no user %s", username)
	}
	u.ReadOnlyFields = slices.Clone(fields)
	return nil
}

// Record returns a copy of the record with id (any type), or nil.
func (s *Server) Record(id string) map[string]any {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rec := s.records[id]
	if rec == nil {
		return nil
	}
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		out[k] = v
	}
	return out
}

func (u *User) fieldReadOnly(obj, field string) bool {
	for _, f := range u.ReadOnlyFields {
		o, fl, _ := strings.Cut(f, ".")
		if strings.EqualFold(o, obj) && strings.EqualFold(fl, field) {
			return true
		}
	}
	return false
}

// editableLocked reports whether u may edit rec: the organization-wide
// default grants edit under Public Read/Write (and …/Transfer); otherwise
// the owner and users above the owner's role may ("Organization-Wide
// Sharing Defaults", https://help.salesforce.com/s/articleView?id=platform.sharing_model_fields.htm:
// "Public Read Only: All users can view and report on records but not edit
// them. Only the owner, and users above that role in the hierarchy, can
// edit those records."). A contact under Controlled by Parent is editable
// when its account is. Callers hold s.mu.
func (s *Server) editableLocked(u *User, typ string, rec map[string]any) bool {
	if !u.canRead(typ) {
		return false
	}
	switch s.sharing[typ] {
	case SharingReadWrite, SharingReadWriteTransfer:
		return true
	case SharingControlledByParent:
		if acct, _ := rec["AccountId"].(string); acct != "" {
			if parent := s.records[acct]; parent != nil && s.types[acct] == "Account" {
				return s.editableLocked(u, "Account", parent)
			}
		}
	}
	owner, _ := rec["OwnerId"].(string)
	return owner == u.ID || s.aboveLocked(u, owner)
}

type fieldError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields"`
}

func writeDMLError(w http.ResponseWriter, code, msg string, fields ...string) {
	if fields == nil {
		fields = []string{}
	}
	writeJSON(w, http.StatusBadRequest, []fieldError{{Message: msg, ErrorCode: code, Fields: fields}})
}

// handleDML serves the write methods of sobjects/{type}/ (POST) and
// sobjects/{type}/{id} (PATCH); other non-GET requests answer 405.
func (s *Server) handleDML(w http.ResponseWriter, r *http.Request, u *User, version string, parts []string) {
	switch {
	case len(parts) == 2 && parts[0] == "sobjects" && r.Method == http.MethodPost:
		s.handleCreate(w, r, u, version, parts[1])
	case len(parts) == 3 && parts[0] == "sobjects" && r.Method == http.MethodPatch:
		s.handleUpdate(w, r, u, parts[1], parts[2])
	case len(parts) == 2 && parts[0] == "sobjects":
		methodNotAllowed(w, r, "GET,HEAD,POST")
	case len(parts) == 3 && parts[0] == "sobjects":
		methodNotAllowed(w, r, "GET,HEAD,PATCH")
	default:
		methodNotAllowed(w, r, "GET,HEAD")
	}
}

// readBody decodes a JSON object body (numbers as json.Number). Salesforce
// answers a body it cannot parse with JSON_PARSER_ERROR.
func readBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDMLBody))
	if err != nil {
		writeDMLError(w, "JSON_PARSER_ERROR", "The request body is too large or could not be read.")
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil || dec.More() {
		writeDMLError(w, "JSON_PARSER_ERROR", "Unexpected character or end of input: the request body must be one JSON object of field names and values.")
		return nil, false
	}
	delete(body, "attributes")
	return body, true
}

// convert checks v against the field's type and returns the stored value;
// a wrong type is a JSON_PARSER_ERROR, as Salesforce's deserializer says.
func convert(d *fieldDef, v any) (any, string) {
	if v == nil {
		return nil, ""
	}
	bad := func(kind string) string {
		return fmt.Sprintf("Cannot deserialize instance of %s from %s value %s or request may be missing a required field", d.typ, kind, clip(fmt.Sprint(v)))
	}
	switch d.typ {
	case ftString, ftID:
		if str, ok := v.(string); ok {
			return str, ""
		}
		return nil, bad("non-string")
	case ftDouble:
		if n, ok := v.(json.Number); ok {
			if f, err := n.Float64(); err == nil {
				return f, ""
			}
		}
		return nil, bad("non-number")
	case ftBool:
		if b, ok := v.(bool); ok {
			return b, ""
		}
		return nil, bad("non-boolean")
	case ftDate:
		if str, ok := v.(string); ok && reDate.MatchString(str) {
			if _, err := time.Parse("2006-01-02", str); err == nil {
				return str, ""
			}
		}
		return nil, bad("VALUE_STRING")
	}
	return nil, bad("unsupported")
}

// applyLocked validates body against typ's write rules for u (create or
// update) and returns the converted values, or writes the error. rec is
// the record being updated (nil on create). Callers hold s.mu.
func (s *Server) applyLocked(w http.ResponseWriter, u *User, obj *sobject, body map[string]any, create bool) (map[string]any, bool) {
	meta := dmlSchema[obj.name]
	names := make([]string, 0, len(body))
	for k := range body {
		names = append(names, k)
	}
	sort.Strings(names)
	out := map[string]any{}
	var notWritable []string
	for _, k := range names {
		d := obj.field(k)
		if d == nil {
			writeDMLError(w, "INVALID_FIELD", fmt.Sprintf("No such column '%s' on sobject of type %s", clip(k), obj.name), clip(k))
			return nil, false
		}
		if d.name == "Id" {
			writeDMLError(w, "INVALID_FIELD", "The Id field should not be specified in the sobject data.", "Id")
			return nil, false
		}
		m, known := meta[d.name]
		if !known || (create && !m.create) || (!create && !m.update) || u.fieldReadOnly(obj.name, d.name) {
			notWritable = append(notWritable, d.name)
			continue
		}
		v, bad := convert(d, body[k])
		if bad != "" {
			writeDMLError(w, "JSON_PARSER_ERROR", bad, d.name)
			return nil, false
		}
		out[d.name] = v
	}
	if len(notWritable) > 0 {
		// The wording Salesforce uses for a field the profile may not edit
		// (field-level security) and for system fields alike.
		writeDMLError(w, "INVALID_FIELD_FOR_INSERT_UPDATE", fmt.Sprintf("Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", strings.Join(notWritable, ", ")), notWritable...)
		return nil, false
	}
	for name, v := range out {
		m := meta[name]
		str, _ := v.(string)
		switch {
		case m.picklist != nil && v != nil && !slices.Contains(m.picklist, str):
			writeDMLError(w, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", fmt.Sprintf("%s: bad value for restricted picklist field: %s", m.label, clip(str)), name)
			return nil, false
		case m.refs != nil && v != nil:
			if !reID.MatchString(str) {
				writeDMLError(w, "MALFORMED_ID", fmt.Sprintf("%s: id value of incorrect type: %s", m.label, clip(str)), name)
				return nil, false
			}
			if !s.refOKLocked(w, u, m, name, str) {
				return nil, false
			}
		}
	}
	return out, true
}

// refOKLocked checks a lookup value: an id of the wrong object is
// FIELD_INTEGRITY_EXCEPTION ("id value of incorrect type"); one the user
// cannot see (or that does not exist: Salesforce does not say which) is
// INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY.
func (s *Server) refOKLocked(w http.ResponseWriter, u *User, m dmlField, name, id string) bool {
	prefixOK := false
	for _, t := range m.refs {
		if o := schema[strings.ToLower(t)]; o != nil && strings.HasPrefix(id, o.prefix) {
			prefixOK = true
		}
	}
	if !prefixOK {
		writeDMLError(w, "FIELD_INTEGRITY_EXCEPTION", fmt.Sprintf("%s: id value of incorrect type: %s", m.label, id), name)
		return false
	}
	for rid, rec := range s.lookupLocked(id) {
		if typ := s.types[rid]; slices.Contains(m.refs, typ) && s.visibleLocked(u, typ, rec) {
			return true
		}
	}
	writeDMLError(w, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "insufficient access rights on cross-reference id: "+id, name)
	return false
}

// missing lists the required fields rec lacks.
func missing(obj *sobject, rec map[string]any) []string {
	var out []string
	for _, f := range obj.fields {
		if m := dmlSchema[obj.name][f.name]; m.required {
			if v := rec[f.name]; v == nil || v == "" {
				out = append(out, f.name)
			}
		}
	}
	return out
}

// derive sets the fields Salesforce computes: a person's Name, an
// opportunity's IsClosed/IsWon from its stage, a task's IsClosed.
func derive(typ string, rec map[string]any) {
	switch typ {
	case "Contact", "Lead":
		first, _ := rec["FirstName"].(string)
		last, _ := rec["LastName"].(string)
		rec["Name"] = strings.TrimSpace(first + " " + last)
	case "Opportunity":
		stage, _ := rec["StageName"].(string)
		rec["IsClosed"] = stage == "Closed Won" || stage == "Closed Lost"
		rec["IsWon"] = stage == "Closed Won"
	case "Task":
		rec["IsClosed"] = rec["Status"] == "Completed"
	}
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request, u *User, version, typ string) {
	obj := schema[strings.ToLower(typ)]
	if obj == nil || obj.name == "User" || !u.canRead(obj.name) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	vals, ok := s.applyLocked(w, u, obj, body, true)
	if !ok {
		return
	}
	rec := map[string]any{}
	for _, f := range obj.fields {
		rec[f.name] = nil
	}
	for name, m := range dmlSchema[obj.name] {
		if m.def != nil {
			rec[name] = m.def
		}
	}
	for k, v := range vals {
		rec[k] = v
	}
	if miss := missing(obj, rec); len(miss) > 0 {
		writeDMLError(w, "REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(miss, ", ")+"]", miss...)
		return
	}
	id := s.newIDLocked(obj.prefix)
	rec["Id"] = id
	rec["OwnerId"] = u.ID
	if obj.field("CreatedDate") != nil {
		rec["CreatedDate"] = s.now().UTC().Format("2006-01-02T15:04:05.000+0000")
	}
	derive(obj.name, rec)
	s.records[id] = rec
	s.types[id] = obj.name
	ids := s.order[obj.name]
	i := sort.SearchStrings(ids, id)
	s.order[obj.name] = slices.Insert(ids, i, id)
	writeJSON(w, http.StatusCreated, map[string]any{"id": id, "errors": []any{}, "success": true})
}

// newIDLocked returns an unused 18-character id with the object's key
// prefix.
func (s *Server) newIDLocked(prefix string) string {
	for n := len(s.records) + 1; ; n++ {
		id := fmt.Sprintf("%s1%011dAAA", prefix, n)
		if s.types[id] == "" {
			return id
		}
	}
}

func (s *Server) handleUpdate(w http.ResponseWriter, r *http.Request, u *User, typ, id string) {
	obj := schema[strings.ToLower(typ)]
	if obj == nil || obj.name == "User" || !u.canRead(obj.name) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	body, ok := readBody(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var rid string
	var rec map[string]any
	for k, v := range s.lookupLocked(id) {
		if s.types[k] == obj.name {
			rid, rec = k, v
		}
	}
	if rec == nil {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: "+clip(id))
		return
	}
	// Salesforce checks edit access before the fields: a record the user
	// may only read (Public Read Only, not the owner or above) — or cannot
	// see — answers INSUFFICIENT_ACCESS_OR_READONLY.
	if !s.editableLocked(u, obj.name, rec) {
		writeDMLError(w, "INSUFFICIENT_ACCESS_OR_READONLY", "insufficient access rights on object id")
		return
	}
	vals, ok := s.applyLocked(w, u, obj, body, false)
	if !ok {
		return
	}
	next := make(map[string]any, len(rec))
	for k, v := range rec {
		next[k] = v
	}
	for k, v := range vals {
		next[k] = v
	}
	if miss := missing(obj, next); len(miss) > 0 {
		writeDMLError(w, "REQUIRED_FIELD_MISSING", "Required fields are missing: ["+strings.Join(miss, ", ")+"]", miss...)
		return
	}
	derive(obj.name, next)
	s.records[rid] = next
	w.WriteHeader(http.StatusNoContent)
}
