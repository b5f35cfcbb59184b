package sandbox

// The tables of an IT agent's day beyond incidents: requested items
// (sc_req_item), approvals (sysapproval_approver), and the knowledge base
// (kb_knowledge with its knowledge bases and their user criteria), each
// with the access rules the platform applies to them.

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Well-known sys_ids of DefaultSeed's requested items, approvals and
// knowledge articles.
const (
	RitmLaptop   = "a1e0c0de5f0000000000000000000001" // RITM0010001 for rep, approval requested (approver manager)
	RitmSFAccess = "a1e0c0de5f0000000000000000000002" // RITM0010002 for manager, approval requested (approver it.agent)
	RitmMonitor  = "a1e0c0de5f0000000000000000000003" // RITM0010003 for rep, approved (by it.agent)
	RitmHeadset  = "a1e0c0de5f0000000000000000000004" // RITM0010004 for rep, closed complete (inactive)
	RitmVPNToken = "a1e0c0de5f0000000000000000000005" // RITM0010005 for it.agent, no approval needed

	ApprovalLaptopByManager = "a990c0de5f0000000000000000000001" // manager approves rep's laptop; requested
	ApprovalSFAccessByAgent = "a990c0de5f0000000000000000000002" // it.agent approves manager's Salesforce access; requested
	ApprovalMonitorByAgent  = "a990c0de5f0000000000000000000003" // it.agent approved rep's monitor

	KBIT       = "0b0bc0de5f0000000000000000000001" // "IT": no user criteria, everyone reads
	KBInternal = "0b0bc0de5f0000000000000000000002" // "IT Internal": Can Read = role itil
	KBSales    = "0b0bc0de5f0000000000000000000003" // "Sales Playbooks": Can Read = group Sales Ops; Cannot Read = outsider

	KBArticleVPNReset    = "aa0bc0de5f0000000000000000000001" // KB0010001 IT, published
	KBArticleVPNRunbook  = "aa0bc0de5f0000000000000000000002" // KB0010002 IT Internal, published
	KBArticleBIOS        = "aa0bc0de5f0000000000000000000003" // KB0010003 IT, published
	KBArticleDiscounts   = "aa0bc0de5f0000000000000000000004" // KB0010004 Sales Playbooks, published
	KBArticleVPNDraft    = "aa0bc0de5f0000000000000000000005" // KB0010005 IT, draft by it.agent
	KBArticleOldPrinters = "aa0bc0de5f0000000000000000000006" // KB0010006 IT, retired
)

var (
	approvalStates = map[string]string{
		"not requested": "Not Yet Requested", "requested": "Requested", "approved": "Approved", "rejected": "Rejected",
		"cancelled": "Cancelled", "not_required": "No Longer Required", "duplicate": "Duplicate",
	}
	ritmStates = map[string]string{
		"-5": "Pending", "1": "Open", "2": "Work in Progress", "3": "Closed Complete", "4": "Closed Incomplete", "7": "Closed Skipped",
	}
	kbStates = map[string]string{"draft": "Draft", "review": "Review", "published": "Published", "pending_retirement": "Pending retirement", "retired": "Retired"}
)

