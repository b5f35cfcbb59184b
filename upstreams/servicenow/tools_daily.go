package servicenow

// What an IT agent does every day, as the signed-in user: the group queue,
// knowledge search, approvals (with approve and reject) and requested
// items. Every call goes through the Table API with the user's token, so
// ServiceNow's ACLs and knowledge user criteria decide what each user sees.

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// Tool names of the daily tools.
const (
	ToolMyGroupsQueue    = "my_groups_queue"
	ToolSearchKnowledge  = "search_knowledge"
	ToolMyApprovals      = "my_approvals"
	ToolApprove          = "approve"
	ToolReject           = "reject"
	ToolMyRequestedItems = "my_requested_items"
)

// DynamicOneOfMyGroups is the sys_id of the base system's "One of My
// Groups" dynamic filter option: assignment_groupDYNAMIC<it> matches the
// groups the current user belongs to, evaluated by the instance in the
// user's session (ServiceNow docs, "Dynamic operators"). It needs no read
// access to sys_user_grmember.
const DynamicOneOfMyGroups = "d6435e965f510100a9ad2572f2b47744"

// Field lists of the daily tools.
var (
	ApprovalFields      = []string{"sys_id", "sysapproval", "sysapproval.short_description", "source_table", "state", "approver", "due_date", "sys_created_on", "comments"}
	RequestedItemFields = []string{"sys_id", "number", "short_description", "cat_item", "state", "stage", "approval", "requested_for", "opened_by", "opened_at", "due_date", "sys_updated_on"}
	KnowledgeFields     = []string{"sys_id", "number", "short_description", "kb_knowledge_base", "kb_category", "text", "sys_updated_on"}
)

const (
	maxSearchText     = 200
	maxSearchWords    = 6
	maxArticleExcerpt = 600
	maxComments       = 4000
)

