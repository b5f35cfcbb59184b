package sandbox

import (
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The page is cut before ACLs remove rows: the rep may read INC0010001 and
// INC0010002 only, so a page of 2 from offset 2 is empty although the query
// matched 6 rows, and the next page is still at offset 4.
func TestLimitAppliesBeforeACLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rep, _ := e.sb.IssueToken("rep")
	mgr, _ := e.sb.IssueToken("manager")
	for _, tc := range []struct {
		name, tok     string
		offset, limit string
		want          []string
		next          string // offset of the Link rel="next", "" for none
	}{
		{"rep first page", rep, "0", "2", []string{IncLaptop, IncVPN}, "2"},
		{"rep hidden page", rep, "2", "2", []string{}, "4"},
		{"rep last page", rep, "4", "2", []string{}, ""},
		{"manager page of 3 keeps one", mgr, "0", "3", []string{IncCRMReport}, "3"},
		{"manager second page", mgr, "3", "3", []string{IncDashboard, IncEmail}, ""},
	} {
		status, h, rows, raw := e.list(t, tc.tok, "incident", url.Values{
			"sysparm_query": {"ORDERBYnumber"}, "sysparm_offset": {tc.offset}, "sysparm_limit": {tc.limit}, "sysparm_fields": {"sys_id"},
		})
		if status != 200 {
			t.Fatalf("%s: %d %s", tc.name, status, raw)
		}
		if diff := cmp.Diff(tc.want, sysIDs(rows)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
		if got := h.Get("X-Total-Count"); got != "6" {
			t.Errorf("%s: X-Total-Count %s, want 6 (counted before ACLs)", tc.name, got)
		}
		link := h.Get("Link")
		hasNext := strings.Contains(link, `rel="next"`)
		if (tc.next == "") == hasNext || (hasNext && !strings.Contains(link, "sysparm_offset="+tc.next+"&")) {
			t.Errorf("%s: Link %q, want next at offset %q", tc.name, link, tc.next)
		}
	}
}

// sys_db_object and sys_dictionary describe the served tables as an
// instance does: incident extends task, whose fields are listed under
// name=task; readable by every authenticated user unless DictionaryRoles
// restricts them.
func TestSchemaTables(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rep, _ := e.sb.IssueToken("rep")
	status, _, rows, raw := e.list(t, rep, "sys_db_object", url.Values{"sysparm_query": {"name=incident"}, "sysparm_fields": {"name,super_class.name"}})
	if status != 200 || len(rows) != 1 || rows[0]["super_class.name"] != "task" {
		t.Fatalf("sys_db_object incident: %d %s", status, raw)
	}
	elements := func(table string) []string {
		_, _, rows, raw := e.list(t, rep, "sys_dictionary", url.Values{
			"sysparm_query": {"name=" + table + "^elementISNOTEMPTY^ORDERBYelement"}, "sysparm_fields": {"element,reference.name"},
		})
		var out []string
		for _, r := range rows {
			el := r["element"].(string)
			if ref := r["reference.name"].(string); ref != "" {
				el += "→" + ref
			}
			out = append(out, el)
		}
		if out == nil {
			t.Logf("%s: %s", table, raw)
		}
		return out
	}
	if diff := cmp.Diff([]string{"caller_id→sys_user", "category", "close_code", "resolved_at"}, elements("incident")); diff != "" {
		t.Errorf("incident's own fields (-want +got):\n%s", diff)
	}
	task := elements("task")
	for _, want := range []string{"assigned_to→sys_user", "assignment_group→sys_user_group", "number", "short_description", "state", "sys_id"} {
		if !contains(task, want) {
			t.Errorf("task fields %v lack %s", task, want)
		}
	}
	if contains(task, "caller_id→sys_user") {
		t.Error("caller_id listed under task")
	}
	if got := elements("sys_user"); !contains(got, "email") || !contains(got, "user_name") {
		t.Errorf("sys_user fields %v", got)
	}
	// Nobody writes the schema through the Table API.
	if status, _, _ := e.do(t, "POST", rep, "/api/now/table/sys_dictionary", map[string]string{"name": "incident", "element": "u_x"}); status != 403 {
		t.Errorf("insert into sys_dictionary: %d", status)
	}

	locked := newEnv(t, &Options{DictionaryRoles: []string{"admin"}})
	rep2, _ := locked.sb.IssueToken("rep")
	if status, _, rows, _ := locked.list(t, rep2, "sys_dictionary", url.Values{"sysparm_query": {"name=incident"}}); status != 200 || len(rows) != 0 {
		t.Errorf("restricted dictionary: %d, %d rows", status, len(rows))
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