// dailyTables are added to tables by init. Field names follow the base
// system's dictionary. sysapproval_approver.sysapproval references task on
// a real instance; the sandbox serves no task table, so it references
// sc_req_item, the only table with approvals here.
var dailyTables = []*tableSpec{
	newTable("sc_req_item", "number",
		fieldSpec{name: "number", readOnly: true},
		fieldSpec{name: "short_description"},
		fieldSpec{name: "description"},
		fieldSpec{name: "cat_item"},
		fieldSpec{name: "request"},
		fieldSpec{name: "requested_for", kind: kRef, ref: "sys_user"},
		fieldSpec{name: "opened_by", kind: kRef, ref: "sys_user", readOnly: true},
		fieldSpec{name: "assignment_group", kind: kRef, ref: "sys_user_group"},
		fieldSpec{name: "assigned_to", kind: kRef, ref: "sys_user"},
		fieldSpec{name: "state", kind: kChoice, choices: ritmStates},
		fieldSpec{name: "stage"},
		fieldSpec{name: "approval", kind: kChoice, choices: approvalStates, readOnly: true},
		fieldSpec{name: "active", kind: kBool, readOnly: true},
		fieldSpec{name: "opened_at", kind: kDateTime, readOnly: true},
		fieldSpec{name: "due_date", kind: kDateTime},
		fieldSpec{name: "comments"},
	),
	newTable("sysapproval_approver", "sys_id",
		fieldSpec{name: "approver", kind: kRef, ref: "sys_user"},
		fieldSpec{name: "state", kind: kChoice, choices: approvalStates},
		fieldSpec{name: "sysapproval", kind: kRef, ref: "sc_req_item"},
		fieldSpec{name: "source_table"},
		fieldSpec{name: "document_id"},
		fieldSpec{name: "due_date", kind: kDateTime},
		fieldSpec{name: "comments"},
	),
	newTable("kb_knowledge_base", "title",
		fieldSpec{name: "title"}, fieldSpec{name: "description"},
		fieldSpec{name: "owner", kind: kRef, ref: "sys_user"}, fieldSpec{name: "active", kind: kBool},
	),
	newTable("kb_knowledge", "number",
		fieldSpec{name: "number", readOnly: true},
		fieldSpec{name: "short_description"},
		fieldSpec{name: "text"},
		fieldSpec{name: "kb_knowledge_base", kind: kRef, ref: "kb_knowledge_base"},
		fieldSpec{name: "kb_category"},
		fieldSpec{name: "workflow_state", kind: kChoice, choices: kbStates},
		fieldSpec{name: "author", kind: kRef, ref: "sys_user"},
		fieldSpec{name: "active", kind: kBool},
		fieldSpec{name: "published", kind: kDateTime},
		fieldSpec{name: "sys_view_count"},
	),
	// user_criteria: user, group and role are lists (comma-separated
	// sys_ids, sys_ids and role names); a user matches when any of them
	// does (match_all false, the default).
	newTable("user_criteria", "name",
		fieldSpec{name: "name"}, fieldSpec{name: "user"}, fieldSpec{name: "group"}, fieldSpec{name: "role"},
		fieldSpec{name: "active", kind: kBool},
	),
	newTable("kb_uc_can_read_mtom", "sys_id",
		fieldSpec{name: "kb_knowledge_base", kind: kRef, ref: "kb_knowledge_base"},
		fieldSpec{name: "user_criteria", kind: kRef, ref: "user_criteria"},
	),
	newTable("kb_uc_cannot_read_mtom", "sys_id",
		fieldSpec{name: "kb_knowledge_base", kind: kRef, ref: "kb_knowledge_base"},
		fieldSpec{name: "user_criteria", kind: kRef, ref: "user_criteria"},
	),
}

// tableRule is the access rules (and write behaviour) of a table other
// than incident. read nil means every authenticated user reads; write nil
// means no one writes through the Table API; update, when set, replaces
// the generic field assignment of a PATCH and answers a status and message
// (0 when the update is done).
type tableRule struct {
	read   func(s *Server, u *User, rec map[string]string) bool
	write  func(u *User, rec map[string]string) bool
	update func(s *Server, u *User, rec, values map[string]string) (status int, message, detail string)
}

var tableRules = map[string]*tableRule{
	"sc_req_item":            {read: readRequestedItem},
	"sysapproval_approver":   {read: readApproval, write: writeApproval, update: updateApproval},
	"kb_knowledge":           {read: readArticle},
	"kb_knowledge_base":      {read: func(s *Server, u *User, rec map[string]string) bool { return s.kbReadableLocked(u, rec["sys_id"]) }},
	"user_criteria":          {read: knowledgeAdminOnly},
	"kb_uc_can_read_mtom":    {read: knowledgeAdminOnly},
	"kb_uc_cannot_read_mtom": {read: knowledgeAdminOnly},
}

func init() {
	for _, t := range dailyTables {
		tables[t.name] = t
	}
}

func knowledgeAdminOnly(_ *Server, u *User, _ map[string]string) bool {
	return u.hasRole("admin", "knowledge_admin")
}

// readRequestedItem follows the base system's sc_req_item read rules:
// fulfillers (itil) read every item; others the items requested for them
// or opened by them, and approvers the items waiting on them.
func readRequestedItem(s *Server, u *User, rec map[string]string) bool {
	if u.hasRole("itil", "admin") || rec["requested_for"] == u.SysID || rec["opened_by"] == u.SysID {
		return true
	}
	for _, id := range s.order["sysapproval_approver"] {
		if a := s.rows["sysapproval_approver"][id]; a["sysapproval"] == rec["sys_id"] && a["approver"] == u.SysID {
			return true
		}
	}
	return false
}

