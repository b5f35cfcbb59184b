package sandbox

import (
	"encoding/json"
	"net/url"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func (e *env) describe(t *testing.T, tok, typ string) (int, describeResult, []byte) {
	t.Helper()
	status, b := e.get(t, tok, "/services/data/"+testVersion+"/sobjects/"+typ+"/describe")
	var d describeResult
	if status == 200 {
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("describe body %s: %v", b, err)
		}
	}
	return status, d, b
}

func fieldNames(d describeResult) []string {
	var out []string
	for _, f := range d.Fields {
		out = append(out, f.Name)
	}
	return out
}

// Field-level security: a rep's describe of Account has no AnnualRevenue,
// a manager's does; the rep cannot query, read or search it either.
func TestDescribeFieldLevelSecurity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rita, morgan := e.token(t, "rep@acme.example"), e.token(t, "manager@acme.example")

	status, d, b := e.describe(t, morgan, "account")
	if status != 200 || d.Name != "Account" || d.KeyPrefix != "001" || d.LabelPlural != "Accounts" {
		t.Fatalf("manager describe Account: %d %s", status, b)
	}
	if !slices.Contains(fieldNames(d), "AnnualRevenue") {
		t.Fatalf("manager's describe lacks AnnualRevenue: %v", fieldNames(d))
	}
	_, d, _ = e.describe(t, rita, "Account")
	if slices.Contains(fieldNames(d), "AnnualRevenue") || !slices.Contains(fieldNames(d), "Industry") {
		t.Fatalf("rep's describe of Account = %v, want Industry and no AnnualRevenue", fieldNames(d))
	}

	status, _, b = e.query(t, rita, "SELECT Id FROM Account WHERE AnnualRevenue > 0")
	if status != 400 || decodeAPIErr(t, b).ErrorCode != "INVALID_FIELD" {
		t.Fatalf("rep filtering on a hidden field: %d %s, want 400 INVALID_FIELD", status, b)
	}
	if status, _, b = e.query(t, morgan, "SELECT Id, AnnualRevenue FROM Account"); status != 200 {
		t.Fatalf("manager query: %d %s", status, b)
	}
	status, b = e.get(t, rita, "/services/data/"+testVersion+"/sobjects/Account/"+AccountAcme)
	var rec map[string]any
	_ = json.Unmarshal(b, &rec)
	if _, ok := rec["AnnualRevenue"]; status != 200 || ok {
		t.Fatalf("rep reads her account: %d %s, want 200 without AnnualRevenue", status, b)
	}
	status, b = e.get(t, rita, "/services/data/"+testVersion+"/sobjects/Account/"+AccountAcme+"?fields=Name,AnnualRevenue")
	if status != 400 || decodeAPIErr(t, b).ErrorCode != "INVALID_FIELD" {
		t.Fatalf("rep asks for a hidden field: %d %s", status, b)
	}
	status, b = e.get(t, rita, "/services/data/"+testVersion+"/search?q="+url.QueryEscape("FIND {Acme} RETURNING Account(Name, AnnualRevenue)"))
	if status != 400 || decodeAPIErr(t, b).ErrorCode != "INVALID_FIELD" {
		t.Fatalf("rep searches for a hidden field: %d %s", status, b)
	}
}

