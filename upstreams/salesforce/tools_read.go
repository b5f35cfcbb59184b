package salesforce

// The read tools a rep uses every day besides queries: describe an object
// (so the model stops guessing field names), the records related to a
// record, and the user's recently viewed records. Each calls the REST API
// as the signed-in user, so Salesforce's sharing and field-level security
// decide what comes back.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Tool names of the read tools.
const (
	ToolDescribeObject = "describe_object"
	ToolRelatedRecords = "related_records"
	ToolRecentlyViewed = "recently_viewed"
)

// maxRecent is the recent resource's own ceiling (RecentlyViewed keeps 200
// entries); defaultRecent is the tool's default.
const (
	maxRecent     = 200
	defaultRecent = 25
)

// DescribeField is one field of describe_object's result: what a model
// needs to write SOQL and to fill a record, and nothing else.
type DescribeField struct {
	Name       string `json:"name"`
	Label      string `json:"label"`
	Type       string `json:"type"`
	Length     int    `json:"length,omitempty"`
	Nillable   bool   `json:"nillable"`
	Createable bool   `json:"createable"`
	Updateable bool   `json:"updateable"`
	// Picklist are the active picklist values (inactive ones cannot be
	// set and are left out).
	Picklist []string `json:"picklistValues,omitempty"`
	// ReferenceTo and RelationshipName are set on lookups: the target
	// objects and the name to use in SOQL paths (Account.Name).
	ReferenceTo      []string `json:"referenceTo,omitempty"`
	RelationshipName string   `json:"relationshipName,omitempty"`
}

// ChildRelationship is a parent-to-child relationship usable with
// related_records.
type ChildRelationship struct {
	RelationshipName string `json:"relationshipName"`
	ChildSObject     string `json:"childSObject"`
	Field            string `json:"field"`
}

// DescribeOutput is the structured result of describe_object.
type DescribeOutput struct {
	Name               string              `json:"name"`
	Label              string              `json:"label"`
	Createable         bool                `json:"createable"`
	Updateable         bool                `json:"updateable"`
	Fields             []DescribeField     `json:"fields"`
	ChildRelationships []ChildRelationship `json:"childRelationships"`
}

// RelatedOutput is the structured result of related_records.
type RelatedOutput struct {
	Relationship string           `json:"relationship"`
	TotalSize    int              `json:"totalSize"`
	Returned     int              `json:"returned"`
	Truncated    bool             `json:"truncated"`
	Records      []map[string]any `json:"records"`
}

// RecentItem is one entry of recently_viewed.
type RecentItem struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name"`
}

// RecentOutput is the structured result of recently_viewed.
type RecentOutput struct {
	Returned int          `json:"returned"`
	Records  []RecentItem `json:"records"`
}

func (a *Adapter) describeTool(readOnly *mcp.ToolAnnotations) rest.Tool {
	return rest.Tool{Run: rest.Bind(a.call, (*call).describeObject), Def: &mcp.Tool{
		Name:  ToolDescribeObject,
		Title: "Describe a Salesforce object",
		Description: "Lists the fields of one sObject as the signed-in user may see them (field-level security applies: fields the user cannot read are absent), " +
			"with API name, label, type, length, whether it is required (nillable false) and writable, the active picklist values, lookups' targets and relationship names, " +
			"and the object's child relationships (for related_records). Use it before writing SOQL against fields you have not seen, especially custom fields (ending in __c).",
		InputSchema: rest.Object(map[string]any{
			"sobject": map[string]any{"type": "string", "pattern": reSObject.String(), "description": "The sObject API name, e.g. Opportunity, Account, or a custom object such as Invoice__c."},
		}, "sobject"),
		OutputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"name":       map[string]any{"type": "string"},
				"label":      map[string]any{"type": "string"},
				"createable": map[string]any{"type": "boolean"},
				"updateable": map[string]any{"type": "boolean"},
				"fields": map[string]any{"type": "array", "items": rest.Object(map[string]any{
					"name":             map[string]any{"type": "string"},
					"label":            map[string]any{"type": "string"},
					"type":             map[string]any{"type": "string", "description": "Salesforce field type: string, picklist, reference, currency, date, datetime, boolean, …"},
					"length":           map[string]any{"type": "integer"},
					"nillable":         map[string]any{"type": "boolean"},
					"createable":       map[string]any{"type": "boolean"},
					"updateable":       map[string]any{"type": "boolean"},
					"picklistValues":   map[string]any{"type": "array", "items": map[string]any{"type": "string"}, "description": "Active values only."},
					"referenceTo":      map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
					"relationshipName": map[string]any{"type": "string"},
				}, "name", "label", "type", "nillable", "createable", "updateable")},
				"childRelationships": map[string]any{"type": "array", "items": rest.Object(map[string]any{
					"relationshipName": map[string]any{"type": "string"},
					"childSObject":     map[string]any{"type": "string"},
					"field":            map[string]any{"type": "string"},
				}, "relationshipName", "childSObject", "field")},
			},
			"required": []string{"name", "label", "createable", "updateable", "fields", "childRelationships"},
		},
		Annotations: readOnly,
	}}
}

