package salesforce

import (
	"context"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	sb "github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
)

func wantToolError(t *testing.T, res *mcp.CallToolResult, err error, wants ...string) {
	t.Helper()
	if err != nil || res == nil || !res.IsError {
		t.Fatalf("want a tool error, got err=%v res=%v", err, res)
	}
	for _, w := range wants {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
}

// rita moves her own opportunity on; a peer's, which she can read under
// Public Read Only, she cannot edit: Salesforce's
// INSUFFICIENT_ACCESS_OR_READONLY becomes a tool error saying why.
func TestUpdateOpportunity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, rita, ToolUpdateOpportunity, map[string]any{"id": sb.OppAcmeRenewal, "fields": map[string]any{
		"StageName": "Proposal/Price Quote", "CloseDate": "2026-12-20", "NextStep": "Send the revised quote", "Amount": 62500,
	}})
	var out WriteOutput
	structured(t, res, &out)
	if out.ID != sb.OppAcmeRenewal || out.SObject != "Opportunity" || strings.Join(out.Fields, ",") != "Amount,CloseDate,NextStep,StageName" {
		t.Errorf("output %+v", out)
	}
	if !strings.Contains(text(res), `as Salesforce user "rep@acme.example"`) {
		t.Errorf("text %q", text(res))
	}
	rec := e.sb.Record(sb.OppAcmeRenewal)
	if rec["StageName"] != "Proposal/Price Quote" || rec["CloseDate"] != "2026-12-20" || rec["NextStep"] != "Send the revised quote" || rec["Amount"] != 62500.0 {
		t.Errorf("record after update: %v", rec)
	}

	// Sam's opportunity: readable, not editable.
	if res := mustTool(t, a, rita, ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": sb.OppGlobexNewLogo}); res.IsError {
		t.Fatalf("rita cannot read sam's opportunity: %s", text(res))
	}
	res, _, err := callTool(t, a, rita, ToolUpdateOpportunity, map[string]any{"id": sb.OppGlobexNewLogo, "fields": map[string]any{"NextStep": "mine"}})
	wantToolError(t, res, err, "INSUFFICIENT_ACCESS_OR_READONLY", `Salesforce user "rep@acme.example"`, "can read this record but not edit it", "Ask the owner")
	if e.sb.Record(sb.OppGlobexNewLogo)["NextStep"] != nil {
		t.Error("the refused update changed the record")
	}
	// Her manager may (role hierarchy).
	if res := mustTool(t, a, morgan, ToolUpdateOpportunity, map[string]any{"id": sb.OppGlobexNewLogo, "fields": map[string]any{"NextStep": "Coach Sam"}}); res.IsError {
		t.Errorf("manager: %s", text(res))
	}
}

// The allow-list is enforced by Mandate before any call: a field outside
// it, a wrong id, a non-scalar value never reach Salesforce.
func TestWriteAllowListRefusedBeforeAnyCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	cases := []struct {
		name string
		tool string
		args map[string]any
		want []string
	}{
		{"field outside the allow-list", ToolUpdateOpportunity, map[string]any{"id": sb.OppAcmeRenewal, "fields": map[string]any{"StageName": "Closed Won", "Probability": 100}},
			[]string{"may not write Opportunity field(s) Probability", "StageName, CloseDate, NextStep, Amount", "Nothing was sent", "salesforce.writable"}},
		{"owner is never writable", ToolCreateContact, map[string]any{"fields": map[string]any{"LastName": "X", "OwnerId": sb.UserRep2}}, []string{"OwnerId"}},
		{"not an opportunity id", ToolUpdateOpportunity, map[string]any{"id": sb.AccountAcme, "fields": map[string]any{"Amount": 1}}, []string{"not an opportunity id"}},
		{"object value", ToolUpdateOpportunity, map[string]any{"id": sb.OppAcmeRenewal, "fields": map[string]any{"NextStep": map[string]any{"a": 1}}}, []string{"string, number, boolean or null"}},
		{"no fields", ToolCreateLead, map[string]any{"fields": map[string]any{}}, []string{"fields is empty"}},
		{"call on nothing", ToolLogCall, map[string]any{"subject": "Call"}, []string{"what_id", "who_id"}},
		{"who_id not a person", ToolLogCall, map[string]any{"who_id": sb.AccountAcme}, []string{"not a contact (003…) or lead (00Q…) id"}},
		{"bad date", ToolLogCall, map[string]any{"what_id": sb.OppAcmeRenewal, "activity_date": "tomorrow"}, []string{"not a date"}},
	}
	for _, c := range cases {
		before := e.RestHits.Load()
		res, _, err := callTool(t, a, rita, c.tool, c.args)
		wantToolError(t, res, err, c.want...)
		if n := e.RestHits.Load() - before; n != 0 {
			t.Errorf("%s: %d REST call(s) made, want none", c.name, n)
		}
	}

	// A narrower allow-list: Task without Description.
	cfg := e.config(e.jwtBearer())
	cfg.Salesforce.Writable = map[string][]string{"Task": {"Subject", "Status", "TaskSubtype", "WhatId", "ActivityDate"}}
	narrow := e.adapter(t, cfg)
	before := e.RestHits.Load()
	res, _, err := callTool(t, narrow, rita, ToolLogCall, map[string]any{"what_id": sb.OppAcmeRenewal, "description": "notes"})
	wantToolError(t, res, err, "description (Description)", "Nothing was sent")
	if e.RestHits.Load() != before {
		t.Error("a refused log_call reached Salesforce")
	}
	// and only log_call is offered.
	sess, _ := narrow.Open(context.Background(), upstreams.OpenOptions{})
	lt, err := sess.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range lt.Tools {
		names = append(names, tl.Name)
	}
	if got := strings.Join(names, ","); strings.Contains(got, ToolUpdateOpportunity) || strings.Contains(got, ToolCreateContact) || !strings.Contains(got, ToolLogCall) {
		t.Errorf("tools with a Task-only allow-list: %s", got)
	}
	if _, _, err := callTool(t, narrow, rita, ToolUpdateOpportunity, map[string]any{"id": sb.OppAcmeRenewal, "fields": map[string]any{"Amount": 1}}); err == nil {
		t.Error("update_opportunity callable although Opportunity is not writable")
	}
}