func TestDescribeShape(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rita := e.token(t, "rep@acme.example")
	_, d, b := e.describe(t, rita, "Opportunity")
	var stage *describeField
	for i := range d.Fields {
		if d.Fields[i].Name == "StageName" {
			stage = &d.Fields[i]
		}
	}
	if stage == nil || stage.Type != "picklist" || stage.Nillable || !stage.Updateable {
		t.Fatalf("StageName = %+v in %s", stage, b)
	}
	var active, inactive []string
	for _, v := range stage.PicklistValues {
		if v.Active {
			active = append(active, v.Value)
		} else {
			inactive = append(inactive, v.Value)
		}
	}
	if !slices.Contains(active, "Closed Won") || !slices.Equal(inactive, []string{"Perception Analysis"}) {
		t.Fatalf("StageName values: active %v inactive %v", active, inactive)
	}
	for _, f := range d.Fields {
		switch f.Name {
		case "AccountId":
			if f.Type != "reference" || !slices.Equal(f.ReferenceTo, []string{"Account"}) || f.RelationshipName == nil || *f.RelationshipName != "Account" {
				t.Errorf("AccountId = %+v", f)
			}
		case "IsClosed", "Id":
			if f.Createable || f.Updateable {
				t.Errorf("%s is writable: %+v", f.Name, f)
			}
		}
	}
	_, acct, _ := e.describe(t, rita, "Account")
	want := []childRelationship{
		{ChildSObject: "Case", Field: "AccountId", RelationshipName: "Cases"},
		{ChildSObject: "Contact", Field: "AccountId", RelationshipName: "Contacts"},
		{ChildSObject: "Opportunity", Field: "AccountId", RelationshipName: "Opportunities"},
	}
	if diff := cmp.Diff(want, acct.ChildRelationships); diff != "" {
		t.Errorf("Account child relationships (-want +got):\n%s", diff)
	}

	for _, tc := range []struct{ user, typ string }{
		{"rep@acme.example", "Invoice__c"},
		{"integration@acme.example", "Account"}, // no object permission
	} {
		tok, _ := e.sb.IssueToken(tc.user)
		if status, _, b := e.describe(t, tok, tc.typ); status != 404 || decodeAPIErr(t, b).ErrorCode != "NOT_FOUND" {
			t.Errorf("%s describes %s: %d %s, want 404 NOT_FOUND", tc.user, tc.typ, status, b)
		}
	}
}

// Related records follow sharing: with accounts Public Read Only and
// opportunities Private, a rep sees a colleague's account but not its
// opportunities; the manager above both sees them.
func TestRelationshipsUnderSharing(t *testing.T) {
	t.Parallel()
	seed := DefaultSeed()
	seed.Sharing = map[string]SharingModel{"Account": SharingRead, "Opportunity": SharingPrivate}
	e := newEnv(t, &Options{Seed: seed, BatchSize: 2})
	rita, morgan := e.token(t, "rep@acme.example"), e.token(t, "manager@acme.example")
	rel := func(tok, path string) (int, queryResult, []byte) {
		t.Helper()
		status, b := e.get(t, tok, "/services/data/"+testVersion+"/sobjects/"+path)
		var qr queryResult
		if status == 200 {
			_ = json.Unmarshal(b, &qr)
		}
		return status, qr, b
	}

	status, qr, b := rel(rita, "Account/"+AccountGlobex+"/Opportunities")
	if status != 200 || qr.TotalSize != 0 || len(qr.Records) != 0 || !qr.Done {
		t.Fatalf("rep: Globex's opportunities = %d %s, want 200 and an empty set", status, b)
	}
	_, qr, _ = rel(morgan, "Account/"+AccountGlobex+"/opportunities")
	if diff := cmp.Diff(sorted(OppGlobexNewLogo, OppGlobexServices), ids(qr.Records)); diff != "" {
		t.Errorf("manager: Globex's opportunities (-want +got):\n%s", diff)
	}
	// Paged like a query: BatchSize 2, Acme has three opportunities.
	_, qr, _ = rel(rita, "Account/"+AccountAcme+"/Opportunities?fields=Name,StageName")
	if qr.TotalSize != 3 || qr.Done || len(qr.Records) != 2 || qr.NextRecordsURL == "" {
		t.Fatalf("rep: Acme's opportunities page 1 = %+v", qr)
	}
	if _, ok := qr.Records[0]["Amount"]; ok {
		t.Errorf("fields=Name,StageName returned Amount: %v", qr.Records[0])
	}
	status, b = e.get(t, rita, qr.NextRecordsURL)
	var more queryResult
	_ = json.Unmarshal(b, &more)
	if status != 200 || !more.Done || len(more.Records) != 1 {
		t.Fatalf("page 2: %d %s", status, b)
	}

	// To-one: the parent record, or 404 when sharing hides the record.
	status, b = e.get(t, rita, "/services/data/"+testVersion+"/sobjects/Opportunity/"+OppAcmeRenewal+"/Account")
	var acct map[string]any
	_ = json.Unmarshal(b, &acct)
	if status != 200 || acct["Id"] != AccountAcme {
		t.Fatalf("rep: renewal's account = %d %s", status, b)
	}
	if status, b = e.get(t, rita, "/services/data/"+testVersion+"/sobjects/Opportunity/"+OppGlobexNewLogo+"/Account"); status != 404 {
		t.Fatalf("rep: a colleague's private opportunity's account = %d %s, want 404", status, b)
	}

	for _, tc := range []struct {
		path   string
		status int
		code   string
	}{
		{"Account/" + AccountAcme + "/Invoices__r", 404, "NOT_FOUND"},
		{"Account/" + AccountAcme + "/Contacts?fields=Name,Nope", 400, "INVALID_FIELD"},
		{"Opportunity/" + OppAcmeRenewal + "/Account?fields=AnnualRevenue", 400, "INVALID_FIELD"}, // FLS
		{"Opportunity/" + OppGlobexNewLogo + "/Account", 404, "NOT_FOUND"},
		{"Account/not-an-id/Contacts", 404, "NOT_FOUND"},
	} {
		status, b := e.get(t, rita, "/services/data/"+testVersion+"/sobjects/"+tc.path)
		if status != tc.status || decodeAPIErr(t, b).ErrorCode != tc.code {
			t.Errorf("GET %s = %d %s, want %d %s", tc.path, status, b, tc.status, tc.code)
		}
	}
}

