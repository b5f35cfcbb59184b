package sandbox

// GET /services/data/vXX.X/sobjects/{sObject}/describe: an object's
// metadata, fields, picklist values and child relationships, as the
// calling user sees them ("sObject Describe", REST API Developer Guide,
// https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/resources_sobject_describe.htm;
// the field and child-relationship properties are those of the SOAP API's
// DescribeSObjectResult, Field and ChildRelationship,
// https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_calls_describesobjects_describesobjectresult.htm).
// Fields field-level security hides from the user are absent (fls.go); an
// object the user has no permission on is NOT_FOUND, as for any resource
// the user cannot reach.

import (
	"net/http"
	"sort"
	"strings"
)

// picklistValue is a PicklistEntry.
type picklistValue struct {
	Active       bool   `json:"active"`
	DefaultValue bool   `json:"defaultValue"`
	Label        string `json:"label"`
	ValidFor     any    `json:"validFor"`
	Value        string `json:"value"`
}

// fieldMeta is what describe says of a field beyond fieldDef.
type fieldMeta struct {
	label    string
	typ      string // describe type: id, string, picklist, reference, currency, percent, double, date, datetime, boolean, email, phone
	length   int
	required bool // nillable false
	readOnly bool // createable and updateable false (system, formula, auto-number)
	values   []string
	inactive []string // picklist values deactivated in Setup: still in describe, active false
	ref      string   // reference target
	relName  string   // relationshipName of a reference
}

func pick(label string, values ...string) fieldMeta {
	return fieldMeta{label: label, typ: "picklist", length: 255, values: values}
}

// stageName is Opportunity.StageName: required, with one inactive value.
var stageName = fieldMeta{label: "Stage", typ: "picklist", length: 255, required: true,
	values:   []string{"Prospecting", "Qualification", "Needs Analysis", "Value Proposition", "Id. Decision Makers", "Proposal/Price Quote", "Negotiation/Review", "Closed Won", "Closed Lost"},
	inactive: []string{"Perception Analysis"}}

