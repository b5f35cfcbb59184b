package salesforce

// The write tools: what a rep does every day — move an opportunity on
// (stage, close date, next step, amount), log a call, create a contact or
// a lead. Each runs as the user, so Salesforce's sharing (edit access to
// the record) and field-level security decide; on top, Mandate writes only
// the objects and fields of the upstream's allow-list
// (salesforce.writable), and refuses anything else before calling.
//
// Annotations, in the MCP specification's meaning (ToolAnnotations):
// readOnlyHint false for all four. destructiveHint — "the tool may perform
// destructive updates to its environment; false: only additive updates" —
// is true for update_opportunity (it overwrites field values; the old ones
// are gone) and false for the creates (they only add records).
// idempotentHint — "calling the tool repeatedly with the same arguments
// will have no additional effect" — is true for update_opportunity (the
// same fields set to the same values) and false for the creates (each call
// adds a record).

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Write tool names.
const (
	ToolUpdateOpportunity = "update_opportunity"
	ToolLogCall           = "log_call"
	ToolCreateContact     = "create_contact"
	ToolCreateLead        = "create_lead"
)

// writeObjects are the sObjects the write tools write, with the tool, the
// id key prefix (for the ids a tool takes) and the fields the allow-list
// must include for the tool to work.
type writeObject struct {
	name, tool string
	needs      []string
}

var writeObjects = []writeObject{
	{"Opportunity", ToolUpdateOpportunity, nil},
	{"Task", ToolLogCall, []string{"Subject", "Status", "TaskSubtype"}},
	{"Contact", ToolCreateContact, []string{"LastName"}},
	{"Lead", ToolCreateLead, []string{"LastName", "Company"}},
}

func writeObjectIndex(name string) int {
	return slices.IndexFunc(writeObjects, func(o writeObject) bool { return o.name == name })
}

// Key prefixes of the ids the write tools take (Object Reference: the
// first three characters of a record id name its object).
const (
	prefixOpportunity = "006"
	prefixContact     = "003"
	prefixLead        = "00Q"
)

var reFieldName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// neverWritable are fields no tool sets: the record id, and the owner
// (a write tool never transfers a record).
var neverWritable = []string{"Id", "OwnerId"}

// validateWritable checks salesforce.writable (defaults applied).
func validateWritable(w map[string][]string, path string) []error {
	var errs []error
	objs := make([]string, 0, len(w))
	for o := range w {
		objs = append(objs, o)
	}
	sort.Strings(objs)
	for _, o := range objs {
		key := fmt.Sprintf("%s.salesforce.writable.%s", path, o)
		i := writeObjectIndex(o)
		if i < 0 {
			errs = append(errs, fmt.Errorf("%s: Mandate's write tools write Opportunity, Task, Contact and Lead (spelt so), not %q", key, o))
			continue
		}
		seen := map[string]bool{}
		for _, f := range w[o] {
			switch {
			case !reFieldName.MatchString(f):
				errs = append(errs, fmt.Errorf("%s: %q is not a field API name", key, f))
			case slices.ContainsFunc(neverWritable, func(n string) bool { return strings.EqualFold(n, f) }):
				errs = append(errs, fmt.Errorf("%s: %s is never writable through Mandate", key, f))
			case seen[strings.ToLower(f)]:
				errs = append(errs, fmt.Errorf("%s: %s is listed twice", key, f))
			}
			seen[strings.ToLower(f)] = true
		}
		if len(w[o]) == 0 {
			errs = append(errs, fmt.Errorf("%s: list at least one field, or leave the object out to turn %s off", key, writeObjects[i].tool))
		}
		for _, n := range writeObjects[i].needs {
			if !seen[strings.ToLower(n)] {
				errs = append(errs, fmt.Errorf("%s: must include %s (%s always sets it)", key, n, writeObjects[i].tool))
			}
		}
		if o == "Task" && !seen["whatid"] && !seen["whoid"] {
			errs = append(errs, fmt.Errorf("%s: must include WhatId or WhoId (log_call logs the call on a record)", key))
		}
	}
	return errs
}

// writable is one object's allow-list: canonical field names by lower case.
type writable struct {
	fields []string          // as configured, in order
	byLow  map[string]string // lower case → configured spelling
}