func TestRecentlyViewed(t *testing.T) {
	t.Parallel()
	recent := func(e *env, tok, q string) []string {
		t.Helper()
		status, b := e.get(t, tok, "/services/data/"+testVersion+"/recent"+q)
		var recs []map[string]any
		if status != 200 || json.Unmarshal(b, &recs) != nil {
			t.Fatalf("recent: %d %s", status, b)
		}
		for _, r := range recs {
			attrs := r["attributes"].(map[string]any)
			if attrs["type"] == "" || r["Name"] == nil {
				t.Errorf("recent record without type or Name: %v", r)
			}
		}
		return ids(recs)
	}
	e := newEnv(t, nil)
	rita, morgan := e.token(t, "rep@acme.example"), e.token(t, "manager@acme.example")
	if diff := cmp.Diff([]string{OppAcmeRenewal, AccountAcme, ContactAcme, OppGlobexNewLogo, CaseAcme}, recent(e, rita, "")); diff != "" {
		t.Errorf("rita (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{OppInitechPlatform, AccountInitech}, recent(e, morgan, "?limit=2")); diff != "" {
		t.Errorf("morgan, limit 2 (-want +got):\n%s", diff)
	}
	if err := e.sb.MarkViewed("rep@acme.example", CaseAcme); err != nil {
		t.Fatal(err)
	}
	if got := recent(e, rita, "?limit=1"); !slices.Equal(got, []string{CaseAcme}) {
		t.Errorf("after MarkViewed: %v", got)
	}
	if status, b := e.get(t, rita, "/services/data/"+testVersion+"/recent?limit=x"); status != 400 {
		t.Errorf("limit=x: %d %s", status, b)
	}

	// Filtered by what the user may see now: under Private sharing the
	// colleague's opportunity rita once looked at is gone.
	p := newEnv(t, privateOrg())
	if diff := cmp.Diff([]string{OppAcmeRenewal, AccountAcme, ContactAcme, CaseAcme}, recent(p, p.token(t, "rep@acme.example"), "")); diff != "" {
		t.Errorf("rita, private org (-want +got):\n%s", diff)
	}
}