func (a *Adapter) dailyTools() []rest.Tool {
	limit := func(def int) map[string]any {
		def = min(def, a.maxRecords)
		return map[string]any{"type": "integer", "minimum": 1, "maximum": a.maxRecords,
			"description": fmt.Sprintf("Most records to return (1-%d, default %d).", a.maxRecords, def)}
	}
	offset := map[string]any{"type": "integer", "minimum": 0, "maximum": maxOffset, "description": "Records to skip, for paging: the next_offset of the previous page (default 0)."}
	readOnly := &mcp.ToolAnnotations{ReadOnlyHint: true, IdempotentHint: true, OpenWorldHint: rest.BoolPtr(true)}
	decide := &mcp.ToolAnnotations{ReadOnlyHint: false, DestructiveHint: rest.BoolPtr(true), IdempotentHint: true, OpenWorldHint: rest.BoolPtr(true)}
	approvalID := map[string]any{"type": "string", "pattern": reSysID.String(), "description": "The approval's sys_id (from my_approvals)."}
	return []rest.Tool{
		{Run: rest.Bind(a.call, (*call).myGroupsQueue), Def: &mcp.Tool{
			Name:  ToolMyGroupsQueue,
			Title: "My groups' queue",
			Description: "Lists active incidents assigned to one of your ServiceNow groups and not yet to a person (the team's unclaimed work), most recently updated first, as the signed-in user. " +
				"Set include_assigned to also list those already assigned to someone. Claim one with update_incident (assigned_to = you).",
			InputSchema: rest.Object(map[string]any{
				"include_assigned": map[string]any{"type": "boolean", "description": "Also list incidents of your groups already assigned to a person (default false)."},
				"limit":            limit(50),
				"offset":           offset,
			}),
			OutputSchema: listOutputSchema,
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).searchKnowledge), Def: &mcp.Tool{
			Name:  ToolSearchKnowledge,
			Title: "Search the knowledge base",
			Description: "Searches published ServiceNow knowledge articles (kb_knowledge) whose title or body contain every word of text, as the signed-in user: ServiceNow's knowledge base user criteria decide which articles you may read. " +
				"Returns number, title, knowledge base and an excerpt; read a whole article with the resource servicenow://table/kb_knowledge/{sys_id}.",
			InputSchema: rest.Object(map[string]any{
				"text":   map[string]any{"type": "string", "minLength": 2, "maxLength": maxSearchText, "description": fmt.Sprintf("Words to find (up to %d), e.g. \"vpn password\".", maxSearchWords)},
				"limit":  limit(10),
				"offset": offset,
			}, "text"),
			OutputSchema: listOutputSchema,
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).myApprovals), Def: &mcp.Tool{
			Name:        ToolMyApprovals,
			Title:       "My approvals",
			Description: "Lists ServiceNow approvals waiting on you (sysapproval_approver where you are the approver and the state is requested), newest first, as the signed-in user, with what each approves. Decide with approve or reject.",
			InputSchema: rest.Object(map[string]any{
				"state":  map[string]any{"type": "string", "enum": []string{"requested", "approved", "rejected", "any"}, "description": "requested (default): waiting on you; approved or rejected: what you decided; any: all of yours."},
				"limit":  limit(50),
				"offset": offset,
			}),
			OutputSchema: listOutputSchema,
			Annotations:  readOnly,
		}},
		{Run: rest.Bind(a.call, (*call).approve), Def: &mcp.Tool{
			Name:         ToolApprove,
			Title:        "Approve",
			Description:  "Approves one ServiceNow approval that waits on you (state requested), as the signed-in user, with an optional comment. ServiceNow refuses approvals that are not yours.",
			InputSchema:  rest.Object(map[string]any{"sys_id": approvalID, "comments": map[string]any{"type": "string", "maxLength": maxComments, "description": "A comment recorded on the approval."}}, "sys_id"),
			OutputSchema: recordOutputSchema,
			Annotations:  decide,
		}},
		{Run: rest.Bind(a.call, (*call).reject), Def: &mcp.Tool{
			Name:         ToolReject,
			Title:        "Reject",
			Description:  "Rejects one ServiceNow approval that waits on you (state requested), as the signed-in user; comments (the reason) are required. ServiceNow refuses approvals that are not yours.",
			InputSchema:  rest.Object(map[string]any{"sys_id": approvalID, "comments": map[string]any{"type": "string", "minLength": 1, "maxLength": maxComments, "description": "Why you reject it; recorded on the approval."}}, "sys_id", "comments"),
			OutputSchema: recordOutputSchema,
			Annotations:  decide,
		}},
		{Run: rest.Bind(a.call, (*call).myRequestedItems), Def: &mcp.Tool{
			Name:        ToolMyRequestedItems,
			Title:       "My requested items",
			Description: "Lists the service catalog items requested for you (sc_req_item where requested_for is you), most recently updated first, with their stage and approval, as the signed-in user.",
			InputSchema: rest.Object(map[string]any{
				"active_only": map[string]any{"type": "boolean", "description": "Only items still open (default true)."},
				"limit":       limit(50),
				"offset":      offset,
			}),
			OutputSchema: listOutputSchema,
			Annotations:  readOnly,
		}},
	}
}

// pageArgs validates limit and offset; bad is a message for the user.
func (c *call) pageArgs(lim *int, off, def int) (limit int, bad string) {
	limit, bad = rest.LimitArg("limit", lim, c.a.maxRecords, def)
	if bad == "" && (off < 0 || off > maxOffset) {
		bad = fmt.Sprintf("offset must be between 0 and %d", maxOffset)
	}
	return limit, bad
}

// MyGroupsQueueQuery returns the encoded query of my_groups_queue.
func MyGroupsQueueQuery(includeAssigned bool) string {
	q := "assignment_groupDYNAMIC" + DynamicOneOfMyGroups
	if !includeAssigned {
		q += "^assigned_toISEMPTY"
	}
	return q + "^active=true^ORDERBYDESCsys_updated_on"
}

func (c *call) myGroupsQueue(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		IncludeAssigned bool `json:"include_assigned"`
		Limit           *int `json:"limit"`
		Offset          int  `json:"offset"`
	}
	if err := rest.DecodeArgs(ToolMyGroupsQueue, p.Arguments, &args); err != nil {
		return nil, err
	}
	limit, bad := c.pageArgs(args.Limit, args.Offset, 50)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	out, err := c.list("incident", MyGroupsQueueQuery(args.IncludeAssigned), IncidentFields, limit, args.Offset, true)
	if err != nil {
		return c.ToolFailure(err)
	}
	return listResult(out, "incident(s)"), nil
}

