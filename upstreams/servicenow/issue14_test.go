package servicenow

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	sb "github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

// ServiceNow cuts the page before ACLs remove rows: the next page is at
// offset+limit, and a page whose rows were all hidden is not "nothing
// matched".
func TestPagingWithRowsHiddenByACLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	page := func(tool string, args map[string]any) (ListOutput, string) {
		t.Helper()
		res := mustTool(t, a, morgan, tool, args)
		var out ListOutput
		structured(t, res, &out)
		return out, text(res)
	}
	// Morgan may read INC0010003, -4 and -6 of the six incidents.
	out, txt := page(ToolQueryTable, map[string]any{"table": "incident", "query": "ORDERBYnumber", "fields": []string{"sys_id"}, "limit": 3})
	if diff := cmp.Diff([]string{sb.IncCRMReport}, ids(out)); diff != "" {
		t.Errorf("first page (-want +got):\n%s", diff)
	}
	if out.Hidden != 2 || !out.Truncated || out.NextOffset != 3 || out.Total != 6 || out.Limit != 3 {
		t.Errorf("first page = %+v, want hidden 2, next_offset 3, total 6", out)
	}
	for _, w := range []string{"ACLs hid 2", "next page with offset 3"} {
		if !strings.Contains(txt, w) {
			t.Errorf("text lacks %q:\n%s", w, txt)
		}
	}
	out, _ = page(ToolQueryTable, map[string]any{"table": "incident", "query": "ORDERBYnumber", "fields": []string{"sys_id"}, "limit": 3, "offset": out.NextOffset})
	if diff := cmp.Diff([]string{sb.IncDashboard, sb.IncEmail}, ids(out)); diff != "" || out.Truncated || out.Hidden != 1 {
		t.Errorf("second page = %+v (-want +got):\n%s", out, diff)
	}
	// A page whose rows are all hidden says so and points at the next.
	// Newest first: INC0010006, -5, -4, -3, -2, -1; morgan reads -6, -4, -3.
	out, txt = page(ToolMyIncidents, map[string]any{"relation": "any", "active_only": false, "limit": 1, "offset": 1})
	if out.Returned != 0 || out.Hidden != 1 || out.NextOffset != 2 {
		t.Errorf("hidden page = %+v", out)
	}
	if strings.Contains(txt, "matched.") || !strings.Contains(txt, "ACLs hid 1") || !strings.Contains(txt, "next page with offset 2") {
		t.Errorf("hidden page text: %s", txt)
	}
	out, _ = page(ToolMyIncidents, map[string]any{"relation": "any", "active_only": false, "limit": 2, "offset": 2})
	if diff := cmp.Diff([]string{sb.IncDashboard, sb.IncCRMReport}, ids(out)); diff != "" || out.NextOffset != 4 {
		t.Errorf("my_incidents offset 2 = %+v (-want +got):\n%s", out, diff)
	}
	// Nothing matched at all is still said plainly.
	_, txt = page(ToolQueryTable, map[string]any{"table": "incident", "query": "number=INC0099999"})
	if txt != "No incident(s) visible to you matched." {
		t.Errorf("empty: %s", txt)
	}
}

func ids(out ListOutput) []string {
	s := []string{}
	for _, r := range out.Records {
		s = append(s, str(r["sys_id"]))
	}
	return s
}

