package salesforce

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
)

func fieldsOf(d DescribeOutput) map[string]DescribeField {
	m := map[string]DescribeField{}
	for _, f := range d.Fields {
		m[f.Name] = f
	}
	return m
}

// describe_object runs as the user: the rep's Account has no
// AnnualRevenue (field-level security), the manager's has; picklists keep
// active values only; child relationships are listed.
func TestDescribeObjectAsUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))

	var rep, mgr DescribeOutput
	structured(t, mustTool(t, a, rita, ToolDescribeObject, map[string]any{"sobject": "Account"}), &rep)
	res := mustTool(t, a, morgan, ToolDescribeObject, map[string]any{"sobject": "Account"})
	structured(t, res, &mgr)
	if _, ok := fieldsOf(rep)["AnnualRevenue"]; ok {
		t.Errorf("rita's describe shows AnnualRevenue, which field-level security hides from her")
	}
	if _, ok := fieldsOf(mgr)["AnnualRevenue"]; !ok || !strings.Contains(text(res), "AnnualRevenue (Annual Revenue): currency") {
		t.Errorf("morgan's describe lacks AnnualRevenue: %s", text(res))
	}
	var rels []string
	for _, r := range rep.ChildRelationships {
		rels = append(rels, r.RelationshipName)
	}
	if !slices.Contains(rels, "Opportunities") || !slices.Contains(rels, "Contacts") {
		t.Errorf("Account child relationships = %v", rels)
	}

	var opp DescribeOutput
	res = mustTool(t, a, rita, ToolDescribeObject, map[string]any{"sobject": "Opportunity"})
	structured(t, res, &opp)
	stage := fieldsOf(opp)["StageName"]
	if stage.Type != "picklist" || stage.Nillable || !slices.Contains(stage.Picklist, "Closed Won") || slices.Contains(stage.Picklist, "Perception Analysis") {
		t.Errorf("StageName = %+v, want a required picklist with active values only", stage)
	}
	acct := fieldsOf(opp)["AccountId"]
	if !slices.Equal(acct.ReferenceTo, []string{"Account"}) || acct.RelationshipName != "Account" {
		t.Errorf("AccountId = %+v", acct)
	}
	if !strings.Contains(text(res), "StageName (Stage): picklist(255), required; values: Prospecting | ") || strings.Contains(text(res), "Perception Analysis") {
		t.Errorf("describe text:\n%s", text(res))
	}

	// Unknown object: a tool error saying so, not "record not found".
	res, _, err := callTool(t, a, rita, ToolDescribeObject, map[string]any{"sobject": "Invoice__c"})
	if err != nil || !res.IsError || !strings.Contains(text(res), `no object "Invoice__c"`) {
		t.Errorf("unknown object: %v %s", err, text(res))
	}
}

// related_records runs as the user under sharing: with opportunities
// Private, rita sees her own account's opportunities but none of Sam's
// account's, while their manager sees Sam's.
func TestRelatedRecordsUnderSharing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{sharing: map[string]sandbox.SharingModel{"Account": sandbox.SharingRead, "Opportunity": sandbox.SharingPrivate}, batchSize: 2})
	a := e.adapter(t, e.config(e.jwtBearer()))
	ids := func(out RelatedOutput) []string {
		s := []string{}
		for _, r := range out.Records {
			s = append(s, r["Id"].(string))
		}
		return s
	}
	var out RelatedOutput
	structured(t, mustTool(t, a, rita, ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountGlobex, "relationship": "Opportunities"}), &out)
	if out.Returned != 0 || out.TotalSize != 0 {
		t.Errorf("rita: Globex's opportunities = %v, want none (sharing)", ids(out))
	}
	structured(t, mustTool(t, a, morgan, ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountGlobex, "relationship": "Opportunities"}), &out)
	if diff := cmp.Diff([]string{sandbox.OppGlobexNewLogo, sandbox.OppGlobexServices}, ids(out)); diff != "" {
		t.Errorf("morgan: Globex's opportunities (-want +got):\n%s", diff)
	}
	// Pages are followed (batch 2, three opportunities) and max_records
	// truncates.
	res := mustTool(t, a, rita, ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountAcme, "relationship": "Opportunities", "fields": []string{"Id", "Name", "StageName"}})
	structured(t, res, &out)
	if diff := cmp.Diff([]string{sandbox.OppAcmeRenewal, sandbox.OppAcmeExpansion, sandbox.OppAcmePilot}, ids(out)); diff != "" || out.Truncated {
		t.Errorf("rita: Acme's opportunities (-want +got):\n%s truncated=%v", diff, out.Truncated)
	}
	structured(t, mustTool(t, a, rita, ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountAcme, "relationship": "Opportunities", "max_records": 1}), &out)
	if out.Returned != 1 || !out.Truncated || out.TotalSize != 3 {
		t.Errorf("max_records 1: %+v", out)
	}
	// A lookup returns the parent.
	structured(t, mustTool(t, a, rita, ToolRelatedRecords, map[string]any{"sobject": "Opportunity", "id": sandbox.OppAcmeRenewal, "relationship": "Account", "fields": []string{"Id", "Name"}}), &out)
	if diff := cmp.Diff([]string{sandbox.AccountAcme}, ids(out)); diff != "" || out.Records[0]["Name"] != "Acme Widgets" {
		t.Errorf("renewal's account: %v", out.Records)
	}
	// Sam's private opportunity is not there for rita: a clear tool error.
	res, _, err := callTool(t, a, rita, ToolRelatedRecords, map[string]any{"sobject": "Opportunity", "id": sandbox.OppGlobexNewLogo, "relationship": "Account"})
	if err != nil || !res.IsError || !strings.Contains(text(res), "not shared with the user") {
		t.Errorf("hidden record: %v %s", err, text(res))
	}
}

func TestRecentlyViewedPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	var r, m RecentOutput
	res := mustTool(t, a, rita, ToolRecentlyViewed, nil)
	structured(t, res, &r)
	structured(t, mustTool(t, a, morgan, ToolRecentlyViewed, map[string]any{"limit": 2}), &m)
	want := []RecentItem{
		{Type: "Opportunity", ID: sandbox.OppAcmeRenewal, Name: "Acme Widgets - Renewal"},
		{Type: "Account", ID: sandbox.AccountAcme, Name: "Acme Widgets"},
		{Type: "Contact", ID: sandbox.ContactAcme, Name: "Alice Anders"},
		{Type: "Opportunity", ID: sandbox.OppGlobexNewLogo, Name: "Globex - New Logo"},
		{Type: "Case", ID: sandbox.CaseAcme, Name: "00001001"},
	}
	if diff := cmp.Diff(want, r.Records); diff != "" || r.Returned != 5 {
		t.Errorf("rita (-want +got):\n%s", diff)
	}
	if !strings.Contains(text(res), "- Opportunity Acme Widgets - Renewal (id "+sandbox.OppAcmeRenewal+")") {
		t.Errorf("text:\n%s", text(res))
	}
	if diff := cmp.Diff([]RecentItem{
		{Type: "Opportunity", ID: sandbox.OppInitechPlatform, Name: "Initech - Platform"},
		{Type: "Account", ID: sandbox.AccountInitech, Name: "Initech"},
	}, m.Records); diff != "" {
		t.Errorf("morgan, limit 2 (-want +got):\n%s", diff)
	}
}

// Bad input is refused with a precise tool error before Salesforce is
// called; the three tools are annotated read-only.
func TestReadToolsValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		tool string
		args map[string]any
		want string
	}{
		{ToolDescribeObject, map[string]any{"sobject": "Account/describe/../../query"}, "is not an sObject API name"},
		{ToolDescribeObject, map[string]any{"sobject": ""}, "is not an sObject API name"},
		{ToolRelatedRecords, map[string]any{"sobject": "Account", "id": "001 OR 1=1", "relationship": "Contacts"}, "is not a 15- or 18-character Salesforce id"},
		{ToolRelatedRecords, map[string]any{"sobject": "Acc ount", "id": sandbox.AccountAcme, "relationship": "Contacts"}, "is not an sObject API name"},
		{ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountAcme, "relationship": "Contacts/../Opportunities"}, "is not a relationship name"},
		{ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountAcme, "relationship": "Contacts", "fields": []string{"Name,Email"}}, "is not a field API name"},
		{ToolRelatedRecords, map[string]any{"sobject": "Account", "id": sandbox.AccountAcme, "relationship": "Contacts", "max_records": 0}, "max_records"},
		{ToolRecentlyViewed, map[string]any{"limit": 201}, "limit"},
	} {
		before := e.RestHits.Load()
		res, _, err := callTool(t, a, rita, tc.tool, tc.args)
		if err == nil && (!res.IsError || !strings.Contains(text(res), tc.want)) {
			t.Errorf("%s %v: %s, want a tool error containing %q", tc.tool, tc.args, text(res), tc.want)
		}
		if e.RestHits.Load() != before {
			t.Errorf("%s %v reached Salesforce", tc.tool, tc.args)
		}
	}

	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	lt, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, tool := range lt.Tools {
		switch tool.Name {
		case ToolDescribeObject, ToolRelatedRecords, ToolRecentlyViewed:
			found++
			if tool.Annotations == nil || !tool.Annotations.ReadOnlyHint {
				t.Errorf("%s is not annotated readOnlyHint", tool.Name)
			}
		}
	}
	if found != 3 {
		t.Errorf("tools/list has %d of the 3 read tools", found)
	}
}