// KnowledgeQuery returns the encoded query of search_knowledge: every word
// in the title or the body (^OR binds tighter than ^), published and
// active articles only, most recently updated first. Words lose the
// characters that would change the query's structure (^, which separates
// conditions, and control characters).
func KnowledgeQuery(text string) (string, error) {
	if bad := checkText("text", text, maxSearchText); bad != "" {
		return "", fmt.Errorf("%s", bad)
	}
	clean := strings.Map(func(r rune) rune {
		if r == '^' || r < ' ' || r == 0x7f {
			return ' '
		}
		return r
	}, text)
	words := strings.Fields(clean)
	if len(words) == 0 {
		return "", fmt.Errorf("text must contain at least one word")
	}
	if len(words) > maxSearchWords {
		return "", fmt.Errorf("text may have at most %d words, got %d", maxSearchWords, len(words))
	}
	conds := []string{"workflow_state=published", "active=true"}
	for _, w := range words {
		if strings.Contains(foldCase(w), "javascript:") {
			return "", fmt.Errorf("text must not contain javascript: (ServiceNow would run it as a script)")
		}
		conds = append(conds, "short_descriptionLIKE"+w+"^ORtextLIKE"+w)
	}
	return strings.Join(conds, "^") + "^ORDERBYDESCsys_updated_on", nil
}

func (c *call) searchKnowledge(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		Text   string `json:"text"`
		Limit  *int   `json:"limit"`
		Offset int    `json:"offset"`
	}
	if err := rest.DecodeArgs(ToolSearchKnowledge, p.Arguments, &args); err != nil {
		return nil, err
	}
	limit, bad := c.pageArgs(args.Limit, args.Offset, 10)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	q, err := KnowledgeQuery(args.Text)
	if err != nil {
		return rest.ToolError(err.Error()), nil
	}
	out, err := c.list("kb_knowledge", q, KnowledgeFields, limit, args.Offset, true)
	if err != nil {
		return c.ToolFailure(err)
	}
	for _, r := range out.Records {
		if s, ok := r["text"].(string); ok {
			r["text"] = rest.Clip(stripTags(s), maxArticleExcerpt)
		}
	}
	return rest.Result(knowledgeText(out), out), nil
}

// stripTags turns an article's HTML body into plain text for an excerpt.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
			b.WriteByte(' ')
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// linesText is listText with one line per record written by line.
func linesText(out *ListOutput, noun string, line func(r map[string]any) string) string {
	head := listText(&ListOutput{Returned: out.Returned, Hidden: out.Hidden, Truncated: out.Truncated, Total: out.Total, Offset: out.Offset, Limit: out.Limit, NextOffset: out.NextOffset}, noun)
	if out.Returned == 0 {
		return head
	}
	var b strings.Builder
	b.WriteString(strings.TrimSuffix(head, ":\n"))
	b.WriteString(":\n")
	for _, r := range out.Records {
		b.WriteString(line(r))
		b.WriteByte('\n')
	}
	return b.String()
}

func knowledgeText(out *ListOutput) string {
	return linesText(out, "knowledge article(s)", func(r map[string]any) string {
		return fmt.Sprintf("- %s %s (%s) [sys_id %s]\n  %s", str(r["number"]), str(r["short_description"]), str(r["kb_knowledge_base"]), str(r["sys_id"]), str(r["text"]))
	})
}

func approvalLine(r map[string]any) string {
	return fmt.Sprintf("- %s %s (state: %s; approver: %s; since %s) [approval sys_id %s]", str(r["sysapproval"]), str(r["sysapproval.short_description"]),
		str(r["state"]), str(r["approver"]), str(r["sys_created_on"]), str(r["sys_id"]))
}

func requestedItemLine(r map[string]any) string {
	return fmt.Sprintf("- %s %s (state: %s; stage: %s; approval: %s; updated %s) [sys_id %s]", str(r["number"]), str(r["short_description"]),
		str(r["state"]), str(r["stage"]), str(r["approval"]), str(r["sys_updated_on"]), str(r["sys_id"]))
}

// MyApprovalsQuery returns the encoded query of my_approvals.
func MyApprovalsQuery(state string) (string, error) {
	q := "approver=javascript:gs.getUserID()"
	switch state {
	case "", "requested":
		q += "^state=requested"
	case "approved", "rejected":
		q += "^state=" + state
	case "any":
	default:
		return "", fmt.Errorf("state must be requested, approved, rejected or any, got %q", rest.Clip(state, 40))
	}
	return q + "^ORDERBYDESCsys_created_on", nil
}