func (a *Adapter) relatedTool(maxRec map[string]any, readOnly *mcp.ToolAnnotations) rest.Tool {
	return rest.Tool{Run: rest.Bind(a.call, (*call).relatedRecords), Def: &mcp.Tool{
		Name:  ToolRelatedRecords,
		Title: "Records related to a Salesforce record",
		Description: "Follows one relationship of a record as the signed-in user: a child relationship lists the related records the user may see " +
			"(e.g. an Account's Opportunities, Contacts or Cases; an Opportunity's Tasks), a lookup returns the one parent record (e.g. an Opportunity's Account or Owner). " +
			"describe_object lists an object's child relationships and lookups' relationship names.",
		InputSchema: rest.Object(map[string]any{
			"sobject":      map[string]any{"type": "string", "pattern": reSObject.String(), "description": "The record's sObject API name, e.g. Account."},
			"id":           map[string]any{"type": "string", "pattern": reID.String(), "description": "The record's 15- or 18-character id."},
			"relationship": map[string]any{"type": "string", "pattern": reSObject.String(), "description": "The relationship name, e.g. Opportunities, Contacts, Cases, Account, Owner, or a custom one ending in __r."},
			"fields": map[string]any{
				"type": "array", "maxItems": 100, "uniqueItems": true,
				"items":       map[string]any{"type": "string", "pattern": reSObject.String()},
				"description": "Field API names of the related records to return (e.g. [\"Name\", \"StageName\"]); omit for every field the user may read.",
			},
			"max_records": maxRec,
		}, "sobject", "id", "relationship"),
		OutputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"relationship": map[string]any{"type": "string"},
				"totalSize":    map[string]any{"type": "integer"},
				"returned":     map[string]any{"type": "integer"},
				"truncated":    map[string]any{"type": "boolean"},
				"records":      map[string]any{"type": "array", "items": map[string]any{"type": "object"}},
			},
			"required": []string{"relationship", "totalSize", "returned", "truncated", "records"},
		},
		Annotations: readOnly,
	}}
}

func (a *Adapter) recentTool(readOnly *mcp.ToolAnnotations) rest.Tool {
	return rest.Tool{Run: rest.Bind(a.call, (*call).recentlyViewed), Def: &mcp.Tool{
		Name:        ToolRecentlyViewed,
		Title:       "My recently viewed Salesforce records",
		Description: "Lists the records the signed-in user viewed most recently in Salesforce, most recent first, with type, id and name — what they were just working on.",
		InputSchema: rest.Object(map[string]any{
			"limit": map[string]any{"type": "integer", "minimum": 1, "maximum": maxRecent, "description": fmt.Sprintf("Most records to return (1-%d, default %d).", maxRecent, defaultRecent)},
		}),
		OutputSchema: map[string]any{
			"type": "object",
			"properties": map[string]any{
				"returned": map[string]any{"type": "integer"},
				"records": map[string]any{"type": "array", "items": rest.Object(map[string]any{
					"type": map[string]any{"type": "string"},
					"id":   map[string]any{"type": "string"},
					"name": map[string]any{"type": "string"},
				}, "type", "id", "name")},
			},
			"required": []string{"returned", "records"},
		},
		Annotations: readOnly,
	}}
}

// isNotFound reports a 404 answer of the REST API.
func isNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func badSObject(name string) string {
	return fmt.Sprintf("sobject %q is not an sObject API name (letters, digits, underscores, e.g. Opportunity)", rest.Clip(name, 100))
}