func newWritable(cfg map[string][]string) map[string]*writable {
	out := map[string]*writable{}
	for o, fs := range cfg {
		w := &writable{byLow: map[string]string{}}
		for _, f := range fs {
			w.fields = append(w.fields, f)
			w.byLow[strings.ToLower(f)] = f
		}
		out[o] = w
	}
	return out
}

func (w *writable) has(f string) bool { return w != nil && w.byLow[strings.ToLower(f)] != "" }

// knownFields describe the standard fields the default allow-list names,
// for the tools' input schemas (any other allowed field takes a string,
// number, boolean or null).
var knownFields = map[string]map[string]map[string]any{
	"Opportunity": {
		"StageName": {"type": "string", "maxLength": 255, "description": "Stage: one of the org's active stage values, e.g. Prospecting, Qualification, Needs Analysis, Proposal/Price Quote, Negotiation/Review, Closed Won, Closed Lost."},
		"CloseDate": {"type": "string", "format": "date", "description": "Close date, YYYY-MM-DD."},
		"NextStep":  {"type": []string{"string", "null"}, "maxLength": 255, "description": "Next step (free text, 255 characters); null clears it."},
		"Amount":    {"type": []string{"number", "null"}, "description": "Amount in the opportunity's currency; null clears it."},
	},
	"Contact": {
		"FirstName": {"type": "string", "maxLength": 40},
		"LastName":  {"type": "string", "minLength": 1, "maxLength": 80, "description": "Required by Salesforce."},
		"Email":     {"type": "string", "format": "email"},
		"Phone":     {"type": "string", "maxLength": 40},
		"Title":     {"type": "string", "maxLength": 128},
		"AccountId": {"type": "string", "pattern": reID.String(), "description": "The account (001…) the contact works for."},
	},
	"Lead": {
		"FirstName": {"type": "string", "maxLength": 40},
		"LastName":  {"type": "string", "minLength": 1, "maxLength": 80, "description": "Required by Salesforce."},
		"Company":   {"type": "string", "minLength": 1, "maxLength": 255, "description": "Required by Salesforce."},
		"Email":     {"type": "string", "format": "email"},
		"Phone":     {"type": "string", "maxLength": 40},
		"Title":     {"type": "string", "maxLength": 128},
	},
}

// fieldsSchema is the schema of a tool's fields argument: the allowed
// fields, no others.
func fieldsSchema(obj string, w *writable, required ...string) map[string]any {
	props := map[string]any{}
	for _, f := range w.fields {
		if s, ok := knownFields[obj][f]; ok {
			props[f] = s
		} else {
			props[f] = map[string]any{"type": []string{"string", "number", "boolean", "null"}}
		}
	}
	s := rest.Object(props, required...)
	s["minProperties"] = 1
	s["description"] = fmt.Sprintf("%s field API names and values. Only these fields may be set through Mandate: %s.", obj, strings.Join(w.fields, ", "))
	return s
}

var writeOutputSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"id":      map[string]any{"type": "string"},
		"sobject": map[string]any{"type": "string"},
		"fields":  map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "The fields Mandate sent."},
	},
	"required": []string{"id", "sobject", "fields"},
}

// WriteOutput is the structured result of the write tools.
type WriteOutput struct {
	ID      string   `json:"id"`
	SObject string   `json:"sobject"`
	Fields  []string `json:"fields"`
}

// withWriteTools is buildTools' tool set plus the write tools the
// allow-list enables.
func (a *Adapter) withWriteTools(read []rest.Tool) *rest.Tools {
	return rest.NewTools(append(read, a.writeTools()...))
}