func (c *call) myApprovals(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		State  string `json:"state"`
		Limit  *int   `json:"limit"`
		Offset int    `json:"offset"`
	}
	if err := rest.DecodeArgs(ToolMyApprovals, p.Arguments, &args); err != nil {
		return nil, err
	}
	limit, bad := c.pageArgs(args.Limit, args.Offset, 50)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	q, err := MyApprovalsQuery(args.State)
	if err != nil {
		return rest.ToolError(err.Error()), nil
	}
	out, err := c.list("sysapproval_approver", q, ApprovalFields, limit, args.Offset, true)
	if err != nil {
		return c.ToolFailure(err)
	}
	return rest.Result(linesText(out, "approval(s)", approvalLine), out), nil
}

func (c *call) approve(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	return c.decide(ToolApprove, "approved", p)
}

func (c *call) reject(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	return c.decide(ToolReject, "rejected", p)
}

// decide sets an approval's state (approved or rejected) with comments, as
// the user: PATCH /api/now/table/sysapproval_approver/{sys_id}. It reads
// the approval first so that one already decided is reported as such
// rather than changed again; whether the user may decide it is ServiceNow's
// call (its ACLs refuse approvals that are not theirs).
func (c *call) decide(tool, state string, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		SysID    string `json:"sys_id"`
		Comments string `json:"comments"`
	}
	if err := rest.DecodeArgs(tool, p.Arguments, &args); err != nil {
		return nil, err
	}
	if !reSysID.MatchString(args.SysID) {
		return rest.ToolError(fmt.Sprintf("sys_id %q is not a 32-character lower-case hex sys_id (take it from my_approvals)", rest.Clip(args.SysID, 80))), nil
	}
	if bad := checkText("comments", args.Comments, maxComments); bad != "" {
		return rest.ToolError(bad), nil
	}
	if state == "rejected" && strings.TrimSpace(args.Comments) == "" {
		return rest.ToolError("comments are required when rejecting: say why, the requester reads it"), nil
	}
	q := url.Values{"sysparm_display_value": {"all"}, "sysparm_exclude_reference_link": {"true"}, "sysparm_fields": {strings.Join(ApprovalFields, ",")}}
	cur, err := c.record(http.MethodGet, "sysapproval_approver", args.SysID, q, nil)
	if err != nil {
		return c.ToolFailure(err)
	}
	if st := rawValue(cur["state"]); st != "requested" {
		return rest.ToolError(fmt.Sprintf("approval %s (for %s) is %s, not waiting on a decision; nothing was changed.", args.SysID, str(cur["sysapproval"]), str(cur["state"]))), nil
	}
	body := map[string]string{"state": state}
	if args.Comments != "" {
		body["comments"] = args.Comments
	}
	q = displayParam(true)
	q.Set("sysparm_fields", strings.Join(ApprovalFields, ","))
	rec, err := c.record(http.MethodPatch, "sysapproval_approver", args.SysID, q, body)
	if err != nil {
		return c.ToolFailure(err)
	}
	return recordResult(rec, fmt.Sprintf("%s %s (approval %s); state is now %s.", map[string]string{"approved": "Approved", "rejected": "Rejected"}[state], str(rec["sysapproval"]), args.SysID, str(rec["state"]))), nil
}

// rawValue is the value of a field read with sysparm_display_value=all.
func rawValue(v any) string {
	if m, ok := v.(map[string]any); ok {
		s, _ := m["value"].(string)
		return s
	}
	s, _ := v.(string)
	return s
}

// MyRequestedItemsQuery returns the encoded query of my_requested_items.
func MyRequestedItemsQuery(activeOnly bool) string {
	q := "requested_for=javascript:gs.getUserID()"
	if activeOnly {
		q += "^active=true"
	}
	return q + "^ORDERBYDESCsys_updated_on"
}

func (c *call) myRequestedItems(p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	var args struct {
		ActiveOnly *bool `json:"active_only"`
		Limit      *int  `json:"limit"`
		Offset     int   `json:"offset"`
	}
	if err := rest.DecodeArgs(ToolMyRequestedItems, p.Arguments, &args); err != nil {
		return nil, err
	}
	limit, bad := c.pageArgs(args.Limit, args.Offset, 50)
	if bad != "" {
		return rest.ToolError(bad), nil
	}
	out, err := c.list("sc_req_item", MyRequestedItemsQuery(args.ActiveOnly == nil || *args.ActiveOnly), RequestedItemFields, limit, args.Offset, true)
	if err != nil {
		return c.ToolFailure(err)
	}
	return rest.Result(linesText(out, "requested item(s)", requestedItemLine), out), nil
}
