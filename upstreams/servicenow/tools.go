package servicenow

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Tool names.
const (
	ToolMyIncidents    = "my_incidents"
	ToolGetIncident    = "get_incident"
	ToolCreateIncident = "create_incident"
	ToolUpdateIncident = "update_incident"
	ToolQueryTable     = "query_table"
)

// RecordURITemplate is the resource template of one record.
const (
	RecordURITemplate = "servicenow://table/{table}/{sys_id}"
	recordURIPrefix   = "servicenow://table/"
)

// Limits of tool arguments.
const (
	MaxEncodedQueryLength = 4000
	maxOffset             = 100000
	maxDescription        = 4000
	maxShortDescription   = 160
)

// IncidentFields are the incident fields list tools return.
var IncidentFields = []string{
	"sys_id", "number", "short_description", "state", "priority", "impact", "urgency", "category",
	"caller_id", "opened_by", "assigned_to", "assignment_group", "opened_at", "sys_updated_on",
}

var (
	reTable  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}$`)
	reSysID  = regexp.MustCompile(`^[0-9a-f]{32}$`)
	reNumber = regexp.MustCompile(`^[A-Z]{2,6}[0-9]{5,12}$`)
	reField  = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}(\.[a-z][a-z0-9_]{0,79})?$`)
)

var (
	levelEnum = map[string]any{"type": "string", "enum": []string{"1", "2", "3"}}
	stateEnum = []string{"1", "2", "3", "6", "7", "8"}
)

func withDesc(m map[string]any, d string) map[string]any {
	c := make(map[string]any, len(m)+1)
	for k, v := range m {
		c[k] = v
	}
	c["description"] = d
	return c
}

// listOutputSchema describes ListOutput.
var listOutputSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"table":       map[string]any{"type": "string"},
		"records":     map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
		"returned":    map[string]any{"type": "integer"},
		"total":       map[string]any{"type": "integer", "description": "How many records the query matched (X-Total-Count), counted before ServiceNow's ACLs removed those you may not read; -1 when ServiceNow did not say."},
		"offset":      map[string]any{"type": "integer"},
		"limit":       map[string]any{"type": "integer", "description": "The page size asked for."},
		"hidden":      map[string]any{"type": "integer", "description": "Records of this page that ServiceNow's ACLs removed (the limit is applied before ACLs, so a page can be short or empty while later pages still hold records you may read)."},
		"truncated":   map[string]any{"type": "boolean", "description": "True when more pages follow; ask for the next one with offset = next_offset."},
		"next_offset": map[string]any{"type": "integer", "description": "The offset of the next page (offset + limit), when truncated."},
	},
	"required": []string{"table", "records", "returned", "total", "offset", "truncated"},
}

var recordOutputSchema = map[string]any{"type": "object", "description": "The record; reference and choice fields as display values unless display_values is false."}