// The standard values of Salesforce's standard picklists (Setup, "Picklist
// Value Sets" of a new org); Perception Analysis is deactivated in the
// seed org, as many orgs do, so that describe shows an inactive value.
var describeMeta = map[string]map[string]fieldMeta{
	"Account": {
		"Id":            {label: "Account ID", typ: "id", length: 18, required: true, readOnly: true},
		"Name":          {label: "Account Name", typ: "string", length: 255, required: true},
		"Industry":      pick("Industry", "Agriculture", "Apparel", "Banking", "Biotechnology", "Chemicals", "Communications", "Construction", "Consulting", "Education", "Electronics", "Energy", "Engineering", "Entertainment", "Environmental", "Finance", "Food & Beverage", "Government", "Healthcare", "Hospitality", "Insurance", "Machinery", "Manufacturing", "Media", "Not For Profit", "Other", "Recreation", "Retail", "Shipping", "Technology", "Telecommunications", "Transportation", "Utilities"),
		"Type":          pick("Account Type", "Prospect", "Customer - Direct", "Customer - Channel", "Channel Partner / Reseller", "Installation Partner", "Technology Partner", "Other"),
		"BillingCity":   {label: "Billing City", typ: "string", length: 40},
		"AnnualRevenue": {label: "Annual Revenue", typ: "currency"},
		"OwnerId":       {label: "Owner ID", typ: "reference", length: 18, required: true, ref: "User", relName: "Owner"},
		"CreatedDate":   {label: "Created Date", typ: "datetime", required: true, readOnly: true},
	},
	"Contact": {
		"Id":        {label: "Contact ID", typ: "id", length: 18, required: true, readOnly: true},
		"FirstName": {label: "First Name", typ: "string", length: 40},
		"LastName":  {label: "Last Name", typ: "string", length: 80, required: true},
		"Name":      {label: "Full Name", typ: "string", length: 121, required: true, readOnly: true},
		"Email":     {label: "Email", typ: "email", length: 80},
		"Title":     {label: "Title", typ: "string", length: 128},
		"Phone":     {label: "Business Phone", typ: "phone", length: 40},
		"AccountId": {label: "Account ID", typ: "reference", length: 18, ref: "Account", relName: "Account"},
		"OwnerId":   {label: "Owner ID", typ: "reference", length: 18, required: true, ref: "User", relName: "Owner"},
	},
	"Opportunity": {
		"Id":          {label: "Opportunity ID", typ: "id", length: 18, required: true, readOnly: true},
		"Name":        {label: "Name", typ: "string", length: 120, required: true},
		"AccountId":   {label: "Account ID", typ: "reference", length: 18, ref: "Account", relName: "Account"},
		"Amount":      {label: "Amount", typ: "currency"},
		"StageName":   stageName,
		"CloseDate":   {label: "Close Date", typ: "date", required: true},
		"IsClosed":    {label: "Closed", typ: "boolean", required: true, readOnly: true},
		"IsWon":       {label: "Won", typ: "boolean", required: true, readOnly: true},
		"Probability": {label: "Probability (%)", typ: "percent"},
		"OwnerId":     {label: "Owner ID", typ: "reference", length: 18, required: true, ref: "User", relName: "Owner"},
		"CreatedDate": {label: "Created Date", typ: "datetime", required: true, readOnly: true},
	},
	"Case": {
		"Id":          {label: "Case ID", typ: "id", length: 18, required: true, readOnly: true},
		"CaseNumber":  {label: "Case Number", typ: "string", length: 30, required: true, readOnly: true},
		"Subject":     {label: "Subject", typ: "string", length: 255},
		"Status":      pick("Status", "New", "Working", "Escalated", "Closed"),
		"Priority":    pick("Priority", "High", "Medium", "Low"),
		"Origin":      pick("Case Origin", "Phone", "Email", "Web"),
		"IsClosed":    {label: "Closed", typ: "boolean", required: true, readOnly: true},
		"AccountId":   {label: "Account ID", typ: "reference", length: 18, ref: "Account", relName: "Account"},
		"ContactId":   {label: "Contact ID", typ: "reference", length: 18, ref: "Contact", relName: "Contact"},
		"OwnerId":     {label: "Owner ID", typ: "reference", length: 18, required: true, ref: "User", relName: "Owner"},
		"CreatedDate": {label: "Created Date", typ: "datetime", required: true, readOnly: true},
	},
	"User": {
		"Id":         {label: "User ID", typ: "id", length: 18, required: true, readOnly: true},
		"Username":   {label: "Username", typ: "string", length: 80, required: true},
		"Name":       {label: "Full Name", typ: "string", length: 121, required: true, readOnly: true},
		"Email":      {label: "Email", typ: "email", length: 128, required: true},
		"UserRoleId": {label: "Role ID", typ: "reference", length: 18},
		"ManagerId":  {label: "Manager ID", typ: "reference", length: 18, ref: "User", relName: "Manager"},
		"IsActive":   {label: "Active", typ: "boolean", required: true},
	},
}

// metaOf is describe's view of a field: describeMeta, or one derived from
// its type for fields the table does not list (fields added to the schema
// later read as plain fields).
func metaOf(obj, field string, t fieldType) fieldMeta {
	if m, ok := describeMeta[obj][field]; ok {
		return m
	}
	m := fieldMeta{label: field}
	switch t {
	case ftID:
		m.typ, m.length = "reference", 18
		if field == "Id" {
			m.typ, m.required, m.readOnly = "id", true, true
		}
	case ftString:
		m.typ, m.length = "string", 255
	case ftDouble:
		m.typ = "double"
	case ftDate:
		m.typ = "date"
	case ftDateTime:
		m.typ = "datetime"
	case ftBool:
		m.typ, m.required = "boolean", true
	}
	return m
}

// objectLabels are the objects' labels and plural labels.
var objectLabels = map[string][2]string{
	"Account": {"Account", "Accounts"}, "Contact": {"Contact", "Contacts"},
	"Opportunity": {"Opportunity", "Opportunities"}, "Case": {"Case", "Cases"}, "User": {"User", "Users"},
}

type describeField struct {
	Name             string          `json:"name"`
	Label            string          `json:"label"`
	Type             string          `json:"type"`
	Length           int             `json:"length"`
	Nillable         bool            `json:"nillable"`
	Createable       bool            `json:"createable"`
	Updateable       bool            `json:"updateable"`
	Custom           bool            `json:"custom"`
	Filterable       bool            `json:"filterable"`
	Sortable         bool            `json:"sortable"`
	PicklistValues   []picklistValue `json:"picklistValues"`
	ReferenceTo      []string        `json:"referenceTo"`
	RelationshipName *string         `json:"relationshipName"`
}

type childRelationship struct {
	ChildSObject     string `json:"childSObject"`
	Field            string `json:"field"`
	RelationshipName string `json:"relationshipName"`
	CascadeDelete    bool   `json:"cascadeDelete"`
}