// Field-level security is Salesforce's: a field on Mandate's allow-list
// that the user's profile may only read is refused by Salesforce, and the
// tool error says so.
func TestWriteFieldLevelSecurity(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	if err := e.sb.SetReadOnlyFields("rep@acme.example", "Opportunity.Amount"); err != nil {
		t.Fatal(err)
	}
	a := e.adapter(t, e.config(e.jwtBearer()))
	res, _, err := callTool(t, a, rita, ToolUpdateOpportunity, map[string]any{"id": sb.OppAcmeExpansion, "fields": map[string]any{"Amount": 1, "NextStep": "x"}})
	wantToolError(t, res, err, "INVALID_FIELD_FOR_INSERT_UPDATE", "may not set Amount", "field-level security", "Salesforce administrator")
	if e.sb.Record(sb.OppAcmeExpansion)["Amount"] != 120000.0 {
		t.Error("the refused update changed the record")
	}
}

func TestCreateContactAndLead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, rita, ToolCreateContact, map[string]any{"fields": map[string]any{"firstname": "Dana", "LastName": "Diaz", "AccountId": sb.AccountAcme, "Email": "dana@acme-widgets.example"}})
	var out WriteOutput
	structured(t, res, &out)
	rec := e.sb.Record(out.ID)
	if out.SObject != "Contact" || rec == nil || rec["Name"] != "Dana Diaz" || rec["OwnerId"] != sb.UserRep || rec["AccountId"] != sb.AccountAcme {
		t.Errorf("created contact %+v: %v", out, rec)
	}

	res, _, err := callTool(t, a, rita, ToolCreateContact, map[string]any{"fields": map[string]any{"FirstName": "Nameless"}})
	wantToolError(t, res, err, "REQUIRED_FIELD_MISSING", "Give a value for LastName")
	res, _, err = callTool(t, a, rita, ToolCreateLead, map[string]any{"fields": map[string]any{"LastName": "Lee"}})
	wantToolError(t, res, err, "REQUIRED_FIELD_MISSING", "Give a value for Company")

	res = mustTool(t, a, rita, ToolCreateLead, map[string]any{"fields": map[string]any{"LastName": "Lee", "Company": "Hooli"}})
	structured(t, res, &out)
	if rec := e.sb.Record(out.ID); out.SObject != "Lead" || rec == nil || rec["Company"] != "Hooli" || rec["Status"] != "Open - Not Contacted" {
		t.Errorf("created lead %+v: %v", out, rec)
	}
	// A lookup to the wrong kind of record: Salesforce's
	// FIELD_INTEGRITY_EXCEPTION, explained.
	res, _, err = callTool(t, a, rita, ToolCreateContact, map[string]any{"fields": map[string]any{"LastName": "X", "AccountId": sb.ContactAcme}})
	wantToolError(t, res, err, "FIELD_INTEGRITY_EXCEPTION", "id value of incorrect type", "wrong kind of record")
}