func (a *Adapter) buildTools() *rest.Tools {
	limit := func(def int) map[string]any {
		def = min(def, a.maxRecords)
		return map[string]any{"type": "integer", "minimum": 1, "maximum": a.maxRecords,
			"description": fmt.Sprintf("Most records to return (1-%d, default %d).", a.maxRecords, def)}
	}
	ref := map[string]any{
		"number":  map[string]any{"type": "string", "pattern": reNumber.String(), "description": "The incident number, e.g. INC0010001."},
		"sys_id":  map[string]any{"type": "string", "pattern": reSysID.String(), "description": "The incident's 32-character sys_id."},
		"display": map[string]any{"type": "boolean", "description": "Return display values (labels, names) instead of raw values (default true)."},
	}
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: rest.BoolPtr(true)}
	updateProps := map[string]any{
		"number":            ref["number"],
		"sys_id":            ref["sys_id"],
		"short_description": map[string]any{"type": "string", "minLength": 1, "maxLength": maxShortDescription, "description": "New one-line summary."},
		"description":       map[string]any{"type": "string", "maxLength": maxDescription, "description": "New full description (replaces the old one)."},
		"state":             map[string]any{"type": "string", "enum": stateEnum, "description": "New state: 1 New, 2 In Progress, 3 On Hold, 6 Resolved, 7 Closed, 8 Canceled."},
		"urgency":           withDesc(levelEnum, "1 High, 2 Medium, 3 Low."),
		"impact":            withDesc(levelEnum, "1 High, 2 Medium, 3 Low."),
		"category":          map[string]any{"type": "string", "maxLength": 40, "description": "Category, e.g. inquiry, software, hardware, network, database."},
		"assigned_to":       map[string]any{"type": "string", "maxLength": 100, "description": "Assignee: user name, email or sys_id."},
		"assignment_group":  map[string]any{"type": "string", "maxLength": 100, "description": "Assignment group: name or sys_id."},
		"comments":          map[string]any{"type": "string", "maxLength": maxDescription, "description": "A comment visible to the caller (appended to the journal)."},
		"work_notes":        map[string]any{"type": "string", "maxLength": maxDescription, "description": "An internal work note (appended to the journal)."},
		"close_code":        map[string]any{"type": "string", "maxLength": 80, "description": "Close code, when resolving or closing."},
		"close_notes":       map[string]any{"type": "string", "maxLength": maxDescription, "description": "Close notes, when resolving or closing."},
	}
	return rest.NewTools(append([]rest.Tool{
		{Run: rest.Bind(a.call, (*call).myIncidents), Def: &mcp.Tool{
			Name:  ToolMyIncidents,
			Title: "My incidents",
			Description: "Lists ServiceNow incidents as the signed-in user: by default the active ones assigned to you, most recently updated first. " +
				"relation widens or changes that (caller: you raised it; opened_by: you opened it; any: every incident ServiceNow's ACLs let you read — fulfillers with the itil role see all); active_only false adds closed and canceled ones. Your groups' unassigned work is my_groups_queue.",
			InputSchema: rest.Object(map[string]any{
				"relation":    map[string]any{"type": "string", "enum": []string{"assigned_to", "caller", "opened_by", "any"}, "description": "assigned_to (default): assigned to you; caller: you raised it; opened_by: you opened it; any: every incident you can read."},
				"active_only": map[string]any{"type": "boolean", "description": "Only incidents that are not closed or canceled (default true)."},
				"limit":       limit(50),
				"offset":      map[string]any{"type": "integer", "minimum": 0, "maximum": maxOffset, "description": "Records to skip, for paging: the next_offset of the previous page (default 0)."},
			}),
			OutputSchema: listOutputSchema,
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).getIncident), Def: &mcp.Tool{
			Name:         ToolGetIncident,
			Title:        "Get one incident",
			Description:  "Fetches one incident by number (INC0010001) or sys_id, with all its fields, as the signed-in user. Incidents ServiceNow's ACLs hide from you are reported as not found.",
			InputSchema:  rest.Object(map[string]any{"number": ref["number"], "sys_id": ref["sys_id"], "display_values": ref["display"]}),
			OutputSchema: recordOutputSchema,
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).createIncident), Def: &mcp.Tool{
			Name:        ToolCreateIncident,
			Title:       "Create an incident",
			Description: "Creates a ServiceNow incident as the signed-in user (you are its caller and opener unless you are a fulfiller and name another caller). Returns the new incident's number and sys_id.",
			InputSchema: rest.Object(map[string]any{
				"short_description": map[string]any{"type": "string", "minLength": 1, "maxLength": maxShortDescription, "description": "One-line summary of the problem."},
				"description":       map[string]any{"type": "string", "maxLength": maxDescription, "description": "Full description: what happened, since when, what was tried."},
				"urgency":           withDesc(levelEnum, "How soon it must be fixed: 1 High, 2 Medium, 3 Low (default 3)."),
				"impact":            withDesc(levelEnum, "How many are affected: 1 High, 2 Medium, 3 Low (default 3)."),
				"category":          map[string]any{"type": "string", "maxLength": 40, "description": "inquiry (default), software, hardware, network or database."},
				"caller":            map[string]any{"type": "string", "maxLength": 100, "description": "Caller (user name, email or sys_id); only fulfillers may raise incidents for someone else."},
			}, "short_description"),
			OutputSchema: recordOutputSchema,
			Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: rest.BoolPtr(false), IdempotentHint: false, OpenWorldHint: rest.BoolPtr(true)},
		}},
		{Run: rest.Bind(a.call, (*call).updateIncident), Def: &mcp.Tool{
			Name:  ToolUpdateIncident,
			Title: "Update an incident",
			Description: "Changes fields of one incident (by number or sys_id) as the signed-in user; ServiceNow's ACLs decide whether you may (fulfillers may update any incident, callers their own). " +
				"Fields you set replace the current values; comments and work_notes add an entry to the incident's journal (earlier entries stay). " +
				"ServiceNow silently ignores fields its field-level ACLs do not let you write; the result lists them under not_applied, and those did not change.",
			InputSchema:  rest.Object(updateProps),
			OutputSchema: recordOutputSchema,
			Annotations:  &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: rest.BoolPtr(true), IdempotentHint: false, OpenWorldHint: rest.BoolPtr(true)},
		}},
		{Run: rest.Bind(a.call, (*call).queryTable), Def: &mcp.Tool{
			Name:  ToolQueryTable,
			Title: "Query a ServiceNow table",
			Description: "Reads records of any table you may read (e.g. incident, problem, sys_user) with a ServiceNow encoded query, as the signed-in user. " +
				"Example query: active=true^priority<=2^ORDERBYDESCopened_at. Conditions join with ^ (AND), ^OR, ^NQ; javascript:gs.getUserID() means you, javascript:getMyGroups() your groups (no other javascript: values are allowed). " +
				"Field names are checked against the table's dictionary and unknown ones refused. ServiceNow hides records you may not read after cutting the page, so a page can be short or empty: continue with next_offset.",
			InputSchema: rest.Object(map[string]any{
				"table":          map[string]any{"type": "string", "pattern": reTable.String(), "description": "Table name, e.g. incident, problem, change_request, sys_user."},
				"query":          map[string]any{"type": "string", "maxLength": MaxEncodedQueryLength, "description": "Encoded query (sysparm_query); empty for all records you may read."},
				"fields":         map[string]any{"type": "array", "maxItems": 50, "uniqueItems": true, "items": map[string]any{"type": "string", "pattern": reField.String()}, "description": "Fields to return (one level of dot-walking allowed, e.g. caller_id.email); default all."},
				"limit":          limit(20),
				"offset":         map[string]any{"type": "integer", "minimum": 0, "maximum": maxOffset, "description": "Records to skip, for paging: the next_offset of the previous page (default 0)."},
				"display_values": ref["display"],
			}, "table"),
			OutputSchema: listOutputSchema,
			Annotations:  readOnly,
		}},
	}, a.dailyTools()...)) // tools_daily.go
}