func (a *Adapter) writeTools() []rest.Tool {
	var ts []rest.Tool
	open := rest.BoolPtr(true)
	if w := a.writable["Opportunity"]; w != nil {
		ts = append(ts, rest.Tool{Run: rest.Bind(a.call, (*call).updateOpportunity), Def: &mcp.Tool{
			Name:  ToolUpdateOpportunity,
			Title: "Update an opportunity",
			Description: "Changes fields of one opportunity in Salesforce as the signed-in user — typically StageName, CloseDate, NextStep, Amount. " +
				"Salesforce lets a user edit an opportunity they own (or one owned by someone below them in the role hierarchy, or shared with them for editing); " +
				"most orgs let everyone read every opportunity but not edit it. Fields outside this upstream's allow-list are refused. Overwrites the old values.",
			InputSchema: rest.Object(map[string]any{
				"id":     map[string]any{"type": "string", "pattern": reID.String(), "description": "The opportunity's id (006…), e.g. from my_pipeline."},
				"fields": fieldsSchema("Opportunity", w),
			}, "id", "fields"),
			OutputSchema: writeOutputSchema,
			Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: rest.BoolPtr(true), IdempotentHint: true, OpenWorldHint: open},
		}})
	}
	if w := a.writable["Task"]; w != nil {
		props := map[string]any{
			"subject":       map[string]any{"type": "string", "minLength": 1, "maxLength": 255, "description": "Subject, e.g. \"Call with Alice about the renewal\". Default \"Call\"."},
			"description":   map[string]any{"type": "string", "maxLength": 32000, "description": "Notes of the call (Comments)."},
			"activity_date": map[string]any{"type": "string", "format": "date", "description": "Day of the call, YYYY-MM-DD; default today (UTC)."},
		}
		var on []string
		if w.has("WhatId") {
			props["what_id"] = map[string]any{"type": "string", "pattern": reID.String(), "description": "The record the call was about (Related To): an opportunity (006…), account (001…) or case (500…)."}
			on = append(on, "what_id")
		}
		if w.has("WhoId") {
			props["who_id"] = map[string]any{"type": "string", "pattern": reID.String(), "description": "The person called (Name): a contact (003…) or lead (00Q…)."}
			on = append(on, "who_id")
		}
		ts = append(ts, rest.Tool{Run: rest.Bind(a.call, (*call).logCall), Def: &mcp.Tool{
			Name:  ToolLogCall,
			Title: "Log a call",
			Description: "Logs a completed call in Salesforce as the signed-in user: a Task with TaskSubtype Call and Status Completed, on a record (" +
				strings.Join(on, " and/or ") + "). Each call adds a new activity.",
			InputSchema:  rest.Object(props),
			OutputSchema: writeOutputSchema,
			Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: rest.BoolPtr(false), IdempotentHint: false, OpenWorldHint: open},
		}})
	}
	for _, c := range []struct{ obj, tool, title, desc string }{
		{"Contact", ToolCreateContact, "Create a contact", "Creates a contact in Salesforce as the signed-in user, who becomes its owner. LastName is required; set AccountId to attach it to an account."},
		{"Lead", ToolCreateLead, "Create a lead", "Creates a lead in Salesforce as the signed-in user, who becomes its owner. LastName and Company are required."},
	} {
		w := a.writable[c.obj]
		if w == nil {
			continue
		}
		var req []string
		for _, n := range writeObjects[writeObjectIndex(c.obj)].needs {
			req = append(req, w.byLow[strings.ToLower(n)])
		}
		h := (*call).createContact
		if c.obj == "Lead" {
			h = (*call).createLead
		}
		ts = append(ts, rest.Tool{Run: rest.Bind(a.call, h), Def: &mcp.Tool{
			Name:         c.tool,
			Title:        c.title,
			Description:  c.desc + " Fields outside this upstream's allow-list are refused. Each call adds a record.",
			InputSchema:  rest.Object(map[string]any{"fields": fieldsSchema(c.obj, w, req...)}, "fields"),
			OutputSchema: writeOutputSchema,
			Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: rest.BoolPtr(false), IdempotentHint: false, OpenWorldHint: open},
		}})
	}
	return ts
}

