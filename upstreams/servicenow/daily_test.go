package servicenow

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	sb "github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

type identityT = identity.Identity

// my_incidents with no arguments is "my work": assigned to me, active,
// most recently updated first. Before, it listed every incident the user
// could read (all six for an itil agent), ordered by number.
func TestMyIncidentsDefaults(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	wantSysIDs(t, a, ToolMyIncidents, []sysIDCase{
		// Ivy is assigned INC0010001 (active, updated 10-01), INC0010005
		// (resolved, still active, updated 10-08) and INC0010006 (closed).
		{"ivy: mine, active, newest first", ivy, nil, []string{sb.IncPrinter, sb.IncLaptop}},
		{"ivy: mine including closed", ivy, map[string]any{"active_only": false}, []string{sb.IncEmail, sb.IncPrinter, sb.IncLaptop}},
		{"morgan: mine", morgan, nil, []string{sb.IncDashboard}},
		{"rita: assigned nothing", rita, nil, []string{}},
		{"rita: raised, newest first", rita, map[string]any{"relation": "caller"}, []string{sb.IncVPN, sb.IncLaptop}},
	})
}

// my_groups_queue: active, unassigned incidents of one of my groups, by
// the documented "One of My Groups" dynamic filter, per user.
func TestMyGroupsQueue(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	wantSysIDs(t, a, ToolMyGroupsQueue, []sysIDCase{
		{"ivy: Service Desk's unassigned", ivy, nil, []string{sb.IncVPN}},
		{"ivy: Service Desk's, assigned too", ivy, map[string]any{"include_assigned": true}, []string{sb.IncPrinter, sb.IncVPN, sb.IncLaptop}},
		{"morgan: Sales Ops' unassigned", morgan, nil, []string{sb.IncCRMReport}},
		{"rita: no groups", rita, nil, []string{}},
	})
}

// search_knowledge answers per user: the knowledge bases' user criteria
// decide (IT Internal is for itil, Sales Playbooks for Sales Ops).
func TestSearchKnowledge(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		name, text string
		id         *identityT
		want       []string
	}{
		{"ivy reads the internal runbook", "vpn", ivy, []string{sb.KBArticleVPNReset, sb.KBArticleVPNRunbook}},
		{"rita does not", "VPN", rita, []string{sb.KBArticleVPNReset}},
		{"every word must match", "vpn failover", ivy, []string{sb.KBArticleVPNRunbook}},
		{"body text matches", "win+b", rita, []string{sb.KBArticleBIOS}},
		{"morgan reads Sales Playbooks", "discount", morgan, []string{sb.KBArticleDiscounts}},
		{"ivy does not", "discount", ivy, []string{}},
		{"oscar is in Cannot Read", "discount", oscar, []string{}},
		{"a ^ cannot widen the query", "vpn^NQactive=true", rita, []string{}},
	} {
		res := mustTool(t, a, tc.id, ToolSearchKnowledge, map[string]any{"text": tc.text})
		got := sysIDs(t, res)
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s\n%s", tc.name, diff, text(res))
		}
	}
	res := mustTool(t, a, rita, ToolSearchKnowledge, map[string]any{"text": "vpn"})
	for _, w := range []string{"KB0010001 How to reset your VPN password (IT)", "Open the self-service portal"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("text lacks %q:\n%s", w, text(res))
		}
	}
	for _, bad := range []string{" ", "a b c d e f g", "javascript:gs.getUserID()", "x\x01y"} {
		before := e.RestHits.Load()
		res, _, err := callTool(t, a, rita, ToolSearchKnowledge, map[string]any{"text": bad})
		if err != nil || !res.IsError || e.RestHits.Load() != before {
			t.Errorf("%q: want a local tool error, got err=%v %s", bad, err, text(res))
		}
	}
}