// checkText refuses control characters other than tab and line breaks and
// over-long values; ok when s is empty.
func checkText(name, s string, maxLen int) string {
	if len(s) > maxLen {
		return fmt.Sprintf("%s must be at most %d characters", name, maxLen)
	}
	for _, r := range s {
		if unicode.IsControl(r) && r != '\n' && r != '\t' && r != '\r' {
			return fmt.Sprintf("%s contains a control character %U", name, r)
		}
	}
	return ""
}

// ListOutput is the structured result of list tools. ServiceNow applies
// sysparm_limit before ACLs: it cuts the page, then removes the rows the
// user may not read (ServiceNow KB3047115), and X-Total-Count counts rows
// before ACLs. So Returned can be below Limit on any page, even 0 while
// later pages hold readable rows: the next page is always at Offset+Limit
// (NextOffset), never Offset+Returned, and Hidden says how many rows of
// this page the ACLs removed.
type ListOutput struct {
	Table      string           `json:"table"`
	Records    []map[string]any `json:"records"`
	Returned   int              `json:"returned"`
	Total      int              `json:"total"`
	Offset     int              `json:"offset"`
	Limit      int              `json:"limit"`
	Hidden     int              `json:"hidden"`
	Truncated  bool             `json:"truncated"`
	NextOffset int              `json:"next_offset,omitempty"`
}