type describeResult struct {
	Name               string              `json:"name"`
	Label              string              `json:"label"`
	LabelPlural        string              `json:"labelPlural"`
	KeyPrefix          string              `json:"keyPrefix"`
	Custom             bool                `json:"custom"`
	Createable         bool                `json:"createable"`
	Updateable         bool                `json:"updateable"`
	Deletable          bool                `json:"deletable"`
	Queryable          bool                `json:"queryable"`
	Searchable         bool                `json:"searchable"`
	Retrieveable       bool                `json:"retrieveable"`
	Fields             []describeField     `json:"fields"`
	ChildRelationships []childRelationship `json:"childRelationships"`
	URLs               map[string]string   `json:"urls"`
}

// childRelationships are the parent-to-child relationships of each object,
// derived from the schema's lookups (every lookup but those to User, whose
// hundreds of child relationships the sandbox does not model). The
// relationship name is the child object's plural label, Salesforce's
// convention for standard objects (SOQL and SOSL Reference,
// "Understanding Relationship Names",
// https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_relationships_and_custom_objects.htm).
func childRelationshipsOf(parent string) []childRelationship {
	var out []childRelationship
	seen := map[string]bool{}
	names := make([]string, 0, len(schema))
	for k := range schema {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		child := schema[k]
		rels := make([]relation, 0, len(child.relations))
		for _, r := range child.relations {
			rels = append(rels, r)
		}
		sort.Slice(rels, func(i, j int) bool { return rels[i].field < rels[j].field })
		for _, r := range rels {
			if r.target != parent || r.target == "User" {
				continue
			}
			name := plural(child.name)
			if seen[strings.ToLower(name)] {
				continue
			}
			seen[strings.ToLower(name)] = true
			out = append(out, childRelationship{ChildSObject: child.name, Field: r.field, RelationshipName: name, CascadeDelete: false})
		}
	}
	return out
}

func plural(obj string) string {
	if l, ok := objectLabels[obj]; ok {
		return l[1]
	}
	if strings.HasSuffix(obj, "y") {
		return obj[:len(obj)-1] + "ies"
	}
	return obj + "s"
}

func (s *Server) handleDescribe(w http.ResponseWriter, u *User, version, typ string) {
	obj := schema[strings.ToLower(typ)]
	if obj == nil || !u.canRead(obj.name) {
		writeAPIError(w, http.StatusNotFound, "NOT_FOUND", "The requested resource does not exist")
		return
	}
	labels, ok := objectLabels[obj.name]
	if !ok {
		labels = [2]string{obj.name, plural(obj.name)}
	}
	writable := obj.name != "User"
	base := "/services/data/" + version + "/sobjects/" + obj.name
	out := describeResult{
		Name: obj.name, Label: labels[0], LabelPlural: labels[1], KeyPrefix: obj.prefix,
		Createable: writable, Updateable: writable, Deletable: writable, Queryable: true, Searchable: true, Retrieveable: true,
		Fields:             []describeField{},
		ChildRelationships: []childRelationship{},
		URLs:               map[string]string{"sobject": base, "describe": base + "/describe", "rowTemplate": base + "/{ID}"},
	}
	for _, f := range obj.fields {
		if u.hidesField(obj.name, f.name) {
			continue
		}
		m := metaOf(obj.name, f.name, f.typ)
		df := describeField{
			Name: f.name, Label: m.label, Type: m.typ, Length: m.length, Nillable: !m.required,
			Createable: !m.readOnly, Updateable: !m.readOnly && f.name != "CreatedDate",
			Filterable: true, Sortable: true, PicklistValues: []picklistValue{}, ReferenceTo: []string{},
		}
		if m.typ == "id" {
			df.Createable, df.Updateable = false, false
		}
		for _, v := range m.values {
			df.PicklistValues = append(df.PicklistValues, picklistValue{Active: true, Label: v, Value: v})
		}
		for _, v := range m.inactive {
			df.PicklistValues = append(df.PicklistValues, picklistValue{Active: false, Label: v, Value: v})
		}
		if m.ref != "" {
			df.ReferenceTo = []string{m.ref}
			name := m.relName
			df.RelationshipName = &name
		}
		out.Fields = append(out.Fields, df)
	}
	for _, cr := range childRelationshipsOf(obj.name) {
		if u.canRead(cr.ChildSObject) {
			out.ChildRelationships = append(out.ChildRelationships, cr)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