// my_approvals and approve/reject, as different users: each sees the
// approvals waiting on them; nobody decides someone else's.
func TestApprovals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	wantSysIDs(t, a, ToolMyApprovals, []sysIDCase{
		{"ivy waits on one", ivy, nil, []string{sb.ApprovalSFAccessByAgent}},
		{"ivy's decided", ivy, map[string]any{"state": "approved"}, []string{sb.ApprovalMonitorByAgent}},
		{"morgan waits on rita's laptop", morgan, nil, []string{sb.ApprovalLaptopByManager}},
		{"rita approves nothing", rita, map[string]any{"state": "any"}, []string{}},
	})
	if w := "Salesforce sandbox access"; !strings.Contains(text(mustTool(t, a, ivy, ToolMyApprovals, nil)), w) {
		t.Errorf("my_approvals text lacks %q", w)
	}

	// Not yours: ivy (itil, can read it) and rita (the requester) are
	// refused by ServiceNow; oscar cannot even see it.
	for _, tc := range []struct {
		id   *identityT
		tool string
		want string
	}{
		{ivy, ToolApprove, "ServiceNow refused this request"},
		{rita, ToolApprove, "ServiceNow refused this request"},
		{oscar, ToolApprove, "no such record"},
	} {
		res, _, err := callTool(t, a, tc.id, tc.tool, map[string]any{"sys_id": sb.ApprovalLaptopByManager})
		if err != nil || !res.IsError || !strings.Contains(text(res), tc.want) {
			t.Errorf("%s by %s: want %q, got err=%v %s", tc.tool, tc.id.Email, tc.want, err, text(res))
		}
	}
	// Reject needs a reason (refused before any call).
	before := e.RestHits.Load()
	if res, _, err := callTool(t, a, morgan, ToolReject, map[string]any{"sys_id": sb.ApprovalLaptopByManager}); err == nil && !res.IsError {
		t.Errorf("reject without comments accepted: %s", text(res))
	} else if err == nil && e.RestHits.Load() != before {
		t.Error("reject without comments reached ServiceNow")
	}
	// The approver decides; the item follows; deciding again changes nothing.
	var rec map[string]any
	structured(t, mustTool(t, a, morgan, ToolApprove, map[string]any{"sys_id": sb.ApprovalLaptopByManager, "comments": "OK, standard model"}), &rec)
	if rec["state"] != "Approved" || !strings.Contains(str(rec["comments"]), "OK, standard model") {
		t.Errorf("approved record = %v", rec)
	}
	var items ListOutput
	structured(t, mustTool(t, a, rita, ToolMyRequestedItems, nil), &items)
	if len(items.Records) == 0 || items.Records[0]["number"] != "RITM0010001" || items.Records[0]["approval"] != "Approved" {
		t.Errorf("rita's items after approval: %v", items.Records)
	}
	res, _, err := callTool(t, a, morgan, ToolReject, map[string]any{"sys_id": sb.ApprovalLaptopByManager, "comments": "changed my mind"})
	if err != nil || !res.IsError || !strings.Contains(text(res), "is Approved, not waiting") {
		t.Errorf("second decision: err=%v %s", err, text(res))
	}
	structured(t, mustTool(t, a, ivy, ToolReject, map[string]any{"sys_id": sb.ApprovalSFAccessByAgent, "comments": "Use the shared sandbox"}), &rec)
	if rec["state"] != "Rejected" {
		t.Errorf("rejected record = %v", rec)
	}
}

// my_requested_items: requested for me, open by default, newest first.
func TestMyRequestedItems(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	wantSysIDs(t, a, ToolMyRequestedItems, []sysIDCase{
		{"rita: open ones", rita, nil, []string{sb.RitmLaptop, sb.RitmMonitor}},
		{"rita: all", rita, map[string]any{"active_only": false}, []string{sb.RitmLaptop, sb.RitmMonitor, sb.RitmHeadset}},
		{"ivy: only hers although itil reads all", ivy, nil, []string{sb.RitmVPNToken}},
		{"oscar: none", oscar, nil, []string{}},
	})
}

// The daily tools' annotations: reads are read-only; approve and reject
// write.
func TestDailyAnnotations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*mcp.ToolAnnotations{}
	for _, tl := range res.Tools {
		got[tl.Name] = tl.Annotations
	}
	for _, name := range []string{ToolMyGroupsQueue, ToolSearchKnowledge, ToolMyApprovals, ToolMyRequestedItems} {
		if an := got[name]; an == nil || !an.ReadOnlyHint {
			t.Errorf("%s: want readOnlyHint true, got %+v", name, an)
		}
	}
	for _, name := range []string{ToolApprove, ToolReject} {
		if an := got[name]; an == nil || an.ReadOnlyHint || an.DestructiveHint == nil || !*an.DestructiveHint {
			t.Errorf("%s: want readOnlyHint false, destructiveHint true, got %+v", name, an)
		}
	}
}

// sysIDCase is one user's call of a listing tool and the sys_ids it must
// answer, in order.
type sysIDCase struct {
	name string
	id   *identityT
	args map[string]any
	want []string
}

// wantSysIDs calls tool for each case and compares the sys_ids.
func wantSysIDs(t *testing.T, a *Adapter, tool string, cases []sysIDCase) {
	t.Helper()
	for _, tc := range cases {
		if diff := cmp.Diff(tc.want, sysIDs(t, mustTool(t, a, tc.id, tool, tc.args))); diff != "" {
			t.Errorf("%s %s (-want +got):\n%s", tool, tc.name, diff)
		}
	}
}