func (c *call) describeObject(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		SObject string `json:"sobject"`
	}
	if err := rest.DecodeArgs(ToolDescribeObject, p.Arguments, &args); err != nil {
		return nil, err
	}
	if !reSObject.MatchString(args.SObject) {
		return rest.ToolError(badSObject(args.SObject)), nil
	}
	body, err := c.get(c.a.dataPath("/sobjects/"+url.PathEscape(args.SObject)+"/describe"), nil)
	if isNotFound(err) {
		return rest.ToolError(fmt.Sprintf("Salesforce has no object %q that %s may use: it does not exist (check the API name; custom objects end in __c) or the user's profile has no access to it.", args.SObject, who(c.Token()))), nil
	}
	if err != nil {
		return c.ToolFailure(err)
	}
	// The platform's describe, of which the tool keeps a compact subset
	// (REST API "sObject Describe"; Field and ChildRelationship as in
	// the SOAP API's DescribeSObjectResult).
	var d struct {
		Name       string `json:"name"`
		Label      string `json:"label"`
		Createable bool   `json:"createable"`
		Updateable bool   `json:"updateable"`
		Fields     []struct {
			DescribeField
			Picklist []struct {
				Active bool   `json:"active"`
				Value  string `json:"value"`
			} `json:"picklistValues"`
			RelationshipName *string `json:"relationshipName"`
		} `json:"fields"`
		ChildRelationships []struct {
			ChildRelationship
			RelationshipName *string `json:"relationshipName"`
		} `json:"childRelationships"`
	}
	if err := c.DecodeJSON(body, &d); err != nil {
		return c.ToolFailure(err)
	}
	out := &DescribeOutput{Name: d.Name, Label: d.Label, Createable: d.Createable, Updateable: d.Updateable,
		Fields: make([]DescribeField, 0, len(d.Fields)), ChildRelationships: []ChildRelationship{}}
	for _, f := range d.Fields {
		df := f.DescribeField
		df.Picklist = nil
		for _, v := range f.Picklist {
			if v.Active {
				df.Picklist = append(df.Picklist, v.Value)
			}
		}
		if f.RelationshipName != nil {
			df.RelationshipName = *f.RelationshipName
		}
		if len(df.ReferenceTo) == 0 {
			df.ReferenceTo = nil
		}
		out.Fields = append(out.Fields, df)
	}
	for _, cr := range d.ChildRelationships {
		// Child relationships without a name cannot be traversed.
		if cr.RelationshipName == nil || *cr.RelationshipName == "" {
			continue
		}
		r := cr.ChildRelationship
		r.RelationshipName = *cr.RelationshipName
		out.ChildRelationships = append(out.ChildRelationships, r)
	}
	return rest.Result(describeText(out), out), nil
}

func describeText(d *DescribeOutput) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %d field(s) you can see.\n", d.Name, d.Label, len(d.Fields))
	for _, f := range d.Fields {
		fmt.Fprintf(&b, "- %s (%s): %s", f.Name, f.Label, f.Type)
		if f.Length > 0 && f.Type != "id" && f.Type != "reference" {
			fmt.Fprintf(&b, "(%d)", f.Length)
		}
		if len(f.ReferenceTo) > 0 {
			fmt.Fprintf(&b, " → %s", strings.Join(f.ReferenceTo, ", "))
			if f.RelationshipName != "" {
				fmt.Fprintf(&b, " via %s", f.RelationshipName)
			}
		}
		switch {
		case !f.Createable && !f.Updateable:
			b.WriteString(", read-only")
		case !f.Nillable:
			b.WriteString(", required")
		}
		if len(f.Picklist) > 0 {
			fmt.Fprintf(&b, "; values: %s", strings.Join(f.Picklist, " | "))
		}
		b.WriteByte('\n')
	}
	if len(d.ChildRelationships) > 0 {
		b.WriteString("Child relationships (related_records):")
		for i, r := range d.ChildRelationships {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " %s (%s.%s)", r.RelationshipName, r.ChildSObject, r.Field)
		}
		b.WriteByte('\n')
	}
	return b.String()
}

