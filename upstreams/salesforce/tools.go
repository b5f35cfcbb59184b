package salesforce

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Tool names.
const (
	ToolSOQLQuery  = "soql_query"
	ToolGetRecord  = "get_record"
	ToolSearch     = "search"
	ToolMyPipeline = "my_pipeline"
)

// Resource URIs.
const (
	PipelineURI       = "salesforce://my/pipeline"
	RecordURITemplate = "salesforce://sobjects/{type}/{id}"
	recordURIPrefix   = "salesforce://sobjects/"
)

// Scopes of my_pipeline (its scope argument), each a SOQL USING SCOPE
// filterScope of Opportunity.
const (
	// PipelineScopeMine: opportunities the user owns (the default).
	PipelineScopeMine = "mine"
	// PipelineScopeTeam: opportunities owned by the user's direct and
	// indirect reports in the role hierarchy ("My team's opportunities").
	PipelineScopeTeam = "team"
)

// PipelineSOQL is the query behind my_pipeline and salesforce://my/pipeline:
// open opportunities the calling user owns. "Mine" must be ownership, not
// visibility: most orgs keep Opportunity's organization-wide default at
// Public Read Only, so sharing alone shows a rep the whole company's
// pipeline. USING SCOPE mine ("records owned by the user running the
// query", SOQL reference "USING SCOPE", API v32.0+) lets Salesforce apply
// ownership for whichever user the token runs as; an OwnerId filter would
// need the user id from the token response's identity URL, which the
// credential cache does not hand to the adapter, and would go wrong when a
// token's user differs from what the adapter assumed.
const PipelineSOQL = "SELECT Id, Name, Amount, StageName, CloseDate FROM Opportunity USING SCOPE mine WHERE IsClosed = false ORDER BY CloseDate"

// TeamPipelineSOQL is my_pipeline with scope team: open opportunities owned
// by the user's direct and indirect reports (USING SCOPE team), for
// managers. It does not include the manager's own opportunities.
const TeamPipelineSOQL = "SELECT Id, Name, Amount, StageName, CloseDate FROM Opportunity USING SCOPE team WHERE IsClosed = false ORDER BY CloseDate"

// pipelineSOQL returns the query of a my_pipeline scope ("" = mine).
func pipelineSOQL(scope string) (string, bool) {
	switch scope {
	case "", PipelineScopeMine:
		return PipelineSOQL, true
	case PipelineScopeTeam:
		return TeamPipelineSOQL, true
	}
	return "", false
}

// maxSearchRecords is SOSL's own ceiling.
const maxSearchRecords = 2000

