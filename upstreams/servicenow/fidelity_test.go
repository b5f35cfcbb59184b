package servicenow

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	sb "github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

// A second comment does not erase the first: both are in the journal and
// get_incident shows them, newest first.
func TestUpdateIncidentCommentsAppend(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, c := range []string{"First: the screen flickers", "Second: now it is black"} {
		res := mustTool(t, a, rita, ToolUpdateIncident, map[string]any{"number": "INC0010001", "comments": c})
		if !strings.Contains(text(res), "Updated incident INC0010001") || strings.Contains(text(res), "not changed") {
			t.Errorf("update: %s", text(res))
		}
	}
	j := e.sb.Journal(sb.IncLaptop)
	if len(j) != 2 || j[0].Value != "First: the screen flickers" || j[1].Value != "Second: now it is black" {
		t.Fatalf("journal = %+v", j)
	}
	var rec map[string]any
	structured(t, mustTool(t, a, rita, ToolGetIncident, map[string]any{"number": "INC0010001"}), &rec)
	c, _ := rec["comments"].(string)
	first, second := strings.Index(c, "First: the screen flickers"), strings.Index(c, "Second: now it is black")
	if first < 0 || second < 0 || second > first || !strings.Contains(c, "Rita Rep (Additional comments)") {
		t.Errorf("get_incident comments = %q", c)
	}
}

// A caller may update her own incident but not its assignment: ServiceNow
// answers 200 and keeps the field; the tool says which fields did not
// change, and is an error when none did.
func TestUpdateIncidentReportsFieldsNotApplied(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, rita, ToolUpdateIncident, map[string]any{"number": "INC0010001", "urgency": "1", "assignment_group": "Sales Ops", "work_notes": "I want Sales Ops"})
	var rec map[string]any
	structured(t, res, &rec)
	na, _ := rec["not_applied"].([]any)
	if !slices.Equal(na, []any{"assignment_group", "work_notes"}) {
		t.Errorf("not_applied = %v", rec["not_applied"])
	}
	for _, w := range []string{"except: assignment_group (still \"Service Desk\")", "work_notes (no new journal entry)", "field-level ACLs"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("text %q lacks %q", text(res), w)
		}
	}
	if got := e.sb.Incident(sb.IncLaptop); got["urgency"] != "1" || got["assignment_group"] != sb.GroupServiceDesk {
		t.Errorf("stored = %v", got)
	}

	res, _, err := callTool(t, a, rita, ToolUpdateIncident, map[string]any{"number": "INC0010001", "assignment_group": "Sales Ops"})
	if err != nil || !res.IsError || !strings.Contains(text(res), "INC0010001") || !strings.Contains(text(res), "was not changed: assignment_group") {
		t.Errorf("nothing applied: err=%v %s", err, text(res))
	}

	// The fulfiller's change goes through and is not flagged.
	res = mustTool(t, a, ivy, ToolUpdateIncident, map[string]any{"number": "INC0010001", "assignment_group": "Sales Ops", "work_notes": "Moving to Sales Ops"})
	rec = nil
	structured(t, res, &rec)
	if _, ok := rec["not_applied"]; ok || strings.Contains(text(res), "except") || rec["assignment_group"] != "Sales Ops" {
		t.Errorf("fulfiller update: %s", text(res))
	}
}

// ServiceNow's 429 reaches a resources/read caller as a rate-limited
// JSON-RPC error with the wait in its data and message.
func TestRateLimitedResourceRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{rateLimit: 1})
	a := e.adapter(t, e.config(e.jwtBearer()))
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	ctx, _ := ctxAs(t, rita)
	uri := "servicenow://table/incident/" + sb.IncLaptop
	if _, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	_, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri})
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) || rpc.Code != upstreams.CodeRateLimited || !strings.Contains(rpc.Message, "retry after ") {
		t.Fatalf("err = %v", err)
	}
	var data struct {
		RetryAfterSeconds int `json:"retryAfterSeconds"`
	}
	if json.Unmarshal(rpc.Data, &data) != nil || data.RetryAfterSeconds < 1 || data.RetryAfterSeconds > 3600 {
		t.Errorf("data = %s", rpc.Data)
	}
}

// Without Retry-After, the wait comes from X-RateLimit-Reset.
func TestRetryAfterFromRateLimitReset(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		h    http.Header
		want time.Duration
	}{
		{http.Header{"Retry-After": {"30"}, "X-Ratelimit-Reset": {"1800000600"}}, 30 * time.Second},
		{http.Header{"X-Ratelimit-Reset": {"1800000600"}}, 10 * time.Minute},
		{http.Header{"X-Ratelimit-Reset": {"1799999999"}}, 0},
		{http.Header{"X-Ratelimit-Reset": {"soon"}}, 0},
		{http.Header{}, 0},
	} {
		if got := retryAfter(tc.h, now); got != tc.want {
			t.Errorf("%v: %v, want %v", tc.h, got, tc.want)
		}
	}
}
