package sandbox

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
)

func getRecord(t *testing.T, e *env, tok, path string) map[string]any {
	t.Helper()
	status, _, raw := e.do(t, http.MethodGet, tok, path, nil)
	var body struct {
		Result map[string]any `json:"result"`
	}
	if status != 200 || json.Unmarshal(raw, &body) != nil {
		t.Fatalf("GET %s: %d %s", path, status, raw)
	}
	return body.Result
}

// A second comment is appended to the journal; it does not replace the
// first. The Table API shows the journal as the field's display value
// (newest first) and an empty value.
func TestJournalFieldsAppend(t *testing.T) {
	t.Parallel()
	clk := resttest.NewClock(time.Date(2026, 11, 2, 9, 30, 0, 0, time.UTC))
	e := newEnv(t, &Options{Clock: clk.Now})
	rep, _ := e.sb.IssueToken("rep")
	agent, _ := e.sb.IssueToken("it.agent")
	path := "/api/now/table/incident/" + IncLaptop
	for _, c := range []struct{ tok, field, text string }{
		{rep, "comments", "First: it beeps"},
		{agent, "work_notes", "Checked the BIOS"},
		{rep, "comments", "Second: now it smokes"},
	} {
		clk.Advance(time.Minute)
		if status, _, raw := e.do(t, http.MethodPatch, c.tok, path, map[string]any{c.field: c.text}); status != 200 {
			t.Fatalf("PATCH %s: %d %s", c.field, status, raw)
		}
	}
	got := getRecord(t, e, rep, path+"?sysparm_display_value=true&sysparm_fields=comments,number")
	want := "2026-11-02 09:33:00 - Rita Rep (Additional comments)\nSecond: now it smokes\n\n" +
		"2026-11-02 09:31:00 - Rita Rep (Additional comments)\nFirst: it beeps\n\n"
	if got["comments"] != want {
		t.Errorf("comments display value = %q, want %q", got["comments"], want)
	}
	got = getRecord(t, e, agent, path+"?sysparm_display_value=all&sysparm_fields=work_notes")
	wn, _ := got["work_notes"].(map[string]any)
	if wn["value"] != "" || wn["display_value"] != "2026-11-02 09:32:00 - Ivy Agent (Work notes)\nChecked the BIOS\n\n" {
		t.Errorf("work_notes = %v", got["work_notes"])
	}
	if got := getRecord(t, e, rep, path+"?sysparm_fields=comments"); got["comments"] != "" {
		t.Errorf("comments value (display_value=false) = %q, want empty: the text lives in sys_journal_field", got["comments"])
	}
	if j := e.sb.Journal(IncLaptop); len(j) != 3 || j[0].Value != "First: it beeps" || j[2].Value != "Second: now it smokes" || j[2].CreatedBy != "rep" {
		t.Errorf("journal = %+v", j)
	}
	// An empty comment adds no entry.
	e.do(t, http.MethodPatch, rep, path, map[string]any{"comments": "  "})
	if n := len(e.sb.Journal(IncLaptop)); n != 3 {
		t.Errorf("journal has %d entries after an empty comment", n)
	}
}

// A caller without itil may update her own incident, but the fields only
// fulfillers may write keep their values, silently: 200 with the record.
// Fields she may not read come back empty.
func TestFieldLevelACLs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	rep, _ := e.sb.IssueToken("rep")
	agent, _ := e.sb.IssueToken("it.agent")
	path := "/api/now/table/incident/" + IncLaptop
	status, _, raw := e.do(t, http.MethodPatch, rep, path+"?sysparm_exclude_reference_link=true", map[string]any{
		"assignment_group": GroupSalesOps, "assigned_to": UserManager, "urgency": "1", "work_notes": "I fixed it myself", "close_notes": "Done",
	})
	var body struct {
		Result map[string]any `json:"result"`
	}
	_ = json.Unmarshal(raw, &body)
	r := body.Result
	if status != 200 || r["assignment_group"] != GroupServiceDesk || r["assigned_to"] != UserITAgent || r["urgency"] != "1" || r["close_notes"] != "" {
		t.Errorf("caller's PATCH: %d %s", status, raw)
	}
	if got := e.sb.Incident(IncLaptop); got["assignment_group"] != GroupServiceDesk || got["assigned_to"] != UserITAgent || got["urgency"] != "1" {
		t.Errorf("stored after caller's PATCH: %v", got)
	}
	if j := e.sb.Journal(IncLaptop); len(j) != 0 {
		t.Errorf("a caller wrote a work note: %+v", j)
	}
	// The fulfiller writes them; the caller cannot read work notes.
	if status, _, raw := e.do(t, http.MethodPatch, agent, path, map[string]any{"assignment_group": GroupSalesOps, "work_notes": "Internal: reimage"}); status != 200 {
		t.Fatalf("agent PATCH: %d %s", status, raw)
	}
	if got := e.sb.Incident(IncLaptop); got["assignment_group"] != GroupSalesOps {
		t.Errorf("agent's assignment_group not stored: %v", got)
	}
	q := "?sysparm_display_value=true&sysparm_fields=number,work_notes"
	if got := getRecord(t, e, rep, path+q); got["work_notes"] != "" || got["number"] != "INC0010001" {
		t.Errorf("caller reads work_notes: %v", got)
	}
	if got := getRecord(t, e, agent, path+q); !strings.Contains(got["work_notes"].(string), "Internal: reimage") {
		t.Errorf("agent cannot read work_notes: %v", got)
	}
	// Creating: the write ACLs apply too.
	status, _, raw = e.do(t, http.MethodPost, rep, "/api/now/table/incident?sysparm_exclude_reference_link=true", map[string]any{"short_description": "Mouse", "assignment_group": GroupSalesOps})
	body.Result = nil
	_ = json.Unmarshal(raw, &body)
	if status != 201 || body.Result["assignment_group"] != "" {
		t.Errorf("caller's create: %d %s", status, raw)
	}
}

