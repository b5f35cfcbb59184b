package sandbox

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
)

type dmlErr struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields"`
}

// send sends method path with a JSON body as tok.
func (e *env) send(t *testing.T, tok, method, path, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+"/services/data/"+testVersion+path, bytes.NewReader([]byte(body)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// wantDMLErr asserts a 400 with Salesforce's documented one-element error
// array [{"message","errorCode","fields"}].
func wantDMLErr(t *testing.T, what string, status int, b []byte, code string, fields ...string) dmlErr {
	t.Helper()
	var errs []dmlErr
	if err := json.Unmarshal(b, &errs); err != nil || len(errs) != 1 {
		t.Fatalf("%s: body %s is not a one-element Salesforce error array: %v", what, b, err)
	}
	if status != http.StatusBadRequest || errs[0].ErrorCode != code || errs[0].Fields == nil {
		t.Fatalf("%s: got %d %+v, want 400 %s", what, status, errs[0], code)
	}
	if fields != nil && !slices.Equal(errs[0].Fields, fields) {
		t.Errorf("%s: fields %v, want %v", what, errs[0].Fields, fields)
	}
	return errs[0]
}

// Updates follow the org-wide default and ownership: under Public Read
// Only a rep reads everyone's opportunities but edits only her own (and her
// manager edits hers through the role hierarchy).
func TestUpdateSharing(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rep, _ := e.sb.IssueToken("rep@acme.example")
	mgr, _ := e.sb.IssueToken("manager@acme.example")
	out, _ := e.sb.IssueToken("outsider@acme.example")

	status, b := e.send(t, rep, http.MethodPatch, "/sobjects/Opportunity/"+OppAcmeRenewal,
		`{"StageName":"Closed Won","CloseDate":"2026-12-01","NextStep":"Send contract","Amount":55000}`)
	if status != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("own opportunity: %d %s", status, b)
	}
	rec := e.sb.Record(OppAcmeRenewal)
	if rec["StageName"] != "Closed Won" || rec["CloseDate"] != "2026-12-01" || rec["NextStep"] != "Send contract" || rec["Amount"] != 55000.0 || rec["IsClosed"] != true || rec["IsWon"] != true {
		t.Errorf("record after update: %v", rec)
	}

	// Readable (Public Read Only) but not hers.
	if status, _ := e.get(t, rep, "/services/data/"+testVersion+"/sobjects/Opportunity/"+OppGlobexNewLogo); status != 200 {
		t.Fatalf("rep cannot read a peer's opportunity under Public Read Only: %d", status)
	}
	status, b = e.send(t, rep, http.MethodPatch, "/sobjects/Opportunity/"+OppGlobexNewLogo, `{"NextStep":"mine now"}`)
	wantDMLErr(t, "peer's opportunity", status, b, "INSUFFICIENT_ACCESS_OR_READONLY")
	if e.sb.Record(OppGlobexNewLogo)["NextStep"] != nil {
		t.Error("a refused update changed the record")
	}
	status, b = e.send(t, out, http.MethodPatch, "/sobjects/Opportunity/"+OppAcmeExpansion, `{"NextStep":"x"}`)
	wantDMLErr(t, "outsider", status, b, "INSUFFICIENT_ACCESS_OR_READONLY")
	// Above the owner in the role hierarchy: may edit.
	if status, b := e.send(t, mgr, http.MethodPatch, "/sobjects/Opportunity/"+OppGlobexNewLogo, `{"NextStep":"Call Bob"}`); status != http.StatusNoContent {
		t.Errorf("manager on a report's opportunity: %d %s", status, b)
	}
	// Accounts are Public Read/Write: anyone may edit.
	if status, b := e.send(t, out, http.MethodPatch, "/sobjects/Account/"+AccountAcme, `{"BillingCity":"Oakland"}`); status != http.StatusNoContent {
		t.Errorf("Public Read/Write account: %d %s", status, b)
	}
	// A record that does not exist.
	status, b = e.send(t, rep, http.MethodPatch, "/sobjects/Opportunity/006000000000099AAA", `{"NextStep":"x"}`)
	if status != http.StatusNotFound || decodeAPIErr(t, b).ErrorCode != "NOT_FOUND" {
		t.Errorf("missing record: %d %s", status, b)
	}
}

func TestUpdateFieldRules(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rep, _ := e.sb.IssueToken("rep@acme.example")
	path := "/sobjects/Opportunity/" + OppAcmeExpansion
	cases := []struct {
		name, body, code string
		fields           []string
	}{
		{"bad stage", `{"StageName":"Won-ish"}`, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", []string{"StageName"}},
		{"clear a required field", `{"CloseDate":null}`, "REQUIRED_FIELD_MISSING", []string{"CloseDate"}},
		{"system fields", `{"IsWon":true,"CreatedDate":"2020-01-01T00:00:00.000+0000"}`, "INVALID_FIELD_FOR_INSERT_UPDATE", []string{"CreatedDate", "IsWon"}},
		{"unknown field", `{"Colour__c":"red"}`, "INVALID_FIELD", nil},
		{"wrong type", `{"Amount":"lots"}`, "JSON_PARSER_ERROR", []string{"Amount"}},
		{"bad date", `{"CloseDate":"2026-13-45"}`, "JSON_PARSER_ERROR", []string{"CloseDate"}},
		{"lookup to the wrong object", `{"AccountId":"` + ContactAcme + `"}`, "FIELD_INTEGRITY_EXCEPTION", []string{"AccountId"}},
		{"malformed lookup", `{"AccountId":"nope"}`, "MALFORMED_ID", []string{"AccountId"}},
		{"not an object", `["x"]`, "JSON_PARSER_ERROR", nil},
	}
	for _, c := range cases {
		status, b := e.send(t, rep, http.MethodPatch, path, c.body)
		wantDMLErr(t, c.name, status, b, c.code, c.fields...)
	}
	if rec := e.sb.Record(OppAcmeExpansion); rec["StageName"] != "Prospecting" || rec["CloseDate"] != "2027-02-28" || rec["Amount"] != 120000.0 {
		t.Errorf("refused updates changed the record: %v", rec)
	}

	// Field-level security: Amount read-only for rep's profile.
	if err := e.sb.SetReadOnlyFields("rep@acme.example", "Opportunity.Amount"); err != nil {
		t.Fatal(err)
	}
	status, b := e.send(t, rep, http.MethodPatch, path, `{"Amount":1,"NextStep":"x"}`)
	got := wantDMLErr(t, "FLS", status, b, "INVALID_FIELD_FOR_INSERT_UPDATE", "Amount")
	if want := "Unable to create/update fields: Amount. Please check the security settings of this field and verify that it is read/write for your profile or permission set."; got.Message != want {
		t.Errorf("FLS message %q, want %q", got.Message, want)
	}
	if status, b := e.send(t, rep, http.MethodPatch, path, `{"NextStep":"x"}`); status != http.StatusNoContent {
		t.Errorf("other fields stay editable: %d %s", status, b)
	}
}

func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, privateOrg())
	rep, _ := e.sb.IssueToken("rep@acme.example")

	status, b := e.send(t, rep, http.MethodPost, "/sobjects/Contact/", `{"FirstName":"Dana","LastName":"Diaz","AccountId":"`+AccountAcme+`"}`)
	var created struct {
		ID      string `json:"id"`
		Success bool   `json:"success"`
		Errors  []any  `json:"errors"`
	}
	if err := json.Unmarshal(b, &created); err != nil || status != http.StatusCreated || !created.Success || created.Errors == nil || !reID.MatchString(created.ID) || created.ID[:3] != "003" {
		t.Fatalf("create contact: %d %s", status, b)
	}
	rec := e.sb.Record(created.ID)
	if rec["Name"] != "Dana Diaz" || rec["OwnerId"] != UserRep {
		t.Errorf("created contact: %v", rec)
	}
	if status, _ := e.get(t, rep, "/services/data/"+testVersion+"/sobjects/Contact/"+created.ID); status != 200 {
		t.Errorf("creator cannot read the new contact: %d", status)
	}

	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Contact/", `{"FirstName":"No"}`)
	got := wantDMLErr(t, "contact without LastName", status, b, "REQUIRED_FIELD_MISSING", "LastName")
	if got.Message != "Required fields are missing: [LastName]" {
		t.Errorf("message %q", got.Message)
	}
	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Lead/", `{"FirstName":"No"}`)
	wantDMLErr(t, "lead without LastName, Company", status, b, "REQUIRED_FIELD_MISSING", "LastName", "Company")
	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Contact/", `{"Id":"`+ContactAcme+`","LastName":"X"}`)
	if got := wantDMLErr(t, "Id in body", status, b, "INVALID_FIELD"); got.Message != "The Id field should not be specified in the sobject data." {
		t.Errorf("message %q", got.Message)
	}

	// A call logged on the rep's opportunity; then on one she cannot see
	// (Private: a peer's) and with a WhoId that is not a person.
	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Task/", `{"Subject":"Call","Status":"Completed","TaskSubtype":"Call","ActivityDate":"2026-11-20","WhatId":"`+OppAcmeRenewal+`","WhoId":"`+ContactAcme+`"}`)
	if status != http.StatusCreated {
		t.Fatalf("log a call: %d %s", status, b)
	}
	_ = json.Unmarshal(b, &created)
	if rec := e.sb.Record(created.ID); rec["IsClosed"] != true || rec["Priority"] != "Normal" || rec["OwnerId"] != UserRep {
		t.Errorf("task: %v", rec)
	}
	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Task/", `{"Subject":"Call","WhatId":"`+OppGlobexNewLogo+`"}`)
	wantDMLErr(t, "WhatId not visible", status, b, "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY", "WhatId")
	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Task/", `{"Subject":"Call","WhoId":"`+AccountAcme+`"}`)
	if got := wantDMLErr(t, "WhoId of an account", status, b, "FIELD_INTEGRITY_EXCEPTION", "WhoId"); got.Message != "Name ID: id value of incorrect type: "+AccountAcme {
		t.Errorf("message %q", got.Message)
	}
	status, b = e.send(t, rep, http.MethodPost, "/sobjects/Task/", `{"Subject":"Call","Status":"Done"}`)
	wantDMLErr(t, "bad status", status, b, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", "Status")

	// Object permissions: the integration user has none.
	integ, _ := e.sb.IssueToken("integration@acme.example")
	if status, b := e.send(t, integ, http.MethodPost, "/sobjects/Lead/", `{"LastName":"X","Company":"Y"}`); status != http.StatusNotFound {
		t.Errorf("no object permission: %d %s", status, b)
	}
	// Methods: DELETE is not served, POST on a record neither.
	if status, _ := e.send(t, rep, http.MethodPost, "/sobjects/Contact/"+ContactAcme, `{}`); status != http.StatusMethodNotAllowed {
		t.Errorf("POST on a record: %d", status)
	}
}