// readApproval: the approver, fulfillers and approval admins read an
// approval, and so does the person the approved item is for (to see who it
// waits on).
func readApproval(s *Server, u *User, rec map[string]string) bool {
	if rec["approver"] == u.SysID || u.hasRole("itil", "admin", "approval_admin") {
		return true
	}
	item := s.rows["sc_req_item"][rec["sysapproval"]]
	return item != nil && (item["requested_for"] == u.SysID || item["opened_by"] == u.SysID)
}

// writeApproval: only the approver (or an admin / approval_admin) may act
// on an approval — ServiceNow docs, "Dynamic operators": the "One of My
// Approvals" option is "the current user or someone for whom the current
// user is a delegate for approvals"; being a fulfiller (itil) or the
// requester does not let you approve. Delegation is not modelled.
func writeApproval(u *User, rec map[string]string) bool {
	return rec["approver"] == u.SysID || u.hasRole("admin", "approval_admin")
}

// updateApproval applies a PATCH to sysapproval_approver: the approver
// sets state (approved or rejected, from requested) and comments; other
// fields are not theirs to change. The requested item's approval field then
// follows ServiceNow's rule (docs, "Approval status"): rejected if any
// approver rejected, approved when all approved, else requested.
func updateApproval(s *Server, u *User, rec, values map[string]string) (int, string, string) {
	for k := range values {
		if k != "state" && k != "comments" {
			return http.StatusForbidden, "Operation Failed", "ACL restricts the update of field " + clip(k)
		}
	}
	if st, ok := values["state"]; ok && st != rec["state"] {
		if rec["state"] != "requested" {
			return http.StatusForbidden, "Operation Failed", "Approval is " + rec["state"] + ", not requested"
		}
		if st != "approved" && st != "rejected" {
			return http.StatusBadRequest, "Invalid state", "An approver may set state to approved or rejected"
		}
		rec["state"] = st
	}
	if c := values["comments"]; c != "" {
		rec["comments"] = approvalComment(s.nowString(), u, c, rec["comments"])
	}
	rec["sys_updated_on"] = s.nowString()
	rec["sys_updated_by"] = u.UserName
	if item := s.rows["sc_req_item"][rec["sysapproval"]]; item != nil {
		item["approval"] = s.approvalOfLocked(item["sys_id"])
		item["sys_updated_on"] = s.nowString()
	}
	return 0, "", ""
}

// approvalComment prepends a journal entry the way a journal field reads back
// (newest first, "time - user (Additional comments)").
func approvalComment(now string, u *User, text, old string) string {
	name := strings.TrimSpace(u.FirstName + " " + u.LastName)
	e := fmt.Sprintf("%s - %s (Additional comments)\n%s\n", now, name, text)
	if old == "" {
		return e
	}
	return e + "\n" + old
}

func (s *Server) approvalOfLocked(itemID string) string {
	n, approved := 0, 0
	for _, id := range s.order["sysapproval_approver"] {
		a := s.rows["sysapproval_approver"][id]
		if a["sysapproval"] != itemID {
			continue
		}
		n++
		switch a["state"] {
		case "rejected":
			return "rejected"
		case "approved":
			approved++
		}
	}
	switch {
	case n == 0:
		return "not requested"
	case approved == n:
		return "approved"
	}
	return "requested"
}

// readArticle: a knowledge article is readable when it is published and
// its knowledge base's user criteria let the user read; its author and
// knowledge admins read it in any state.
func readArticle(s *Server, u *User, rec map[string]string) bool {
	if u.hasRole("admin", "knowledge_admin") || (rec["author"] != "" && rec["author"] == u.SysID) {
		return true
	}
	if rec["workflow_state"] != "published" || rec["active"] != "true" {
		return false
	}
	return s.kbReadableLocked(u, rec["kb_knowledge_base"])
}

// kbReadableLocked applies a knowledge base's user criteria, per
// ServiceNow docs "Managing access to knowledge bases and knowledge
// articles": a user who matches Cannot Read is denied (also when they
// match Can Read); with Can Read set, only users matching it read; "If no
// user criteria is selected for a knowledge base, all users can read"
// (glide.knowman.block_access_with_no_user_criteria left false).
func (s *Server) kbReadableLocked(u *User, kb string) bool {
	if s.rows["kb_knowledge_base"][kb] == nil {
		return false
	}
	if u.hasRole("admin", "knowledge_admin") {
		return true
	}
	if s.criteriaMatchLocked(u, "kb_uc_cannot_read_mtom", kb) > 0 {
		return false
	}
	n := 0
	for _, id := range s.order["kb_uc_can_read_mtom"] {
		if s.rows["kb_uc_can_read_mtom"][id]["kb_knowledge_base"] == kb {
			n++
		}
	}
	return n == 0 || s.criteriaMatchLocked(u, "kb_uc_can_read_mtom", kb) > 0
}