func displayParam(display bool) url.Values {
	q := url.Values{"sysparm_exclude_reference_link": {"true"}}
	if display {
		q.Set("sysparm_display_value", "true")
	} else {
		q.Set("sysparm_display_value", "false")
	}
	return q
}

// list runs GET /api/now/table/{table}.
func (c *call) list(table, query string, fields []string, limit, offset int, display bool) (*ListOutput, error) {
	q := displayParam(display)
	if query != "" {
		q.Set("sysparm_query", query)
	}
	if len(fields) > 0 {
		q.Set("sysparm_fields", strings.Join(fields, ","))
	}
	q.Set("sysparm_limit", strconv.Itoa(limit))
	if offset > 0 {
		q.Set("sysparm_offset", strconv.Itoa(offset))
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
	out := &ListOutput{Table: table, Records: body.Result, Offset: offset, Limit: limit, Total: -1}
	if out.Records == nil {
		out.Records = []map[string]any{}
	}
	if len(out.Records) > limit { // never trust the server with our bound
		out.Records = out.Records[:limit]
	}
	out.Returned = len(out.Records)
	if n, err := strconv.Atoi(resp.Header.Get("X-Total-Count")); err == nil && n >= 0 {
		out.Total = n
		// The page covered rows offset..offset+limit of the n matches;
		// those not returned were removed by ACLs.
		out.Hidden = max(min(n-offset, limit)-out.Returned, 0)
		out.Truncated = n > offset+limit
	} else {
		out.Truncated = out.Returned == limit // possibly more
	}
	if out.Truncated {
		out.NextOffset = offset + limit
	}
	return out, nil
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	case map[string]any: // display_value=all
		if d, ok := x["display_value"].(string); ok {
			return d
		}
		s, _ := x["value"].(string)
		return s
	default:
		return fmt.Sprint(x)
	}
}

func incidentLine(r map[string]any) string {
	var parts []string
	for _, f := range []string{"state", "priority", "caller_id", "assigned_to", "assignment_group"} {
		if s := str(r[f]); s != "" {
			parts = append(parts, strings.ReplaceAll(f, "_id", "")+": "+s)
		}
	}
	return fmt.Sprintf("- %s %s (%s) [sys_id %s]", str(r["number"]), str(r["short_description"]), strings.Join(parts, "; "), str(r["sys_id"]))
}