var (
	reSObject = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)
	reID      = regexp.MustCompile(`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`)
	reField   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}(\.[A-Za-z][A-Za-z0-9_]{0,79}){0,4}$`)
)

// queryOutputSchema describes QueryOutput.
var queryOutputSchema = map[string]any{
	"type": "object",
	"properties": map[string]any{
		"totalSize": map[string]any{"type": "integer", "description": "How many records matched, as Salesforce counted them."},
		"returned":  map[string]any{"type": "integer", "description": "How many records are in records."},
		"truncated": map[string]any{"type": "boolean", "description": "True when more records matched than were returned (max_records)."},
		"records":   map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
	},
	"required": []string{"totalSize", "returned", "truncated", "records"},
}

func (a *Adapter) buildTools() *rest.Tools {
	maxRec := map[string]any{
		"type": "integer", "minimum": 1, "maximum": a.maxRecords,
		"description": fmt.Sprintf("Most records to return, following nextRecordsUrl pages (1-%d, default %d). The result says when more matched.", a.maxRecords, a.maxRecords),
	}
	searchMax := min(a.maxRecords, maxSearchRecords)
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: rest.BoolPtr(true)}
	return a.withWriteTools([]rest.Tool{
		{Run: rest.Bind(a.call, (*call).soqlQuery), Def: &mcp.Tool{
			Name:  ToolSOQLQuery,
			Title: "Run a read-only SOQL query",
			Description: "Runs one SOQL SELECT statement in Salesforce as the signed-in user; Salesforce's sharing rules decide which records come back. " +
				"Only a single SELECT is accepted (no DML, no FOR UPDATE/VIEW/REFERENCE, no ';'). Example: SELECT Id, Name, StageName FROM Opportunity WHERE IsClosed = false ORDER BY CloseDate LIMIT 20.",
			InputSchema: rest.Object(map[string]any{
				"query": map[string]any{
					"type": "string", "minLength": 1, "maxLength": MaxSOQLLength,
					"description": "The SOQL SELECT statement. Use LIMIT and select only the fields you need.",
				},
				"max_records": maxRec,
			}, "query"),
			OutputSchema: queryOutputSchema,
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).getRecord), Def: &mcp.Tool{
			Name:        ToolGetRecord,
			Title:       "Get one Salesforce record",
			Description: "Fetches one record by sObject type and id, as the signed-in user. Records Salesforce does not share with the user are reported as not found.",
			InputSchema: rest.Object(map[string]any{
				"sobject": map[string]any{"type": "string", "pattern": reSObject.String(), "description": "The sObject API name, e.g. Account, Contact, Opportunity, Case, or a custom object such as Invoice__c."},
				"id":      map[string]any{"type": "string", "pattern": reID.String(), "description": "The record's 15- or 18-character Salesforce id, e.g. 006000000000001AAA."},
				"fields": map[string]any{
					"type": "array", "maxItems": 100, "uniqueItems": true,
					"items":       map[string]any{"type": "string", "pattern": reField.String()},
					"description": "Field API names to return (e.g. [\"Name\", \"Amount\"]); omit for every field the user may read.",
				},
			}, "sobject", "id"),
			OutputSchema: map[string]any{"type": "object", "description": "The record as Salesforce returns it, with an attributes object (type, url)."},
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).search), Def: &mcp.Tool{
			Name:  ToolSearch,
			Title: "Search Salesforce (SOSL)",
			Description: "Full-text search across Salesforce records visible to the signed-in user. The term is searched literally (reserved SOSL characters are escaped). " +
				"Without objects, Salesforce searches every searchable object and returns ids and types; name objects to get fields.",
			InputSchema: rest.Object(map[string]any{
				"term": map[string]any{"type": "string", "minLength": 2, "maxLength": MaxSearchTermLength, "description": "The words to search for, e.g. \"Acme renewal\". All words must match."},
				"objects": map[string]any{
					"type": "array", "maxItems": 10,
					"description": "Objects to search and the fields to return for each, e.g. [{\"type\":\"Account\",\"fields\":[\"Id\",\"Name\"]}].",
					"items": rest.Object(map[string]any{
						"type":   map[string]any{"type": "string", "pattern": reSObject.String(), "description": "sObject API name."},
						"fields": map[string]any{"type": "array", "maxItems": 20, "items": map[string]any{"type": "string", "pattern": reField.String()}, "description": "Fields to return; default Id."},
					}, "type"),
				},
				"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": searchMax, "description": fmt.Sprintf("Most records to return (1-%d, default %d).", searchMax, min(200, searchMax))},
			}, "term"),
			OutputSchema: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"returned": map[string]any{"type": "integer"},
					"records":  map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
				},
				"required": []string{"returned", "records"},
			},
			Annotations: readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).myPipeline), Def: &mcp.Tool{
			Name:  ToolMyPipeline,
			Title: "My open opportunities",
			Description: "Lists the signed-in user's open opportunities in Salesforce — the ones they own (Opportunity Owner), not every opportunity they can see " +
				"(most orgs let everyone read every opportunity; use soql_query for those) — ordered by close date, with Name, Amount, StageName and CloseDate, plus the total amount. " +
				"With scope \"team\", lists instead the open opportunities owned by the user's direct and indirect reports in Salesforce's role hierarchy (for managers; excludes their own).",
			InputSchema: rest.Object(map[string]any{
				"scope": map[string]any{
					"type": "string", "enum": []string{PipelineScopeMine, PipelineScopeTeam}, "default": PipelineScopeMine,
					"description": "Whose opportunities: \"mine\" (default) = owned by you; \"team\" = owned by the people who report to you in the role hierarchy.",
				},
				"max_records": maxRec,
			}),
			OutputSchema: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"opportunities": map[string]any{"type": "array", "items": rest.Object(map[string]any{
						"id":        map[string]any{"type": "string"},
						"name":      map[string]any{"type": "string"},
						"amount":    map[string]any{"type": []string{"number", "null"}},
						"stage":     map[string]any{"type": "string"},
						"closeDate": map[string]any{"type": "string", "description": "YYYY-MM-DD"},
					})},
					"scope":       map[string]any{"type": "string", "enum": []string{PipelineScopeMine, PipelineScopeTeam}, "description": "Whose opportunities these are: mine (owned by the user) or team (owned by their reports)."},
					"count":       map[string]any{"type": "integer"},
					"totalAmount": map[string]any{"type": "number"},
					"truncated":   map[string]any{"type": "boolean"},
				},
				"required": []string{"opportunities", "scope", "count", "totalAmount", "truncated"},
			},
			Annotations: readOnly,
		}},
		a.describeTool(readOnly), a.relatedTool(maxRec, readOnly), a.recentTool(readOnly), // tools_read.go
	})
}

// QueryOutput is the structured result of soql_query.
type QueryOutput struct {
	TotalSize int              `json:"totalSize"`
	Returned  int              `json:"returned"`
	Truncated bool             `json:"truncated"`
	Records   []map[string]any `json:"records"`
}

type queryPage struct {
	TotalSize      int              `json:"totalSize"`
	Done           bool             `json:"done"`
	NextRecordsURL string           `json:"nextRecordsUrl"`
	Records        []map[string]any `json:"records"`
}

// query runs soql and follows nextRecordsUrl until done or max records.
func (c *call) query(soql string, max int) (*QueryOutput, error) {
	body, err := c.get(c.a.dataPath("/query"), url.Values{"q": {soql}})
	if err != nil {
		return nil, err
	}
	return c.pages(body, max)
}

func recordsText(b *strings.Builder, recs []map[string]any) {
	for _, r := range recs {
		line, _ := json.Marshal(r)
		b.WriteString("- ")
		b.Write(line)
		b.WriteByte('\n')
	}
}

func (c *call) soqlQuery(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Query      string `json:"query"`
		MaxRecords *int   `json:"max_records"`
	}
	if err := rest.DecodeArgs(ToolSOQLQuery, p.Arguments, &args); err != nil {
		return nil, err
	}
	max, bad := rest.LimitArg("max_records", args.MaxRecords, c.a.maxRecords, c.a.maxRecords)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	if err := ValidateSOQL(args.Query); err != nil {
		return rest.ToolError(err.Error() + ". soql_query runs exactly one read-only SELECT statement."), nil
	}
	out, err := c.query(strings.TrimSpace(args.Query), max)
	if err != nil {
		return c.ToolFailure(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d record(s) returned", out.Returned)
	if out.Truncated {
		fmt.Fprintf(&b, " of %d matching (truncated at max_records=%d)", out.TotalSize, max)
	}
	b.WriteString(":\n")
	recordsText(&b, out.Records)
	return rest.Result(b.String(), out), nil
}

func (c *call) record(typ, id string, fields []string) (map[string]any, error) {
	var q url.Values
	if len(fields) > 0 {
		q = url.Values{"fields": {strings.Join(fields, ",")}}
	}
	body, err := c.get(c.a.dataPath("/sobjects/"+url.PathEscape(typ)+"/"+url.PathEscape(id)), q)
	if err != nil {
		return nil, err
	}
	var rec map[string]any
	if err := c.DecodeJSON(body, &rec); err != nil {
		return nil, err
	}
	return rec, nil
}

func checkRecordArgs(typ, id string, fields []string) string {
	switch {
	case !reSObject.MatchString(typ):
		return fmt.Sprintf("sobject %q is not an sObject API name (letters, digits, underscores, e.g. Opportunity)", rest.Clip(typ, 100))
	case !reID.MatchString(id):
		return fmt.Sprintf("id %q is not a 15- or 18-character Salesforce id", rest.Clip(id, 100))
	case len(fields) > 100:
		return "at most 100 fields may be requested"
	}
	for _, f := range fields {
		if !reField.MatchString(f) {
			return fmt.Sprintf("field %q is not a field API name", rest.Clip(f, 100))
		}
	}
	return ""
}

func (c *call) getRecord(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		SObject string   `json:"sobject"`
		ID      string   `json:"id"`
		Fields  []string `json:"fields"`
	}
	if err := rest.DecodeArgs(ToolGetRecord, p.Arguments, &args); err != nil {
		return nil, err
	}
	if bad := checkRecordArgs(args.SObject, args.ID, args.Fields); bad != "" {
		return rest.ToolError(bad), nil
	}
	rec, err := c.record(args.SObject, args.ID, args.Fields)
	if err != nil {
		return c.ToolFailure(err)
	}
	line, _ := json.MarshalIndent(rec, "", "  ")
	text := fmt.Sprintf("%s %s:\n%s", args.SObject, args.ID, line)
	return rest.Result(text, rec), nil
}

// BuildSOSL returns the SOSL statement the search tool sends: the term
// escaped with EscapeSOSL, IN ALL FIELDS, an optional RETURNING clause
// built from validated identifiers, and LIMIT.
func BuildSOSL(term string, objects []SearchObject, limit int) (string, error) {
	t := strings.TrimSpace(EscapeSOSL(term))
	if len([]rune(strings.TrimSpace(term))) < 2 {
		return "", fmt.Errorf("term must be at least 2 characters")
	}
	if len(term) > MaxSearchTermLength {
		return "", fmt.Errorf("term must be at most %d characters", MaxSearchTermLength)
	}
	var b strings.Builder
	b.WriteString("FIND {")
	b.WriteString(t)
	b.WriteString("} IN ALL FIELDS")
	if len(objects) > 0 {
		if len(objects) > 10 {
			return "", fmt.Errorf("at most 10 objects may be searched")
		}
		b.WriteString(" RETURNING ")
		seen := map[string]bool{}
		for i, o := range objects {
			if !reSObject.MatchString(o.Type) {
				return "", fmt.Errorf("objects[%d].type %q is not an sObject API name", i, rest.Clip(o.Type, 100))
			}
			if seen[strings.ToLower(o.Type)] {
				return "", fmt.Errorf("objects[%d].type %q is listed twice", i, o.Type)
			}
			seen[strings.ToLower(o.Type)] = true
			if len(o.Fields) > 20 {
				return "", fmt.Errorf("objects[%d]: at most 20 fields", i)
			}
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(o.Type)
			if len(o.Fields) > 0 {
				fseen := map[string]bool{}
				var fs []string
				for _, f := range o.Fields {
					if !reField.MatchString(f) {
						return "", fmt.Errorf("objects[%d].fields: %q is not a field API name", i, rest.Clip(f, 100))
					}
					if !fseen[strings.ToLower(f)] {
						fseen[strings.ToLower(f)] = true
						fs = append(fs, f)
					}
				}
				b.WriteString("(" + strings.Join(fs, ", ") + ")")
			}
		}
	}
	b.WriteString(" LIMIT " + strconv.Itoa(limit))
	return b.String(), nil
}

// SearchObject is one entry of the search tool's objects argument.
type SearchObject struct {
	Type   string   `json:"type"`
	Fields []string `json:"fields"`
}

func (c *call) search(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Term    string         `json:"term"`
		Objects []SearchObject `json:"objects"`
		Limit   *int           `json:"limit"`
	}
	if err := rest.DecodeArgs(ToolSearch, p.Arguments, &args); err != nil {
		return nil, err
	}
	hi := min(c.a.maxRecords, maxSearchRecords)
	limit, bad := rest.LimitArg("limit", args.Limit, hi, min(200, hi))
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	sosl, err := BuildSOSL(args.Term, args.Objects, limit)
	if err != nil {
		return rest.ToolError(err.Error()), nil
	}
	body, err := c.get(c.a.dataPath("/search"), url.Values{"q": {sosl}})
	if err != nil {
		return c.ToolFailure(err)
	}
	var res struct {
		SearchRecords []map[string]any `json:"searchRecords"`
	}
	if err := c.DecodeJSON(body, &res); err != nil {
		return c.ToolFailure(err)
	}
	if res.SearchRecords == nil {
		res.SearchRecords = []map[string]any{}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d record(s) found for %q:\n", len(res.SearchRecords), args.Term)
	recordsText(&b, res.SearchRecords)
	out := map[string]any{"returned": len(res.SearchRecords), "records": res.SearchRecords}
	return rest.Result(b.String(), out), nil
}

// Opportunity is one row of my_pipeline.
type Opportunity struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Amount    *float64 `json:"amount"`
	Stage     string   `json:"stage"`
	CloseDate string   `json:"closeDate"`
}

// PipelineOutput is the structured result of my_pipeline and the content
// of salesforce://my/pipeline.
type PipelineOutput struct {
	Opportunities []Opportunity `json:"opportunities"`
	// Scope is PipelineScopeMine or PipelineScopeTeam.
	Scope       string  `json:"scope"`
	Count       int     `json:"count"`
	TotalAmount float64 `json:"totalAmount"`
	Truncated   bool    `json:"truncated"`
}

// pipeline runs the query of scope (PipelineScopeMine or
// PipelineScopeTeam, already checked).
func (c *call) pipeline(scope string, max int) (*PipelineOutput, error) {
	soql, _ := pipelineSOQL(scope)
	q, err := c.query(soql, max)
	if err != nil {
		return nil, err
	}
	out := &PipelineOutput{Opportunities: []Opportunity{}, Scope: scope, Truncated: q.Truncated}
	for _, r := range q.Records {
		o := Opportunity{}
		o.ID, _ = r["Id"].(string)
		o.Name, _ = r["Name"].(string)
		o.Stage, _ = r["StageName"].(string)
		o.CloseDate, _ = r["CloseDate"].(string)
		if n, ok := r["Amount"].(json.Number); ok {
			if f, err := n.Float64(); err == nil {
				o.Amount = &f
				out.TotalAmount += f
			}
		}
		out.Opportunities = append(out.Opportunities, o)
	}
	out.Count = len(out.Opportunities)
	return out, nil
}

func (c *call) myPipeline(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Scope      string `json:"scope"`
		MaxRecords *int   `json:"max_records"`
	}
	if err := rest.DecodeArgs(ToolMyPipeline, p.Arguments, &args); err != nil {
		return nil, err
	}
	if args.Scope == "" {
		args.Scope = PipelineScopeMine
	}
	if _, ok := pipelineSOQL(args.Scope); !ok {
		return rest.ToolError(fmt.Sprintf("scope %q is not one of \"mine\" (opportunities you own) or \"team\" (owned by your reports)", rest.Clip(args.Scope, 100))), nil
	}
	max, bad := rest.LimitArg("max_records", args.MaxRecords, c.a.maxRecords, c.a.maxRecords)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	out, err := c.pipeline(args.Scope, max)
	if err != nil {
		return c.ToolFailure(err)
	}
	return rest.Result(pipelineText(out), out), nil
}

func pipelineText(out *PipelineOutput) string {
	var b strings.Builder
	whose := "you own"
	if out.Scope == PipelineScopeTeam {
		whose = "owned by your reports"
	}
	if out.Count == 0 {
		return "No open opportunities " + whose + " in Salesforce."
	}
	fmt.Fprintf(&b, "%d open opportunit", out.Count)
	if out.Count == 1 {
		b.WriteString("y")
	} else {
		b.WriteString("ies")
	}
	b.WriteString(" " + whose)
	fmt.Fprintf(&b, ", total amount %s", money(out.TotalAmount))
	if out.Truncated {
		b.WriteString(" (truncated: more are open)")
	}
	b.WriteString(":\n")
	for _, o := range out.Opportunities {
		amt := "no amount"
		if o.Amount != nil {
			amt = money(*o.Amount)
		}
		fmt.Fprintf(&b, "- %s — %s — %s — closes %s (id %s)\n", o.Name, amt, o.Stage, o.CloseDate, o.ID)
	}
	return b.String()
}

// money formats 1234567.5 as 1,234,567.50 (no currency: orgs differ).
func money(f float64) string {
	s := strconv.FormatFloat(f, 'f', 2, 64)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, ch := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if frac != "00" {
		b.WriteString("." + frac)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// readResource serves salesforce://my/pipeline and
// salesforce://sobjects/{type}/{id}.
func (c *call) readResource(uri string) (*mcp.ReadResourceResult, error) {
	var payload any
	switch {
	case uri == PipelineURI:
		out, err := c.pipeline(PipelineScopeMine, c.a.maxRecords)
		if err != nil {
			return nil, c.RPCFailure(err)
		}
		payload = out
	case strings.HasPrefix(uri, recordURIPrefix):
		typ, id, ok := strings.Cut(strings.TrimPrefix(uri, recordURIPrefix), "/")
		if !ok {
			return nil, mcp.ResourceNotFoundError(uri)
		}
		if bad := checkRecordArgs(typ, id, nil); bad != "" {
			return nil, c.Errorf(jsonrpc.CodeInvalidParams, "resource %s: %s", rest.Clip(uri, 200), bad)
		}
		rec, err := c.record(typ, id, nil)
		if err != nil {
			return nil, c.RPCFailure(err)
		}
		payload = rec
	default:
		return nil, mcp.ResourceNotFoundError(uri)
	}
	return c.JSONResource(uri, payload)
}