func TestLogCall(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{sharing: sb.PrivateSharing()})
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, rita, ToolLogCall, map[string]any{"what_id": sb.OppAcmeRenewal, "who_id": sb.ContactAcme, "subject": "Renewal call with Alice", "description": "Wants a 3-year term.", "activity_date": "2026-11-20"})
	var out WriteOutput
	structured(t, res, &out)
	rec := e.sb.Record(out.ID)
	if out.SObject != "Task" || rec == nil || rec["TaskSubtype"] != "Call" || rec["Status"] != "Completed" || rec["WhatId"] != sb.OppAcmeRenewal ||
		rec["WhoId"] != sb.ContactAcme || rec["ActivityDate"] != "2026-11-20" || rec["Subject"] != "Renewal call with Alice" || rec["OwnerId"] != sb.UserRep {
		t.Errorf("task %+v: %v", out, rec)
	}
	// Default subject and date.
	res = mustTool(t, a, rita, ToolLogCall, map[string]any{"what_id": sb.OppAcmeRenewal})
	structured(t, res, &out)
	if rec := e.sb.Record(out.ID); rec["Subject"] != "Call" || rec["ActivityDate"] == nil {
		t.Errorf("defaults: %v", rec)
	}
	// Under Private sharing rita cannot see sam's opportunity.
	res, _, err := callTool(t, a, rita, ToolLogCall, map[string]any{"what_id": sb.OppGlobexNewLogo})
	wantToolError(t, res, err, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "WhatId names a record the user cannot see")
}

func TestWriteToolAnnotations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	sess, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	lt, err := sess.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]bool{ // destructive, idempotent
		ToolUpdateOpportunity: {true, true},
		ToolLogCall:           {false, false},
		ToolCreateContact:     {false, false},
		ToolCreateLead:        {false, false},
	}
	for _, tl := range lt.Tools {
		w, ok := want[tl.Name]
		if !ok {
			if tl.Annotations == nil || !tl.Annotations.ReadOnlyHint {
				t.Errorf("%s: read tool not readOnly", tl.Name)
			}
			continue
		}
		delete(want, tl.Name)
		an := tl.Annotations
		if an == nil || an.ReadOnlyHint || an.DestructiveHint == nil || *an.DestructiveHint != w[0] || an.IdempotentHint != w[1] {
			t.Errorf("%s: annotations %+v", tl.Name, an)
		}
	}
	if len(want) > 0 {
		t.Errorf("write tools not listed: %v", want)
	}
	// writable: {} turns them off.
	cfg := e.config(e.jwtBearer())
	cfg.Salesforce.Writable = map[string][]string{}
	sess, _ = e.adapter(t, cfg).Open(context.Background(), upstreams.OpenOptions{})
	lt, _ = sess.ListTools(context.Background(), nil)
	for _, tl := range lt.Tools {
		if !tl.Annotations.ReadOnlyHint {
			t.Errorf("writable {} still offers %s", tl.Name)
		}
	}
}

func TestValidateWritable(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		w    map[string][]string
		want string
	}{
		{map[string][]string{"Account": {"Name"}}, `writable.Account: Mandate's write tools write Opportunity, Task, Contact and Lead`},
		{map[string][]string{"opportunity": {"Amount"}}, `not "opportunity"`},
		{map[string][]string{"Contact": {"FirstName"}}, "writable.Contact: must include LastName"},
		{map[string][]string{"Lead": {"LastName"}}, "must include Company"},
		{map[string][]string{"Task": {"Subject", "Status", "TaskSubtype"}}, "must include WhatId or WhoId"},
		{map[string][]string{"Opportunity": {"Amount", "amount"}}, "amount is listed twice"},
		{map[string][]string{"Opportunity": {"Amount; DROP"}}, "is not a field API name"},
		{map[string][]string{"Opportunity": {"OwnerId"}}, "OwnerId is never writable"},
		{map[string][]string{"Opportunity": {}}, "list at least one field"},
	} {
		cfg := upstreams.Config{Name: "sf", Kind: upstreams.KindSalesforce, URL: "https://acme.my.salesforce.com"}.WithDefaults()
		cfg.Salesforce.Writable = c.w
		err := validate(&cfg, "upstreams[sf]")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want %q", c.w, err, c.want)
		}
	}
	cfg := upstreams.Config{Name: "sf", Kind: upstreams.KindSalesforce, URL: "https://acme.my.salesforce.com"}.WithDefaults()
	if err := validate(&cfg, "upstreams[sf]"); err != nil {
		t.Errorf("defaults: %v", err)
	}
}