func listText(out *ListOutput, noun string) string {
	var b strings.Builder
	if out.Returned == 0 && out.Hidden == 0 && !out.Truncated {
		fmt.Fprintf(&b, "No %s visible to you matched.", noun)
		return b.String()
	}
	if out.Returned == 0 {
		fmt.Fprintf(&b, "No %s visible to you on this page", noun)
	} else {
		fmt.Fprintf(&b, "%d %s", out.Returned, noun)
	}
	var notes []string
	if out.Hidden > 0 {
		notes = append(notes, fmt.Sprintf("ServiceNow's ACLs hid %d matching record(s) of this page (records %d-%d) from you", out.Hidden, out.Offset+1, out.Offset+out.Limit))
	}
	if out.Truncated {
		switch {
		case out.Total >= 0:
			notes = append(notes, fmt.Sprintf("%d matched before ACLs; next page with offset %d", out.Total, out.NextOffset))
		default:
			notes = append(notes, fmt.Sprintf("more may match; next page with offset %d", out.NextOffset))
		}
	}
	if len(notes) > 0 {
		b.WriteString(" (" + strings.Join(notes, "; ") + ")")
	}
	if out.Returned == 0 {
		b.WriteString(".")
		return b.String()
	}
	b.WriteString(":\n")
	for _, r := range out.Records {
		if noun == "incident(s)" {
			b.WriteString(incidentLine(r))
		} else {
			line, _ := json.Marshal(r)
			b.WriteString("- ")
			b.Write(line)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func listResult(out *ListOutput, noun string) *mcp.CallToolResult {
	return rest.Result(listText(out, noun), out)
}

// MyIncidentsQuery returns the encoded query of my_incidents: relation ""
// means assigned_to; most recently updated first.
func MyIncidentsQuery(relation string, activeOnly bool) (string, error) {
	var conds []string
	switch relation {
	case "any":
	case "caller":
		conds = append(conds, "caller_id=javascript:gs.getUserID()")
	case "", "assigned_to":
		conds = append(conds, "assigned_to=javascript:gs.getUserID()")
	case "opened_by":
		conds = append(conds, "opened_by=javascript:gs.getUserID()")
	default:
		return "", fmt.Errorf("relation must be any, caller, assigned_to or opened_by, got %q", rest.Clip(relation, 40))
	}
	if activeOnly {
		conds = append(conds, "active=true")
	}
	conds = append(conds, "ORDERBYDESCsys_updated_on")
	return strings.Join(conds, "^"), nil
}

func (c *call) myIncidents(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Relation   string `json:"relation"`
		ActiveOnly *bool  `json:"active_only"`
		Limit      *int   `json:"limit"`
		Offset     int    `json:"offset"`
	}
	if err := rest.DecodeArgs(ToolMyIncidents, p.Arguments, &args); err != nil {
		return nil, err
	}
	limit, bad := rest.LimitArg("limit", args.Limit, c.a.maxRecords, 50)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	if args.Offset < 0 || args.Offset > maxOffset {
		return rest.ToolError(fmt.Sprintf("offset must be between 0 and %d", maxOffset)), nil
	}
	q, err := MyIncidentsQuery(args.Relation, args.ActiveOnly == nil || *args.ActiveOnly)
	if err != nil {
		return rest.ToolError(err.Error()), nil
	}
	out, err := c.list("incident", q, IncidentFields, limit, args.Offset, true)
	if err != nil {
		return c.ToolFailure(err)
	}
	return listResult(out, "incident(s)"), nil
}

// incidentRef resolves number or sys_id (exactly one) to a sys_id. A
// number nobody shows this user yields a not-found tool error.
func (c *call) incidentRef(number, sysID string) (string, *mcp.CallToolResult, error) {
	switch {
	case (number == "") == (sysID == ""):
		return "", rest.ToolError("give exactly one of number (e.g. INC0010001) or sys_id"), nil
	case sysID != "":
		if !reSysID.MatchString(sysID) {
			return "", rest.ToolError(fmt.Sprintf("sys_id %q is not a 32-character lower-case hex sys_id", rest.Clip(sysID, 80))), nil
		}
		return sysID, nil, nil
	}
	if !reNumber.MatchString(number) {
		return "", rest.ToolError(fmt.Sprintf("number %q is not an incident number such as INC0010001", rest.Clip(number, 80))), nil
	}
	out, err := c.list("incident", "number="+number, []string{"sys_id"}, 1, 0, false)
	if err != nil {
		res, cerr := c.ToolFailure(err)
		return "", res, cerr
	}
	if len(out.Records) == 0 {
		return "", rest.ToolError(fmt.Sprintf("ServiceNow has no incident %s that %s can read. It may not exist, or ServiceNow's ACLs hide it from this user.%s", number, who(c.Token()), c.ServiceAccountNote())), nil
	}
	id := str(out.Records[0]["sys_id"])
	if !reSysID.MatchString(id) {
		return "", rest.ToolError("ServiceNow answered with an unexpected sys_id"), nil
	}
	return id, nil, nil
}

func recordResult(rec map[string]any, head string) *mcp.CallToolResult {
	body, _ := json.MarshalIndent(rec, "", "  ")
	return rest.Result(head+"\n"+string(body), rec)
}

func (c *call) record(method, table, sysID string, q url.Values, body any) (map[string]any, error) {
	path := "/api/now/table/" + table
	if sysID != "" {
		path += "/" + sysID
	}
	resp, err := c.Do(method, path, q, body)
	if err != nil {
		return nil, err
	}
	var out struct {
		Result map[string]any `json:"result"`
	}
	if err := c.DecodeJSON(resp.Body, &out); err != nil {
		return nil, err
	}
	if out.Result == nil {
		return nil, fmt.Errorf("ServiceNow answered without a result record")
	}
	return out.Result, nil
}

func (c *call) getIncident(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Number        string `json:"number"`
		SysID         string `json:"sys_id"`
		DisplayValues *bool  `json:"display_values"`
	}
	if err := rest.DecodeArgs(ToolGetIncident, p.Arguments, &args); err != nil {
		return nil, err
	}
	id, res, err := c.incidentRef(args.Number, args.SysID)
	if res != nil || err != nil {
		return res, err
	}
	display := args.DisplayValues == nil || *args.DisplayValues
	rec, err := c.record(http.MethodGet, "incident", id, displayParam(display), nil)
	if err != nil {
		return c.ToolFailure(err)
	}
	return recordResult(rec, fmt.Sprintf("Incident %s (sys_id %s):", str(rec["number"]), id)), nil
}

func (c *call) createIncident(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		ShortDescription string `json:"short_description"`
		Description      string `json:"description"`
		Urgency          string `json:"urgency"`
		Impact           string `json:"impact"`
		Category         string `json:"category"`
		Caller           string `json:"caller"`
	}
	if err := rest.DecodeArgs(ToolCreateIncident, p.Arguments, &args); err != nil {
		return nil, err
	}
	if strings.TrimSpace(args.ShortDescription) == "" {
		return rest.ToolError("short_description is required"), nil
	}
	fields := map[string]string{"short_description": args.ShortDescription}
	for _, f := range []struct{ name, val, key string }{
		{"description", args.Description, "description"}, {"urgency", args.Urgency, "urgency"},
		{"impact", args.Impact, "impact"}, {"category", args.Category, "category"}, {"caller", args.Caller, "caller_id"},
	} {
		if f.val != "" {
			fields[f.key] = f.val
		}
	}
	if bad := checkFields(fields); bad != "" {
		return rest.ToolError(bad), nil
	}
	if bad, err := c.resolveRefs(fields, refArgNames); bad != "" || err != nil {
		if err != nil {
			return c.ToolFailure(err)
		}
		return rest.ToolError(bad), nil
	}
	q := displayParam(true)
	q.Set("sysparm_fields", strings.Join(IncidentFields, ","))
	rec, err := c.record(http.MethodPost, "incident", "", q, fields)
	if err != nil {
		return c.ToolFailure(err)
	}
	return recordResult(rec, fmt.Sprintf("Created incident %s (sys_id %s): %s", str(rec["number"]), str(rec["sys_id"]), str(rec["short_description"]))), nil
}