// Rate limiting answers with the documented headers and body.
func TestRateLimitHeaders(t *testing.T) {
	t.Parallel()
	clk := resttest.NewClock(time.Date(2026, 11, 2, 9, 59, 0, 0, time.UTC))
	e := newEnv(t, &Options{Clock: clk.Now, RateLimitPerHour: 2})
	rep, _ := e.sb.IssueToken("rep")
	reset := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC).Unix()
	for i := 0; i < 2; i++ {
		status, h, _ := e.do(t, http.MethodGet, rep, "/api/now/table/incident?"+url.Values{"sysparm_limit": {"1"}}.Encode(), nil)
		if status != 200 || h.Get("X-RateLimit-Limit") != "2" || h.Get("X-RateLimit-Reset") != itoa64(reset) || h.Get("X-RateLimit-Rule") != RuleAllUsers {
			t.Errorf("request %d: %d %v", i, status, h)
		}
		if _, ok := h["X-Ratelimit-Remaining"]; ok {
			t.Errorf("request %d: X-RateLimit-Remaining is not a header ServiceNow documents", i)
		}
	}
	status, h, raw := e.do(t, http.MethodGet, rep, "/api/now/table/incident", nil)
	if status != 429 || h.Get("Retry-After") != "60" || h.Get("X-RateLimit-Rule") != RuleAllUsers || h.Get("X-RateLimit-Limit") != "2" ||
		string(raw) != errBody("Too Many Requests", "Rate limit of 2 requests per hour exceeded for user rep") {
		t.Errorf("over the limit: %d %v %s", status, h, raw)
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

// The rule for a single user overrides role rules, which override the rule
// for all users; among role rules the lowest allowance applies.
func TestRateLimitRulePriority(t *testing.T) {
	t.Parallel()
	const (
		itilRule  = "7a1e0c53c3112210a6f1b2e4c8d9e002"
		adminRule = "7a1e0c53c3112210a6f1b2e4c8d9e003"
		userRule  = "7a1e0c53c3112210a6f1b2e4c8d9e004"
	)
	seed := DefaultSeed()
	seed.Users[0].Roles = []string{"itil", "admin"} // it.agent
	e := newEnv(t, &Options{Seed: seed, RateLimitPerHour: 5, RateLimitRules: []RateLimitRule{
		{SysID: itilRule, Role: "itil", PerHour: 2},
		{SysID: adminRule, Role: "admin", PerHour: 3},
		{SysID: userRule, UserName: "manager", PerHour: 1},
	}})
	for _, tc := range []struct {
		user, rule string
		allowed    int
	}{{"it.agent", itilRule, 2}, {"manager", userRule, 1}, {"rep", RuleAllUsers, 5}} {
		tok, _ := e.sb.IssueToken(tc.user)
		for i := 0; i <= tc.allowed; i++ {
			status, h, _ := e.do(t, http.MethodGet, tok, "/api/now/table/sys_user?sysparm_limit=1", nil)
			want := 200
			if i == tc.allowed {
				want = 429
			}
			if status != want || h.Get("X-RateLimit-Rule") != tc.rule {
				t.Errorf("%s request %d: %d rule %q, want %d rule %q", tc.user, i, status, h.Get("X-RateLimit-Rule"), want, tc.rule)
			}
		}
	}
}