// checkFields maps the caller's fields onto obj's allow-list (configured
// spelling) and checks each value is a JSON scalar. The message names
// every field refused, before any call.
func (c *call) checkFields(obj string, in map[string]json.RawMessage) (map[string]any, []string, string) {
	w := c.a.writable[obj]
	out := make(map[string]any, len(in))
	var names, refused []string
	for k, raw := range in {
		f := w.byLow[strings.ToLower(k)]
		if f == "" {
			refused = append(refused, rest.Clip(k, 80))
			continue
		}
		if _, dup := out[f]; dup {
			return nil, nil, fmt.Sprintf("field %s is given twice (field names are case-insensitive)", f)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, nil, fmt.Sprintf("fields.%s: %v", f, err)
		}
		switch v.(type) {
		case nil, string, float64, bool:
		default:
			return nil, nil, fmt.Sprintf("fields.%s must be a string, number, boolean or null", f)
		}
		out[f] = v
		names = append(names, f)
	}
	if len(refused) > 0 {
		sort.Strings(refused)
		return nil, nil, fmt.Sprintf("Mandate may not write %s field(s) %s on this upstream; the writable %s fields are %s. Nothing was sent to Salesforce. "+
			"If users need another field, the platform team can add it to the upstream's salesforce.writable list.",
			obj, strings.Join(refused, ", "), obj, strings.Join(w.fields, ", "))
	}
	if len(out) == 0 {
		return nil, nil, "fields is empty: name at least one field to set"
	}
	sort.Strings(names)
	return out, names, ""
}

func (c *call) updateOpportunity(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		ID     string                     `json:"id"`
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := rest.DecodeArgs(ToolUpdateOpportunity, p.Arguments, &args); err != nil {
		return nil, err
	}
	if !reID.MatchString(args.ID) || !strings.HasPrefix(args.ID, prefixOpportunity) {
		return rest.ToolError(fmt.Sprintf("id %q is not an opportunity id (18 or 15 characters starting with 006)", rest.Clip(args.ID, 100))), nil
	}
	fields, names, bad := c.checkFields("Opportunity", args.Fields)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	if _, err := c.Do(http.MethodPatch, c.a.dataPath("/sobjects/Opportunity/"+url.PathEscape(args.ID)), nil, fields); err != nil {
		return c.writeFailure(err, "update opportunity "+args.ID)
	}
	out := &WriteOutput{ID: args.ID, SObject: "Opportunity", Fields: names}
	return rest.Result(fmt.Sprintf("Updated opportunity %s (%s) as %s.", args.ID, strings.Join(names, ", "), who(c.Token())), out), nil
}

func (c *call) logCall(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		WhatID       string `json:"what_id"`
		WhoID        string `json:"who_id"`
		Subject      string `json:"subject"`
		Description  string `json:"description"`
		ActivityDate string `json:"activity_date"`
	}
	if err := rest.DecodeArgs(ToolLogCall, p.Arguments, &args); err != nil {
		return nil, err
	}
	w := c.a.writable["Task"]
	task := map[string]any{"Subject": "Call", "Status": "Completed", "TaskSubtype": "Call"}
	if args.Subject != "" {
		task["Subject"] = args.Subject
	}
	var refused []string
	set := func(arg, field, v string) {
		if v == "" {
			return
		}
		if !w.has(field) {
			refused = append(refused, arg+" ("+field+")")
			return
		}
		task[field] = v
	}
	switch {
	case args.WhatID == "" && args.WhoID == "":
		return rest.ToolError("name the record the call was about (what_id: an opportunity, account or case) and/or the person called (who_id: a contact or lead)"), nil
	case args.WhatID != "" && !reID.MatchString(args.WhatID):
		return rest.ToolError(fmt.Sprintf("what_id %q is not a Salesforce id", rest.Clip(args.WhatID, 100))), nil
	case args.WhoID != "" && (!reID.MatchString(args.WhoID) || !(strings.HasPrefix(args.WhoID, prefixContact) || strings.HasPrefix(args.WhoID, prefixLead))):
		return rest.ToolError(fmt.Sprintf("who_id %q is not a contact (003…) or lead (00Q…) id", rest.Clip(args.WhoID, 100))), nil
	}
	if args.ActivityDate == "" {
		args.ActivityDate = time.Now().UTC().Format(time.DateOnly)
	} else if _, err := time.Parse(time.DateOnly, args.ActivityDate); err != nil {
		return rest.ToolError(fmt.Sprintf("activity_date %q is not a date (YYYY-MM-DD)", rest.Clip(args.ActivityDate, 40))), nil
	}
	set("what_id", "WhatId", args.WhatID)
	set("who_id", "WhoId", args.WhoID)
	set("description", "Description", args.Description)
	set("activity_date", "ActivityDate", args.ActivityDate)
	if len(refused) > 0 {
		return rest.ToolError(fmt.Sprintf("Mandate may not write Task field(s) for %s on this upstream; the writable Task fields are %s. Nothing was sent to Salesforce.",
			strings.Join(refused, ", "), strings.Join(w.fields, ", "))), nil
	}
	// Send the configured spelling of each field.
	body := make(map[string]any, len(task))
	names := make([]string, 0, len(task))
	for k, v := range task {
		f := w.byLow[strings.ToLower(k)]
		body[f] = v
		names = append(names, f)
	}
	sort.Strings(names)
	return c.create("Task", body, names, "log a call")
}