// Field names of a model-written query are checked against the table's
// dictionary (read as the user, cached per upstream, user and table); ServiceNow
// itself would ignore an unknown field and return more records.
func TestQueryFieldNamesCheckedAgainstDictionary(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	clock := time.Now()
	a.dict.mu.Lock()
	a.dict.now = func() time.Time { return clock }
	a.dict.mu.Unlock()
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"no_such_field=1", []string{`table incident has no field "no_such_field"`, "ServiceNow would silently ignore"}},
		{"active=true^ORassigned_too=" + sb.UserITAgent, []string{`table incident has no field "assigned_too"`}},
		{"caller_id.no_such=x", []string{`field "caller_id.no_such" is unknown`, "table sys_user, which has no field \"no_such\""}},
		{"short_description.x=1", []string{`"short_description" of table incident is not a reference`}},
		{"active=true^ORDERBYnosuch", []string{`no field "nosuch"`}},
		{"activetrue", []string{"has no operator"}},
		{"short_descriptionLIKEa^^b", []string{`condition "b" has no operator`}},
		{"RLQUERYsys_user.x,>=1^ENDRLQUERY", []string{"does not start with a field name"}},
	} {
		before := e.hits("incident")
		res, _, err := callTool(t, a, rita, ToolQueryTable, map[string]any{"table": "incident", "query": tc.query})
		if err != nil || !res.IsError {
			t.Errorf("%s: want a tool error, got err=%v %s", tc.query, err, text(res))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(text(res), w) {
				t.Errorf("%s: message %q lacks %q", tc.query, text(res), w)
			}
		}
		if e.hits("incident") != before {
			t.Errorf("%s: the query reached ServiceNow", tc.query)
		}
	}
	// Valid queries run: fields inherited from task, dot-walks.
	for q, want := range map[string][]string{
		"number=INC0010001": {sb.IncLaptop},
		"caller_id.email=rep@acme.example^ORDERBYnumber": repIncidents,
		"assignment_group.name=Service Desk^NQstate=99":  repIncidents,
	} {
		res := mustTool(t, a, rita, ToolQueryTable, map[string]any{"table": "incident", "query": q, "fields": []string{"sys_id"}})
		if diff := cmp.Diff(want, sysIDs(t, res)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", q, diff)
		}
	}
	// The dictionary is cached per upstream, user and table: rita's second
	// query reads nothing, ivy's first reads her own view (incident+task
	// in one read), and after the TTL it is read again.
	n0 := e.hits("sys_dictionary")
	mustTool(t, a, rita, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true"})
	if n := e.hits("sys_dictionary"); n != n0 {
		t.Errorf("sys_dictionary reads after rita's cached query = %d, want %d", n, n0)
	}
	mustTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true"})
	if n := e.hits("sys_dictionary"); n != n0+1 {
		t.Errorf("sys_dictionary reads after ivy's first query = %d, want %d (her own read, never rita's)", n, n0+1)
	}
	mustTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true"})
	if n := e.hits("sys_dictionary"); n != n0+1 {
		t.Errorf("sys_dictionary reads after ivy's cached query = %d, want %d", n, n0+1)
	}
	a.dict.mu.Lock()
	clock = clock.Add(dictTTL)
	a.dict.mu.Unlock()
	mustTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true"})
	if n := e.hits("sys_dictionary"); n != n0+2 {
		t.Errorf("sys_dictionary reads after the TTL = %d, want %d", n, n0+2)
	}
	// A table ServiceNow does not know, with a query.
	res, _, _ := callTool(t, a, rita, ToolQueryTable, map[string]any{"table": "cmdb_ci", "query": "name=x"})
	if !res.IsError || !strings.Contains(text(res), `no table "cmdb_ci"`) {
		t.Errorf("unknown table: %s", text(res))
	}
}

// When the user may not read the dictionary, queries are refused rather
// than run unchecked; queries without conditions still run.
func TestQueryRefusedWhenDictionaryUnreadable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{dictRoles: []string{"admin"}})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res, _, err := callTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true"})
	if err != nil || !res.IsError || !strings.Contains(text(res), `no table "incident"`) || !strings.Contains(text(res), "may not read its definition") {
		t.Errorf("err=%v %s", err, text(res))
	}
	if e.hits("incident") != 0 {
		t.Error("the unchecked query reached ServiceNow")
	}
	mustTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident"})
}

