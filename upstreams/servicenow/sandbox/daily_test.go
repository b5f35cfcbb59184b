package sandbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func (e *env) ids(t *testing.T, tok, table, query string) []string {
	t.Helper()
	status, _, rows, raw := e.list(t, tok, table, url.Values{"sysparm_query": {query}, "sysparm_fields": {"sys_id"}})
	if status != 200 {
		t.Fatalf("%s?%s: %d %s", table, query, status, raw)
	}
	return sysIDs(rows)
}

// Each table answers per user: requested items by requester, approvals by
// approver (and requester), knowledge by its base's user criteria.
func TestDailyTablesPerUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok := map[string]string{}
	for _, u := range []string{"it.agent", "rep", "manager", "outsider"} {
		tok[u], _ = e.sb.IssueToken(u)
	}
	for _, tc := range []struct {
		name, user, table, query string
		want                     []string
	}{
		{"rep's items", "rep", "sc_req_item", "requested_for=javascript:gs.getUserID()^ORDERBYnumber", []string{RitmLaptop, RitmMonitor, RitmHeadset}},
		{"rep reads no one else's items", "rep", "sc_req_item", "ORDERBYnumber", []string{RitmLaptop, RitmMonitor, RitmHeadset}},
		{"manager reads own and the one to approve", "manager", "sc_req_item", "ORDERBYnumber", []string{RitmLaptop, RitmSFAccess}},
		{"agent (itil) reads all items", "it.agent", "sc_req_item", "active=true^ORDERBYnumber", []string{RitmLaptop, RitmSFAccess, RitmMonitor, RitmVPNToken}},
		{"agent's requested approvals", "it.agent", "sysapproval_approver", "approver=javascript:gs.getUserID()^state=requested", []string{ApprovalSFAccessByAgent}},
		{"manager's requested approvals", "manager", "sysapproval_approver", "approver=javascript:gs.getUserID()^state=requested", []string{ApprovalLaptopByManager}},
		{"rep sees approvals of her items", "rep", "sysapproval_approver", "ORDERBYsys_created_on", []string{ApprovalMonitorByAgent, ApprovalLaptopByManager}},
		{"outsider sees no approvals", "outsider", "sysapproval_approver", "", []string{}},
		{"agent reads IT and IT Internal", "it.agent", "kb_knowledge", "short_descriptionLIKEvpn^workflow_state=published^ORDERBYnumber", []string{KBArticleVPNReset, KBArticleVPNRunbook}},
		{"rep reads IT only", "rep", "kb_knowledge", "short_descriptionLIKEvpn^ORDERBYnumber", []string{KBArticleVPNReset}},
		{"Sales Ops reads Sales Playbooks", "manager", "kb_knowledge", "kb_knowledge_base=" + KBSales, []string{KBArticleDiscounts}},
		{"agent is not in Sales Ops", "it.agent", "kb_knowledge", "kb_knowledge_base=" + KBSales, []string{}},
		{"Cannot Read wins over Can Read", "outsider", "kb_knowledge", "kb_knowledge_base=" + KBSales, []string{}},
		{"author reads own draft", "it.agent", "kb_knowledge", "workflow_state=draft", []string{KBArticleVPNDraft}},
		{"others do not read drafts", "rep", "kb_knowledge", "workflow_state=draft", []string{}},
		{"user criteria are for knowledge admins", "it.agent", "user_criteria", "", []string{}},
		{"agent's group queue (One of My Groups)", "it.agent", "incident", "assignment_groupDYNAMIC" + DynamicOneOfMyGroups + "^assigned_toISEMPTY^active=true", []string{IncVPN}},
		{"manager's group queue", "manager", "incident", "assignment_groupDYNAMIC" + DynamicOneOfMyGroups + "^assigned_toISEMPTY", []string{IncCRMReport}},
		{"Me", "it.agent", "incident", "assigned_toDYNAMIC" + DynamicMe + "^ORDERBYnumber", []string{IncLaptop, IncPrinter, IncEmail}},
		{"getMyGroups()", "manager", "incident", "assignment_group=javascript:getMyGroups()^ORDERBYnumber", []string{IncCRMReport, IncDashboard}},
	} {
		if diff := cmp.Diff(tc.want, e.ids(t, tok[tc.user], tc.table, tc.query)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
	// An unknown dynamic option is an invalid part: ignored, like an
	// unknown field, so the query matches more.
	if got := e.ids(t, tok["manager"], "incident", "assignment_groupDYNAMIC00000000000000000000000000000000^ORDERBYnumber"); len(got) != 3 {
		t.Errorf("unknown dynamic option: %v", got)
	}
}

// Only the approver approves; a decided approval stays decided; the
// requested item's approval follows.
func TestApprovalWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	agent, _ := e.sb.IssueToken("it.agent")
	rep, _ := e.sb.IssueToken("rep")
	mgr, _ := e.sb.IssueToken("manager")
	out, _ := e.sb.IssueToken("outsider")
	path := "/api/now/table/sysapproval_approver/"
	for _, tc := range []struct {
		name, tok, id string
		body          map[string]any
		status        int
		detail        string
	}{
		{"requester cannot approve her own request", rep, ApprovalLaptopByManager, map[string]any{"state": "approved"}, 403, "ACL restricts the record update"},
		{"itil cannot approve another's approval", agent, ApprovalLaptopByManager, map[string]any{"state": "approved"}, 403, "ACL restricts the record update"},
		{"a stranger does not see it", out, ApprovalLaptopByManager, map[string]any{"state": "approved"}, 404, "ACL restricts the record retrieval"},
		{"approver may not change the approver", mgr, ApprovalLaptopByManager, map[string]any{"approver": UserRep}, 403, "approver"},
		{"approver may not set other states", mgr, ApprovalLaptopByManager, map[string]any{"state": "cancelled"}, 400, "approved or rejected"},
		{"decided stays decided", agent, ApprovalMonitorByAgent, map[string]any{"state": "rejected"}, 403, "Approval is approved"},
	} {
		status, _, raw := e.do(t, http.MethodPatch, tc.tok, path+tc.id, tc.body)
		if status != tc.status || !strings.Contains(string(raw), tc.detail) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, status, raw, tc.status, tc.detail)
		}
	}
	e.sb.mu.RLock()
	a := e.sb.rows["sysapproval_approver"][ApprovalLaptopByManager]
	state, approver := a["state"], a["approver"]
	e.sb.mu.RUnlock()
	if state != "requested" || approver != UserManager {
		t.Fatalf("refused writes changed the approval: %s %s", state, approver)
	}
	status, _, raw := e.do(t, http.MethodPatch, mgr, path+ApprovalLaptopByManager+"?sysparm_fields=state,comments", map[string]any{"state": "rejected", "comments": "Use the pool laptop"})
	if status != 200 || !strings.Contains(string(raw), `"state":"rejected"`) || !strings.Contains(string(raw), `Morgan Manager (Additional comments)\nUse the pool laptop`) {
		t.Fatalf("approver's reject: %d %s", status, raw)
	}
	_, _, rows, _ := e.list(t, rep, "sc_req_item", url.Values{"sysparm_query": {"number=RITM0010001"}, "sysparm_fields": {"approval"}})
	if len(rows) != 1 || rows[0]["approval"] != "rejected" {
		t.Errorf("item approval after reject = %v", rows)
	}
	// Nobody creates or edits items, articles or approvals through these calls.
	for _, p := range []string{"/api/now/table/sc_req_item/" + RitmLaptop, "/api/now/table/kb_knowledge/" + KBArticleVPNReset} {
		if status, _, raw := e.do(t, http.MethodPatch, agent, p, map[string]any{"short_description": "x"}); status != 403 {
			t.Errorf("PATCH %s: %d %s", p, status, raw)
		}
	}
	if status, _, raw := e.do(t, http.MethodPost, mgr, path, map[string]any{"approver": UserManager}); status != 403 {
		t.Errorf("POST approval: %d %s", status, raw)
	}
}