func (c *call) relatedRecords(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		SObject      string   `json:"sobject"`
		ID           string   `json:"id"`
		Relationship string   `json:"relationship"`
		Fields       []string `json:"fields"`
		MaxRecords   *int     `json:"max_records"`
	}
	if err := rest.DecodeArgs(ToolRelatedRecords, p.Arguments, &args); err != nil {
		return nil, err
	}
	if bad := checkRecordArgs(args.SObject, args.ID, nil); bad != "" {
		return rest.ToolError(bad), nil
	}
	if !reSObject.MatchString(args.Relationship) {
		return rest.ToolError(fmt.Sprintf("relationship %q is not a relationship name (letters, digits, underscores, e.g. Opportunities or Invoices__r)", rest.Clip(args.Relationship, 100))), nil
	}
	if len(args.Fields) > 100 {
		return rest.ToolError("at most 100 fields may be requested"), nil
	}
	for _, f := range args.Fields {
		if !reSObject.MatchString(f) {
			return rest.ToolError(fmt.Sprintf("field %q is not a field API name of the related object", rest.Clip(f, 100))), nil
		}
	}
	max, bad := rest.LimitArg("max_records", args.MaxRecords, c.a.maxRecords, c.a.maxRecords)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	var q url.Values
	if len(args.Fields) > 0 {
		q = url.Values{"fields": {strings.Join(args.Fields, ",")}}
	}
	path := c.a.dataPath("/sobjects/" + url.PathEscape(args.SObject) + "/" + url.PathEscape(args.ID) + "/" + url.PathEscape(args.Relationship))
	body, err := c.get(path, q)
	if isNotFound(err) {
		return rest.ToolError(fmt.Sprintf("Salesforce found nothing for %s %s → %s visible to %s: the record does not exist or is not shared with the user, %s is not a relationship of %s (describe_object lists them), or the lookup is empty or points to a record the user cannot see.", args.SObject, args.ID, args.Relationship, who(c.Token()), args.Relationship, args.SObject)), nil
	}
	if err != nil {
		return c.ToolFailure(err)
	}
	out := &RelatedOutput{Relationship: args.Relationship}
	// A lookup answers the one parent record; a child relationship a
	// query result ("Get Records Using sObject Relationships").
	var probe struct {
		Records json.RawMessage `json:"records"`
	}
	if err := c.DecodeJSON(body, &probe); err != nil {
		return c.ToolFailure(err)
	}
	if probe.Records == nil {
		var rec map[string]any
		if err := c.DecodeJSON(body, &rec); err != nil {
			return c.ToolFailure(err)
		}
		out.Records, out.TotalSize = []map[string]any{rec}, 1
	} else {
		qo, err := c.pages(body, max)
		if err != nil {
			return c.ToolFailure(err)
		}
		out.Records, out.TotalSize, out.Truncated = qo.Records, qo.TotalSize, qo.Truncated
	}
	out.Returned = len(out.Records)
	var b strings.Builder
	fmt.Fprintf(&b, "%s of %s %s: %d record(s)", args.Relationship, args.SObject, args.ID, out.Returned)
	if out.Truncated {
		fmt.Fprintf(&b, " of %d (truncated at max_records=%d)", out.TotalSize, max)
	}
	b.WriteString(":\n")
	recordsText(&b, out.Records)
	return rest.Result(b.String(), out), nil
}

// pages reads a query-shaped first page (body) and follows nextRecordsUrl
// (only under /services/data/) until done or max records: query results
// and child relationship sets alike.
func (c *call) pages(body []byte, max int) (*QueryOutput, error) {
	out := &QueryOutput{Records: []map[string]any{}}
	for pages := 0; ; pages++ {
		var pg queryPage
		if err := c.DecodeJSON(body, &pg); err != nil {
			return nil, err
		}
		if pages == 0 {
			out.TotalSize = pg.TotalSize
		}
		room := max - len(out.Records)
		if len(pg.Records) > room {
			out.Records = append(out.Records, pg.Records[:room]...)
			out.Truncated = true
			break
		}
		out.Records = append(out.Records, pg.Records...)
		if pg.Done || pg.NextRecordsURL == "" {
			break
		}
		if len(out.Records) >= max {
			out.Truncated = true
			break
		}
		next := pg.NextRecordsURL
		if !strings.HasPrefix(next, "/services/data/") || strings.Contains(next, "..") || strings.ContainsAny(next, "?#\\") || pages > 10000 {
			return nil, fmt.Errorf("Salesforce answered with an unexpected nextRecordsUrl; the result was discarded")
		}
		var err error
		if body, err = c.get(next, nil); err != nil {
			return nil, err
		}
	}
	out.Returned = len(out.Records)
	if out.TotalSize > out.Returned {
		out.Truncated = true
	}
	return out, nil
}

func (c *call) recentlyViewed(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Limit *int `json:"limit"`
	}
	if err := rest.DecodeArgs(ToolRecentlyViewed, p.Arguments, &args); err != nil {
		return nil, err
	}
	limit, bad := rest.LimitArg("limit", args.Limit, maxRecent, defaultRecent)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	body, err := c.get(c.a.dataPath("/recent"), url.Values{"limit": {fmt.Sprint(limit)}})
	if err != nil {
		return c.ToolFailure(err)
	}
	var recs []struct {
		Attributes struct {
			Type string `json:"type"`
		} `json:"attributes"`
		ID   string `json:"Id"`
		Name any    `json:"Name"`
	}
	if err := c.DecodeJSON(body, &recs); err != nil {
		return c.ToolFailure(err)
	}
	out := &RecentOutput{Records: make([]RecentItem, 0, len(recs))}
	for _, r := range recs {
		if len(out.Records) >= limit {
			break
		}
		name, _ := r.Name.(string)
		out.Records = append(out.Records, RecentItem{Type: r.Attributes.Type, ID: r.ID, Name: name})
	}
	out.Returned = len(out.Records)
	var b strings.Builder
	if out.Returned == 0 {
		b.WriteString("No recently viewed records in Salesforce.")
	} else {
		fmt.Fprintf(&b, "%d recently viewed record(s), most recent first:\n", out.Returned)
		for _, r := range out.Records {
			fmt.Fprintf(&b, "- %s %s (id %s)\n", r.Type, r.Name, r.ID)
		}
	}
	return rest.Result(b.String(), out), nil
}