// Callers, assignees and groups are written as sys_ids: ServiceNow stores a
// user name or email given for a reference as that raw string.
func TestReferencesResolvedBeforeWriting(t *testing.T) {
	t.Parallel()
	seed := sb.DefaultSeed()
	seed.Users = append(seed.Users,
		sb.User{SysID: "5137153cc611227c000bbd1bd8cd2006", UserName: "pat.one", Email: "pat@acme.example", FirstName: "Pat", LastName: "One"},
		sb.User{SysID: "5137153cc611227c000bbd1bd8cd2007", UserName: "pat.two", Email: "pat@acme.example", FirstName: "Pat", LastName: "Two"},
	)
	e := newEnv(t, envOptions{seed: seed})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		args map[string]any
		key  string
		want string
	}{
		{map[string]any{"number": "INC0010002", "assigned_to": "manager@acme.example"}, "assigned_to", sb.UserManager},
		{map[string]any{"number": "INC0010002", "assigned_to": "it.agent"}, "assigned_to", sb.UserITAgent},
		{map[string]any{"number": "INC0010002", "assigned_to": sb.UserRep}, "assigned_to", sb.UserRep},
		{map[string]any{"number": "INC0010002", "assignment_group": "Sales Ops"}, "assignment_group", sb.GroupSalesOps},
		{map[string]any{"number": "INC0010002", "assigned_to": ""}, "assigned_to", ""},
	} {
		mustTool(t, a, ivy, ToolUpdateIncident, tc.args)
		if got := e.sb.Incident(sb.IncVPN)[tc.key]; got != tc.want {
			t.Errorf("%v: stored %s = %q, want %q", tc.args, tc.key, got, tc.want)
		}
	}
	// The fulfiller files for someone else by email.
	var rec map[string]any
	structured(t, mustTool(t, a, ivy, ToolCreateIncident, map[string]any{"short_description": "Dock", "caller": "rep@acme.example"}), &rec)
	if got := e.sb.Incident(str(rec["sys_id"]))["caller_id"]; got != sb.UserRep {
		t.Errorf("created caller_id = %q, want %s", got, sb.UserRep)
	}
	// Missing and ambiguous references are tool errors; nothing is written.
	for _, tc := range []struct {
		args map[string]any
		want []string
	}{
		{map[string]any{"number": "INC0010001", "assigned_to": "ghost@acme.example"}, []string{`assigned_to: ServiceNow has no user "ghost@acme.example"`, `ServiceNow user "it.agent@acme.example"`}},
		{map[string]any{"number": "INC0010001", "assigned_to": "pat@acme.example"}, []string{`"pat@acme.example" matches 2 ServiceNow users`, "pat.one", "pat.two", "sys_id"}},
		{map[string]any{"number": "INC0010001", "assignment_group": "Nobody"}, []string{`ServiceNow has no group "Nobody"`}},
		{map[string]any{"number": "INC0010001", "assigned_to": "x^ORactive=true"}, []string{"is not a user name, email or sys_id"}},
	} {
		res, _, err := callTool(t, a, ivy, ToolUpdateIncident, tc.args)
		if err != nil || !res.IsError {
			t.Errorf("%v: want a tool error, got err=%v %s", tc.args, err, text(res))
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(text(res), w) {
				t.Errorf("%v: message %q lacks %q", tc.args, text(res), w)
			}
		}
	}
	if got := e.sb.Incident(sb.IncLaptop); got["assigned_to"] != sb.UserITAgent || got["assignment_group"] != sb.GroupServiceDesk || got["sys_mod_count"] != "0" {
		t.Errorf("refused updates changed the record: %v", got)
	}
	res, _, _ := callTool(t, a, ivy, ToolCreateIncident, map[string]any{"short_description": "x", "caller": "nobody"})
	if !res.IsError || !strings.Contains(text(res), `caller: ServiceNow has no user "nobody"`) {
		t.Errorf("create with unknown caller: %s", text(res))
	}
}