// criteriaMatchLocked counts the user criteria of kb in mtom that u matches.
func (s *Server) criteriaMatchLocked(u *User, mtom, kb string) int {
	n := 0
	for _, id := range s.order[mtom] {
		m := s.rows[mtom][id]
		if m["kb_knowledge_base"] != kb {
			continue
		}
		c := s.rows["user_criteria"][m["user_criteria"]]
		if c != nil && c["active"] != "false" && userMatches(u, c) {
			n++
		}
	}
	return n
}

func userMatches(u *User, c map[string]string) bool {
	list := func(v string) []string {
		var out []string
		for _, x := range strings.Split(v, ",") {
			if x = strings.TrimSpace(x); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	if slices.Contains(list(c["user"]), u.SysID) || u.hasRole(list(c["role"])...) {
		return true
	}
	for _, g := range list(c["group"]) {
		if slices.Contains(u.Groups, g) {
			return true
		}
	}
	return false
}

// loadRecords inserts seed rows of the daily tables.
func (s *Server) loadRecords(recs map[string][]map[string]string) error {
	names := make([]string, 0, len(recs))
	for name := range recs {
		names = append(names, name)
	}
	// Parents first, so references can be checked in order.
	rank := map[string]int{"user_criteria": 0, "kb_knowledge_base": 1, "sc_req_item": 2}
	slices.SortFunc(names, func(a, b string) int {
		ra, oka := rank[a]
		rb, okb := rank[b]
		if !oka {
			ra = 9
		}
		if !okb {
			rb = 9
		}
		if ra != rb {
			return ra - rb
		}
		return strings.Compare(a, b)
	})
	for _, name := range names {
		t := tables[name]
		if t == nil || tableRules[name] == nil {
			return fmt.Errorf("sandbox seed: records for table %q, which seeds cannot fill", name)
		}
		for _, in := range recs[name] {
			rec := map[string]string{}
			for k, v := range in {
				if t.field(k) == nil {
					return fmt.Errorf("sandbox seed: %s has no field %q", name, k)
				}
				rec[k] = v
			}
			if !reSysID.MatchString(rec["sys_id"]) || s.rows[name][rec["sys_id"]] != nil {
				return fmt.Errorf("sandbox seed: %s record needs a unique 32-hex sys_id, got %q", name, rec["sys_id"])
			}
			for _, f := range t.fields {
				if f.kind == kRef && rec[f.name] != "" && s.rows[f.ref][rec[f.name]] == nil {
					return fmt.Errorf("sandbox seed: %s %s: %s references unknown %s %s", name, rec["sys_id"], f.name, f.ref, rec[f.name])
				}
			}
			s.insert(name, rec)
		}
	}
	for _, id := range s.order["sc_req_item"] {
		item := s.rows["sc_req_item"][id]
		item["approval"] = s.approvalOfLocked(id)
		setDefault(item, "active", fmt.Sprint(item["state"] != "3" && item["state"] != "4" && item["state"] != "7"))
	}
	return nil
}

// DefaultRecords are DefaultSeed's requested items, approvals and
// knowledge: rep (Rita) waits on her manager's approval of a laptop and
// on nothing else; it.agent (Ivy) has one approval of manager's to decide;
// the IT Internal knowledge base is for fulfillers (itil), Sales Playbooks
// for Sales Ops.
func DefaultRecords() map[string][]map[string]string {
	ritm := func(id, number, short, forUser, state, stage, opened string) map[string]string {
		return map[string]string{"sys_id": id, "number": number, "short_description": short, "cat_item": short,
			"requested_for": forUser, "opened_by": forUser, "state": state, "stage": stage,
			"opened_at": opened, "sys_created_on": opened, "sys_updated_on": opened}
	}
	appr := func(id, approver, item, state, created string) map[string]string {
		return map[string]string{"sys_id": id, "approver": approver, "sysapproval": item, "document_id": item,
			"source_table": "sc_req_item", "state": state, "sys_created_on": created, "sys_updated_on": created}
	}
	art := func(id, number, kb, short, text, state, author string) map[string]string {
		return map[string]string{"sys_id": id, "number": number, "kb_knowledge_base": kb, "short_description": short,
			"text": "<p>" + text + "</p>", "workflow_state": state, "author": author, "active": fmt.Sprint(state != "retired"),
			"kb_category": "IT", "published": "2026-09-01 09:00:00", "sys_view_count": "0"}
	}
	const (
		ucITStaff  = "c0c0c0de5f0000000000000000000001"
		ucSalesOps = "c0c0c0de5f0000000000000000000002"
		ucOutsider = "c0c0c0de5f0000000000000000000003"
	)
	return map[string][]map[string]string{
		"sc_req_item": {
			ritm(RitmLaptop, "RITM0010001", "Standard laptop", UserRep, "1", "waiting_for_approval", "2026-10-10 09:00:00"),
			ritm(RitmSFAccess, "RITM0010002", "Salesforce sandbox access", UserManager, "1", "waiting_for_approval", "2026-10-11 10:00:00"),
			ritm(RitmMonitor, "RITM0010003", "Second monitor", UserRep, "2", "fulfillment", "2026-10-02 11:00:00"),
			ritm(RitmHeadset, "RITM0010004", "Headset", UserRep, "3", "complete", "2026-09-20 08:00:00"),
			ritm(RitmVPNToken, "RITM0010005", "VPN hardware token", UserITAgent, "2", "fulfillment", "2026-10-12 15:00:00"),
		},
		"sysapproval_approver": {
			appr(ApprovalLaptopByManager, UserManager, RitmLaptop, "requested", "2026-10-10 09:00:05"),
			appr(ApprovalSFAccessByAgent, UserITAgent, RitmSFAccess, "requested", "2026-10-11 10:00:05"),
			appr(ApprovalMonitorByAgent, UserITAgent, RitmMonitor, "approved", "2026-10-02 11:00:05"),
		},
		"user_criteria": {
			{"sys_id": ucITStaff, "name": "IT staff", "role": "itil", "active": "true"},
			{"sys_id": ucSalesOps, "name": "Sales Ops members", "group": GroupSalesOps, "active": "true"},
			{"sys_id": ucOutsider, "name": "Contractors", "user": UserOutsider, "active": "true"},
		},
		"kb_knowledge_base": {
			{"sys_id": KBIT, "title": "IT", "description": "How-tos for everyone", "owner": UserITAgent, "active": "true"},
			{"sys_id": KBInternal, "title": "IT Internal", "description": "Runbooks for the service desk", "owner": UserITAgent, "active": "true"},
			{"sys_id": KBSales, "title": "Sales Playbooks", "description": "Pricing and discount rules", "owner": UserManager, "active": "true"},
		},
		"kb_uc_can_read_mtom": {
			{"sys_id": "c1c1c0de5f0000000000000000000001", "kb_knowledge_base": KBInternal, "user_criteria": ucITStaff},
			{"sys_id": "c1c1c0de5f0000000000000000000002", "kb_knowledge_base": KBSales, "user_criteria": ucSalesOps},
			{"sys_id": "c1c1c0de5f0000000000000000000003", "kb_knowledge_base": KBSales, "user_criteria": ucOutsider},
		},
		"kb_uc_cannot_read_mtom": {
			{"sys_id": "c2c2c0de5f0000000000000000000001", "kb_knowledge_base": KBSales, "user_criteria": ucOutsider},
		},
		"kb_knowledge": {
			art(KBArticleVPNReset, "KB0010001", KBIT, "How to reset your VPN password", "Open the self-service portal, choose VPN, then Reset password.", "published", UserITAgent),
			art(KBArticleVPNRunbook, "KB0010002", KBInternal, "VPN concentrator failover runbook", "Fail the VPN concentrator over to the standby node: drain, switch, verify.", "published", UserITAgent),
			art(KBArticleBIOS, "KB0010003", KBIT, "Laptop won't boot after update: BIOS recovery", "Hold Win+B while powering on to recover the BIOS.", "published", UserITAgent),
			art(KBArticleDiscounts, "KB0010004", KBSales, "Discount approval playbook", "Discounts above 20% need the sales manager's approval.", "published", UserManager),
			art(KBArticleVPNDraft, "KB0010005", KBIT, "VPN client 6.0 upgrade notes", "Draft: the VPN client 6.0 rollout plan.", "draft", UserITAgent),
			art(KBArticleOldPrinters, "KB0010006", KBIT, "Printer driver for floor 3 (old VPN-era model)", "Retired.", "retired", UserITAgent),
		},
	}
}