func (c *call) createContact(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	return c.createFrom(ToolCreateContact, "Contact", p)
}

func (c *call) createLead(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	return c.createFrom(ToolCreateLead, "Lead", p)
}

func (c *call) createFrom(tool, obj string, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := rest.DecodeArgs(tool, p.Arguments, &args); err != nil {
		return nil, err
	}
	fields, names, bad := c.checkFields(obj, args.Fields)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	return c.create(obj, fields, names, "create a "+strings.ToLower(obj))
}

func (c *call) create(obj string, body map[string]any, names []string, what string) (*mcp.CallToolResult, error) {
	resp, err := c.Do(http.MethodPost, c.a.dataPath("/sobjects/"+obj+"/"), nil, body)
	if err != nil {
		return c.writeFailure(err, what)
	}
	var res struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
	}
	if err := c.DecodeJSON(resp.Body, &res); err != nil || !res.Success || !reID.MatchString(res.ID) {
		return rest.ToolError(fmt.Sprintf("Salesforce answered the request to %s without the new record's id; check in Salesforce whether it was created before retrying.", what)), nil
	}
	out := &WriteOutput{ID: res.ID, SObject: obj, Fields: names}
	return rest.Result(fmt.Sprintf("Created %s %s as %s (%s).", obj, res.ID, who(c.Token()), strings.Join(names, ", ")), out), nil
}

// writeFailure turns Salesforce's refusal of a write into a tool error
// that says what to do; anything else goes through the shared mapping.
func (c *call) writeFailure(err error, what string) (*mcp.CallToolResult, error) {
	var e *APIError
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
		return c.ToolFailure(err)
	}
	fields := "the fields"
	if len(e.Fields) > 0 {
		fields = strings.Join(e.Fields, ", ")
	}
	sf := fmt.Sprintf("Salesforce refused to %s for %s (%s: %s).", what, who(c.Token()), e.Code, e.Message)
	var hint string
	switch e.Code {
	case "INSUFFICIENT_ACCESS_OR_READONLY":
		hint = " The user can read this record but not edit it: Salesforce lets its owner, users above the owner in the role hierarchy, and people it is shared with for editing change it. Ask the owner to make the change or to share the record." + c.ServiceAccountNote()
	case "REQUIRED_FIELD_MISSING":
		hint = fmt.Sprintf(" Give a value for %s and retry.", fields)
	case "INVALID_FIELD_FOR_INSERT_UPDATE":
		hint = fmt.Sprintf(" The user may not set %s: field-level security makes it read-only for their profile, or Salesforce computes it. Leave it out, or ask your Salesforce administrator for edit access to the field.", fields)
	case "FIELD_INTEGRITY_EXCEPTION", "MALFORMED_ID":
		hint = fmt.Sprintf(" The value of %s does not fit the field (for a lookup: an id of the wrong kind of record). Check the value and retry.", fields)
	case "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST":
		hint = fmt.Sprintf(" %s accepts only the org's picklist values; use one of them (the object's describe lists them).", fields)
	case "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY":
		hint = fmt.Sprintf(" %s names a record the user cannot see in Salesforce (or none exists). Use a record id the user has access to.", fields)
	case "INVALID_FIELD":
		hint = " The org has no such field on this object (check the API name; custom fields end in __c)."
	case "JSON_PARSER_ERROR":
		hint = fmt.Sprintf(" A value has the wrong type for %s (dates are YYYY-MM-DD, amounts numbers).", fields)
	default:
		return c.ToolFailure(err)
	}
	return rest.ToolError(sf + hint), nil
}