// refArgNames are the tool argument names of the reference fields, for
// messages.
var refArgNames = map[string]string{"caller_id": "caller", "assigned_to": "assigned_to", "assignment_group": "assignment_group"}

// checkFields validates incident field values before they are sent.
func checkFields(fields map[string]string) string {
	limits := map[string]int{
		"short_description": maxShortDescription, "description": maxDescription, "comments": maxDescription,
		"work_notes": maxDescription, "close_notes": maxDescription, "close_code": 80, "category": 40,
		"caller_id": 100, "assigned_to": 100, "assignment_group": 100,
	}
	for k, v := range fields {
		switch k {
		case "urgency", "impact":
			if v != "1" && v != "2" && v != "3" {
				return fmt.Sprintf("%s must be \"1\", \"2\" or \"3\", got %q", k, rest.Clip(v, 20))
			}
		case "state":
			ok := false
			for _, s := range stateEnum {
				ok = ok || v == s
			}
			if !ok {
				return fmt.Sprintf("state must be one of %s, got %q", strings.Join(stateEnum, ", "), rest.Clip(v, 20))
			}
		default:
			if bad := checkText(k, v, limits[k]); bad != "" {
				return bad
			}
		}
	}
	return ""
}

func (c *call) updateIncident(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Number           string  `json:"number"`
		SysID            string  `json:"sys_id"`
		ShortDescription *string `json:"short_description"`
		Description      *string `json:"description"`
		State            *string `json:"state"`
		Urgency          *string `json:"urgency"`
		Impact           *string `json:"impact"`
		Category         *string `json:"category"`
		AssignedTo       *string `json:"assigned_to"`
		AssignmentGroup  *string `json:"assignment_group"`
		Comments         *string `json:"comments"`
		WorkNotes        *string `json:"work_notes"`
		CloseCode        *string `json:"close_code"`
		CloseNotes       *string `json:"close_notes"`
	}
	if err := rest.DecodeArgs(ToolUpdateIncident, p.Arguments, &args); err != nil {
		return nil, err
	}
	fields := map[string]string{}
	for k, v := range map[string]*string{
		"short_description": args.ShortDescription, "description": args.Description, "state": args.State,
		"urgency": args.Urgency, "impact": args.Impact, "category": args.Category, "assigned_to": args.AssignedTo,
		"assignment_group": args.AssignmentGroup, "comments": args.Comments, "work_notes": args.WorkNotes,
		"close_code": args.CloseCode, "close_notes": args.CloseNotes,
	} {
		if v != nil {
			fields[k] = *v
		}
	}
	if len(fields) == 0 {
		return rest.ToolError("nothing to update: set at least one field (e.g. state, comments, assigned_to)"), nil
	}
	if v, ok := fields["short_description"]; ok && strings.TrimSpace(v) == "" {
		return rest.ToolError("short_description must not be empty"), nil
	}
	if bad := checkFields(fields); bad != "" {
		return rest.ToolError(bad), nil
	}
	id, res, err := c.incidentRef(args.Number, args.SysID)
	if res != nil || err != nil {
		return res, err
	}
	if bad, err := c.resolveRefs(fields, refArgNames); bad != "" || err != nil {
		if err != nil {
			return c.ToolFailure(err)
		}
		return rest.ToolError(bad), nil
	}
	// Ask for values and display values of every field sent, to check
	// what ServiceNow actually changed (see notApplied).
	q := url.Values{"sysparm_display_value": {"all"}, "sysparm_exclude_reference_link": {"true"}}
	q.Set("sysparm_fields", strings.Join(updateResponseFields(fields), ","))
	rec, err := c.record(http.MethodPatch, "incident", id, q, fields)
	if err != nil {
		return c.ToolFailure(err)
	}
	return updateResult(rec, fields, id), nil
}

// CheckEncodedQuery refuses encoded queries that are too long, carry
// control characters (line breaks included) or script values other than
// AllowedQueryScripts; the platform checks the rest.
func CheckEncodedQuery(q string) error {
	if bad := checkText("query", q, MaxEncodedQueryLength); bad != "" {
		return fmt.Errorf("%s", bad)
	}
	if strings.ContainsAny(q, "\r\n\t") {
		return fmt.Errorf("query must be one line (an encoded query such as active=true^priority=1)")
	}
	return checkScripts(q)
}

// AllowedQueryScripts are the only `javascript:` values an encoded query
// may carry: the current user's sys_id and their groups. ServiceNow runs
// any other as server-side script (in the user's session, but still code
// the model wrote). They match case-insensitively and exactly: nothing
// but the end of the query or a condition separator (^) may follow.
var AllowedQueryScripts = []string{"javascript:gs.getUserID()", "javascript:getMyGroups()"}

var errScript = fmt.Errorf("query: javascript: values run as server-side script in ServiceNow and are refused, except %s (you) and %s (your groups), written exactly so",
	AllowedQueryScripts[0], AllowedQueryScripts[1])

var foldedScripts = []string{foldCase(AllowedQueryScripts[0]), foldCase(AllowedQueryScripts[1])}

// checkScripts finds every `javascript:` in q, compared the way Java's
// equalsIgnoreCase would (so "JavaScript:" and "javaſcript:" count), and
// refuses the query unless each is one of AllowedQueryScripts followed by
// the end or by a single ^.
func checkScripts(q string) error {
	const prefix = "javascript:"
	f := foldCase(q)
	if !strings.Contains(f, prefix) {
		return nil
	}
	for i := 0; ; {
		j := strings.Index(f[i:], prefix)
		if j < 0 {
			return nil
		}
		at := f[i+j:]
		ok := false
		for _, s := range foldedScripts {
			if strings.HasPrefix(at, s) {
				after := at[len(s):]
				ok = after == "" || (after[0] == '^' && !strings.HasPrefix(after, "^^"))
				break
			}
		}
		if !ok {
			return errScript
		}
		i += j + len(prefix)
	}
}

// foldCase maps each rune to the lower case of its upper case, so runes
// that equal ignoring case become the same (ſ → s, K (Kelvin) → k).
func foldCase(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
}

func (c *call) queryTable(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Table         string   `json:"table"`
		Query         string   `json:"query"`
		Fields        []string `json:"fields"`
		Limit         *int     `json:"limit"`
		Offset        int      `json:"offset"`
		DisplayValues *bool    `json:"display_values"`
	}
	if err := rest.DecodeArgs(ToolQueryTable, p.Arguments, &args); err != nil {
		return nil, err
	}
	if !reTable.MatchString(args.Table) {
		return rest.ToolError(fmt.Sprintf("table %q is not a table name (lower-case letters, digits, underscores, e.g. incident)", rest.Clip(args.Table, 80))), nil
	}
	if err := CheckEncodedQuery(args.Query); err != nil {
		return rest.ToolError(err.Error()), nil
	}
	if len(args.Fields) > 50 {
		return rest.ToolError("at most 50 fields may be requested"), nil
	}
	for _, f := range args.Fields {
		if !reField.MatchString(f) {
			return rest.ToolError(fmt.Sprintf("field %q is not a field name (e.g. short_description or caller_id.email)", rest.Clip(f, 80))), nil
		}
	}
	if args.Offset < 0 || args.Offset > maxOffset {
		return rest.ToolError(fmt.Sprintf("offset must be between 0 and %d", maxOffset)), nil
	}
	limit, bad := rest.LimitArg("limit", args.Limit, c.a.maxRecords, 20)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	if args.Query != "" {
		if err := c.checkQueryFields(args.Table, args.Query); err != nil {
			if d, ok := asDictError(err); ok {
				return rest.ToolError(d.msg), nil
			}
			return c.ToolFailure(err)
		}
	}
	display := args.DisplayValues == nil || *args.DisplayValues
	out, err := c.list(args.Table, args.Query, args.Fields, limit, args.Offset, display)
	if err != nil {
		return c.ToolFailure(err)
	}
	noun := "record(s) of " + args.Table
	if args.Table == "incident" && (len(args.Fields) == 0 || slicesContain(args.Fields, "number")) {
		noun = "incident(s)"
	}
	return listResult(out, noun), nil
}

func slicesContain(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// readResource serves servicenow://table/{table}/{sys_id}.
func (c *call) readResource(uri string) (*mcp.ReadResourceResult, error) {
	if !strings.HasPrefix(uri, recordURIPrefix) {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	table, id, ok := strings.Cut(strings.TrimPrefix(uri, recordURIPrefix), "/")
	if !ok {
		return nil, mcp.ResourceNotFoundError(uri)
	}
	if !reTable.MatchString(table) || !reSysID.MatchString(id) {
		return nil, c.Errorf(jsonrpc.CodeInvalidParams, "resource %s: want servicenow://table/{table}/{sys_id} with a lower-case table name and a 32-character sys_id", rest.Clip(uri, 200))
	}
	q := url.Values{"sysparm_display_value": {"all"}, "sysparm_exclude_reference_link": {"true"}}
	rec, err := c.record(http.MethodGet, table, id, q, nil)
	if err != nil {
		return nil, c.rpcFailure(err)
	}
	return c.JSONResource(uri, rec)
}
