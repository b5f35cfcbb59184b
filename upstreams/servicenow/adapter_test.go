package servicenow

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	sb "github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

var (
	allIncidents  = []string{sb.IncLaptop, sb.IncVPN, sb.IncCRMReport, sb.IncDashboard, sb.IncPrinter, sb.IncEmail}
	repIncidents  = []string{sb.IncLaptop, sb.IncVPN}
	mgrIncidents  = []string{sb.IncCRMReport, sb.IncDashboard, sb.IncEmail}
	agentActive   = []string{sb.IncLaptop, sb.IncVPN, sb.IncCRMReport, sb.IncDashboard, sb.IncPrinter}
	agentAsCaller = []string{sb.IncDashboard, sb.IncPrinter}
	// anyIncident asks my_incidents for every incident the user may read.
	anyIncident = map[string]any{"relation": "any", "active_only": false}
)

// ServiceNow's ACLs decide: exact record sets per user over jwt_bearer.
func TestMyIncidentsRecordSets(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		name string
		id   *identity.Identity
		args map[string]any
		want []string
	}{
		{"it agent (itil) sees all", ivy, anyIncident, allIncidents},
		{"rep sees only hers", rita, anyIncident, repIncidents},
		{"manager sees raised, assigned and group's", morgan, anyIncident, mgrIncidents},
		{"outsider sees none", oscar, anyIncident, []string{}},
		{"agent as caller", ivy, map[string]any{"relation": "caller", "active_only": false}, agentAsCaller},
		{"agent active only", ivy, map[string]any{"relation": "any"}, agentActive},
		{"rep assigned to nothing", rita, map[string]any{"relation": "assigned_to"}, []string{}},
		{"manager assigned", morgan, map[string]any{"relation": "assigned_to"}, []string{sb.IncDashboard}},
		{"agent opened", ivy, map[string]any{"relation": "opened_by", "active_only": false, "limit": 2}, []string{sb.IncPrinter, sb.IncEmail}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, info, err := callTool(t, a, tc.id, ToolMyIncidents, tc.args)
			if err != nil || res.IsError {
				t.Fatalf("my_incidents: %v %s", err, text(res))
			}
			// Newest first (the seed's update times follow the numbers).
			want := slices.Clone(tc.want)
			slices.Reverse(want)
			if diff := cmp.Diff(want, sysIDs(t, res)); diff != "" {
				t.Errorf("incidents (-want +got):\n%s", diff)
			}
			if snap := info.Snapshot(); snap.Flow != credentials.FlowJWTBearer || snap.PlatformSubject != tc.id.Email || snap.ServiceAccount {
				t.Errorf("callinfo = %+v", snap)
			}
		})
	}
	// Display values make the text readable for an AI client.
	res := mustTool(t, a, rita, ToolMyIncidents, anyIncident)
	for _, w := range []string{"INC0010001 Laptop won't boot after update", "state: In Progress", "caller: Rita Rep", "assigned_to: Ivy Agent"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("text lacks %q:\n%s", w, text(res))
		}
	}
	var out ListOutput
	structured(t, mustTool(t, a, ivy, ToolMyIncidents, map[string]any{"relation": "opened_by", "active_only": false, "limit": 2}), &out)
	if out.Total != 4 || out.Returned != 2 || !out.Truncated {
		t.Errorf("limited list = total %d returned %d truncated %v, want 4/2/true", out.Total, out.Returned, out.Truncated)
	}
}

func TestGetIncident(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	var rec map[string]any
	structured(t, mustTool(t, a, rita, ToolGetIncident, map[string]any{"number": "INC0010001"}), &rec)
	if rec["sys_id"] != sb.IncLaptop || rec["caller_id"] != "Rita Rep" || rec["state"] != "In Progress" {
		t.Errorf("by number = %v", rec)
	}
	structured(t, mustTool(t, a, rita, ToolGetIncident, map[string]any{"sys_id": sb.IncVPN, "display_values": false}), &rec)
	if rec["number"] != "INC0010002" || rec["caller_id"] != sb.UserRep || rec["state"] != "1" {
		t.Errorf("by sys_id, raw = %v", rec)
	}
	// Hidden by ACLs: a tool error that names the platform user.
	for _, args := range []map[string]any{{"number": "INC0010003"}, {"sys_id": sb.IncCRMReport}} {
		res, _, err := callTool(t, a, rita, ToolGetIncident, args)
		if err != nil || !res.IsError {
			t.Fatalf("%v: err=%v res=%s", args, err, text(res))
		}
		for _, w := range []string{`ServiceNow user "rep@acme.example"`, "ACLs hide it"} {
			if !strings.Contains(text(res), w) {
				t.Errorf("%v: message %q lacks %q", args, text(res), w)
			}
		}
	}
	for _, args := range []map[string]any{{}, {"number": "INC0010001", "sys_id": sb.IncLaptop}, {"number": "INC1^ORnumber!=x"}, {"sys_id": "../sys_user"}} {
		before := e.RestHits.Load()
		res, _, err := callTool(t, a, rita, ToolGetIncident, args)
		if err != nil || !res.IsError || e.RestHits.Load() != before {
			t.Errorf("%v: want a local tool error, got err=%v %s", args, err, text(res))
		}
	}
}

func TestCreateAndUpdateIncident(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res := mustTool(t, a, rita, ToolCreateIncident, map[string]any{
		"short_description": "Monitor flickers", "description": "Since Monday.", "urgency": "2", "impact": "2",
		"caller": "manager@acme.example", // not a fulfiller: ServiceNow keeps her as the caller
	})
	var rec map[string]any
	structured(t, res, &rec)
	id, _ := rec["sys_id"].(string)
	stored := e.sb.Incident(id)
	if stored == nil || stored["caller_id"] != sb.UserRep || stored["opened_by"] != sb.UserRep || stored["urgency"] != "2" || stored["short_description"] != "Monitor flickers" {
		t.Fatalf("stored incident = %v", stored)
	}
	if !strings.Contains(text(res), "Created incident INC") {
		t.Errorf("text = %s", text(res))
	}
	// The caller updates her own incident.
	mustTool(t, a, rita, ToolUpdateIncident, map[string]any{"sys_id": id, "comments": "Still flickering", "state": "2"})
	if got, j := e.sb.Incident(id), e.sb.Journal(id); got["state"] != "2" || len(j) != 1 || j[0].Value != "Still flickering" {
		t.Errorf("after update = %v, journal %+v", got, j)
	}
	// The manager can read IncDashboard (assigned to him) but may not update it.
	res, _, err := callTool(t, a, morgan, ToolUpdateIncident, map[string]any{"number": "INC0010004", "state": "6"})
	if err != nil || !res.IsError {
		t.Fatalf("manager update: err=%v %s", err, text(res))
	}
	for _, w := range []string{`refused this request for ServiceNow user "manager@acme.example"`, "ACL restricts the record update", "not a Mandate fault"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	if e.sb.Incident(sb.IncDashboard)["state"] != "2" {
		t.Error("a refused update changed the record")
	}
	// The outsider cannot even see it.
	res, _, _ = callTool(t, a, oscar, ToolUpdateIncident, map[string]any{"sys_id": sb.IncLaptop, "state": "7"})
	if !res.IsError || !strings.Contains(text(res), "ACLs hide it") {
		t.Errorf("outsider update: %s", text(res))
	}
	// The fulfiller may update any incident.
	mustTool(t, a, ivy, ToolUpdateIncident, map[string]any{"number": "INC0010003", "assigned_to": "it.agent", "work_notes": "Looking"})
	if got := e.sb.Incident(sb.IncCRMReport); got["assigned_to"] != sb.UserITAgent {
		t.Errorf("assigned_to = %q", got["assigned_to"])
	}
	for _, args := range []map[string]any{
		{"sys_id": id},
		{"sys_id": id, "state": "9"},
		{"sys_id": id, "urgency": "high"},
		{"sys_id": id, "short_description": " "},
		{"sys_id": id, "comments": "bad\x00byte"},
	} {
		res, _, err := callTool(t, a, rita, ToolUpdateIncident, args)
		if err != nil || !res.IsError {
			t.Errorf("%v: want a tool error, got err=%v", args, err)
		}
	}
	res, _, _ = callTool(t, a, rita, ToolCreateIncident, map[string]any{"short_description": ""})
	if !res.IsError {
		t.Error("empty short_description accepted")
	}
}

func TestAnnotations(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	res, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][2]bool{}
	for _, tl := range res.Tools {
		got[tl.Name] = [2]bool{tl.Annotations.ReadOnlyHint, tl.Annotations.DestructiveHint != nil && *tl.Annotations.DestructiveHint}
	}
	want := map[string][2]bool{
		ToolMyIncidents: {true, false}, ToolGetIncident: {true, false}, ToolQueryTable: {true, false},
		ToolCreateIncident: {false, false}, ToolUpdateIncident: {false, true},
		ToolMyGroupsQueue: {true, false}, ToolSearchKnowledge: {true, false}, ToolMyApprovals: {true, false},
		ToolMyRequestedItems: {true, false}, ToolApprove: {false, true}, ToolReject: {false, true},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("[readOnly, destructive] (-want +got):\n%s", diff)
	}
}

func TestQueryTable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cfg := e.config(e.jwtBearer())
	cfg.ServiceNow.MaxRecords = 3
	a := e.adapter(t, cfg)

	res := mustTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true^ORDERBYnumber", "fields": []string{"sys_id", "number", "caller_id.email"}})
	var out ListOutput
	structured(t, res, &out)
	if out.Returned != 3 || out.Total != 5 || !out.Truncated {
		t.Errorf("capped query = returned %d total %d truncated %v, want 3/5/true", out.Returned, out.Total, out.Truncated)
	}
	if out.Records[0]["caller_id.email"] != "rep@acme.example" || len(out.Records[0]) != 3 {
		t.Errorf("first record = %v", out.Records[0])
	}
	res = mustTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": "active=true^ORDERBYnumber", "fields": []string{"sys_id"}, "offset": 3})
	if diff := cmp.Diff([]string{sb.IncDashboard, sb.IncPrinter}, sysIDs(t, res)); diff != "" {
		t.Errorf("second page (-want +got):\n%s", diff)
	}
	// The rep's view of the same table is hers only.
	res = mustTool(t, a, rita, ToolQueryTable, map[string]any{"table": "incident", "query": "ORDERBYnumber", "fields": []string{"sys_id"}})
	if diff := cmp.Diff(repIncidents, sysIDs(t, res)); diff != "" {
		t.Errorf("rep (-want +got):\n%s", diff)
	}
	res, _, _ = callTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "limit": 4})
	if !res.IsError || !strings.Contains(text(res), "limit must be between 1 and 3") {
		t.Errorf("limit over max_records: %s", text(res))
	}
	// ServiceNow's own message for an invalid table.
	for _, tc := range []struct {
		args map[string]any
		want string
	}{
		{map[string]any{"table": "cmdb_ci"}, "Invalid table cmdb_ci"},
	} {
		res, _, err := callTool(t, a, ivy, ToolQueryTable, tc.args)
		if err != nil || !res.IsError || !strings.Contains(text(res), "ServiceNow rejected the request (HTTP 400: "+tc.want) {
			t.Errorf("%v: err=%v %s", tc.args, err, text(res))
		}
	}
	before := e.RestHits.Load()
	for _, args := range []map[string]any{
		{"table": "Incident; drop"}, {"table": "incident", "query": "a=1\nb=2"},
		{"table": "incident", "fields": []string{"a,b"}}, {"table": "incident", "offset": -1},
	} {
		res, _, err := callTool(t, a, ivy, ToolQueryTable, args)
		if err != nil || !res.IsError {
			t.Errorf("%v: want a tool error, got err=%v", args, err)
		}
	}
	if e.RestHits.Load() != before {
		t.Error("locally refused arguments reached ServiceNow")
	}
}

// RFC 8693 through the real zitadel IdP: the exchanged token (aud = the
// instance's OIDC client id) is what ServiceNow sees; the IdP's user id is
// the platform subject.
func TestTokenExchangeWithRealIdP(t *testing.T) {
	t.Parallel()
	tx := newExchangeEnv(t)
	for _, tc := range []struct {
		user string
		want []string
	}{
		{"rita", repIncidents},
		{"ivy", allIncidents},
		{"morgan", mgrIncidents},
	} {
		id := tx.identity(t, tc.user)
		res, info, err := callTool(t, tx.adapter, id, ToolMyIncidents, anyIncident)
		if err != nil || res.IsError {
			t.Fatalf("%s: %v %s", tc.user, err, text(res))
		}
		got := sysIDs(t, res)
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.user, diff)
		}
		if snap := info.Snapshot(); snap.Flow != credentials.FlowTokenExchange || snap.PlatformSubject != id.Subject || snap.ServiceAccount {
			t.Errorf("%s: callinfo = %+v", tc.user, snap)
		}
	}
	if n := len(tx.idp.Exchanges()); n != 3 {
		t.Errorf("token exchanges = %d, want 3", n)
	}
	// A cached token is reused.
	mustTool(t, tx.adapter, tx.identity(t, "rita"), ToolMyIncidents, nil)
	if n := len(tx.idp.Exchanges()); n != 3 {
		t.Errorf("token exchanges after a repeat call = %d, want 3", n)
	}
	// The IdP knows stranger, ServiceNow does not: 401, one re-exchange,
	// then a tool error that says so.
	res, _, err := callTool(t, tx.adapter, tx.identity(t, "stranger"), ToolMyIncidents, nil)
	if err != nil || !res.IsError {
		t.Fatalf("stranger: err=%v %s", err, text(res))
	}
	for _, w := range []string{"did not accept the credentials", "also after obtaining fresh ones", "User Not Authenticated", "token subject \"idp-0009\""} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	if n := len(tx.idp.Exchanges()); n != 5 {
		t.Errorf("token exchanges after stranger = %d, want 5 (one re-exchange)", n)
	}
}

// A service-account token (client_credentials) runs as svc.integration,
// which ServiceNow's ACLs show no incidents; the audit facts say it ran as
// a service account, and refusals say whose access was checked.
func TestServiceAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.clientCredentials()))
	res, info, err := callTool(t, a, rita, ToolMyIncidents, nil)
	if err != nil || res.IsError {
		t.Fatalf("%v %s", err, text(res))
	}
	if got := sysIDs(t, res); len(got) != 0 {
		t.Errorf("service account saw %v", got)
	}
	if snap := info.Snapshot(); !snap.ServiceAccount || snap.Flow != credentials.FlowClientCredentials {
		t.Errorf("callinfo = %+v", snap)
	}
	res, _, _ = callTool(t, a, rita, ToolGetIncident, map[string]any{"sys_id": sb.IncLaptop})
	for _, w := range []string{`the service account "mandate"`, "ACLs hide it", "client_credentials", "not yours"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
}

// An assertion for a user ServiceNow does not know: the token endpoint's
// refusal is a tool error with the broker's actionable message.
func TestUnknownUser(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res, _, err := callTool(t, a, ghost, ToolMyIncidents, nil)
	if err != nil || !res.IsError {
		t.Fatalf("err=%v %s", err, text(res))
	}
	for _, w := range []string{`credentials for upstream "servicenow" (user "user-ghost")`, "access_denied", "HTTP 401"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	if e.RestHits.Load() != 0 {
		t.Errorf("REST hits = %d, want 0", e.RestHits.Load())
	}
}

func TestRevokedSessionReexchangesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	mustTool(t, a, rita, ToolMyIncidents, nil)
	mustTool(t, a, rita, ToolMyIncidents, nil)
	if got := e.TokenHits.Load(); got != 1 {
		t.Fatalf("token hits = %d, want 1", got)
	}
	e.sb.RevokeAll()
	res := mustTool(t, a, rita, ToolCreateIncident, map[string]any{"short_description": "After revocation"})
	if got := e.TokenHits.Load(); got != 2 {
		t.Errorf("token hits = %d, want 2", got)
	}
	if got := e.Rest401.Load(); got != 1 {
		t.Errorf("401s = %d, want 1", got)
	}
	// The retried POST created exactly one incident.
	var n int
	var out ListOutput
	structured(t, mustTool(t, a, rita, ToolQueryTable, map[string]any{"table": "incident", "query": "short_description=After revocation", "fields": []string{"sys_id"}}), &out)
	n = out.Returned
	if n != 1 || !strings.Contains(text(res), "Created incident") {
		t.Errorf("incidents created by the retried POST = %d", n)
	}
}

func TestRateLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{rateLimit: 1})
	a := e.adapter(t, e.config(e.jwtBearer()))
	mustTool(t, a, rita, ToolMyIncidents, nil)
	res, _, err := callTool(t, a, rita, ToolMyIncidents, nil)
	if err != nil || !res.IsError {
		t.Fatalf("err=%v %s", err, text(res))
	}
	for _, w := range []string{"rate limit", "Too Many Requests", "retry after ", " seconds", "not a Mandate fault"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
}

func TestResourceTemplate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	ctx, _ := ctxAs(t, rita)
	lt, err := s.ListResourceTemplates(ctx, nil)
	if err != nil || len(lt.ResourceTemplates) != 1 || lt.ResourceTemplates[0].URITemplate != RecordURITemplate {
		t.Fatalf("templates = %v %v", lt, err)
	}
	rr, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "servicenow://table/incident/" + sb.IncLaptop})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"display_value": "INC0010001"`, `"display_value": "Rita Rep"`, sb.UserRep} {
		if !strings.Contains(rr.Contents[0].Text, w) {
			t.Errorf("resource lacks %q", w)
		}
	}
	_, err = s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "servicenow://table/incident/" + sb.IncCRMReport})
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) || rpc.Code != mcp.CodeResourceNotFound || !strings.Contains(rpc.Message, "rep@acme.example") {
		t.Errorf("hidden record: %v", err)
	}
	for _, uri := range []string{"servicenow://table/incident", "servicenow://table/Incident/" + sb.IncLaptop, "other://x"} {
		if _, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); !errors.As(err, &rpc) {
			t.Errorf("%s: %v", uri, err)
		}
	}
	cr, _ := s.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: RecordURITemplate}, Argument: mcp.CompleteParamsArgument{Name: "table", Value: "inc"}})
	if !slices.Equal(cr.Completion.Values, []string{"incident"}) {
		t.Errorf("completion = %v", cr.Completion.Values)
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		tool string
		args any
	}{
		{"delete_incident", nil},
		{ToolMyIncidents, map[string]any{"limit": "ten"}},
		{ToolMyIncidents, map[string]any{"owner": "me"}},
		{ToolUpdateIncident, []string{"x"}},
	} {
		_, _, err := callTool(t, a, rita, tc.tool, tc.args)
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("%s %v: want -32602, got %v", tc.tool, tc.args, err)
		}
	}
	if e.RestHits.Load() != 0 {
		t.Errorf("protocol errors reached ServiceNow %d times", e.RestHits.Load())
	}
}

func TestNoTokensInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	var texts []string
	for _, c := range []struct {
		tool string
		args any
	}{
		{ToolMyIncidents, nil},
		{ToolGetIncident, map[string]any{"sys_id": sb.IncCRMReport}},
		{ToolQueryTable, map[string]any{"table": "incident", "query": "bogus=1"}},
	} {
		res, _, err := callTool(t, a, rita, c.tool, c.args)
		if err != nil {
			texts = append(texts, err.Error())
		}
		texts = append(texts, text(res))
	}
	e.sb.RevokeAll()
	res, _, _ := callTool(t, a, rita, ToolMyIncidents, nil)
	texts = append(texts, text(res), e.logs.String())
	if !strings.Contains(e.logs.String(), "servicenow call") {
		t.Error("no debug log was written")
	}
	bearers := e.seenBearers()
	if len(bearers) < 4 {
		t.Fatalf("saw %d bearer tokens", len(bearers))
	}
	for _, b := range bearers {
		for _, s := range texts {
			if b != "" && strings.Contains(s, b) {
				t.Errorf("a token leaked into %q", s)
			}
		}
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	src, err := credentials.NewBroker(credentials.BrokerOptions{}).Source("sn", credentials.Config{Flow: credentials.FlowNone})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  upstreams.Config
		deps Deps
		want string
	}{
		{upstreams.Config{Name: "sn", URL: "https://x.service-now.com"}, Deps{}, "Deps.Credentials is required"},
		{upstreams.Config{Name: "sn", URL: "https://x.service-now.com/api"}, Deps{Credentials: src}, "upstreams[sn].url"},
		{upstreams.Config{Name: "sn", URL: "https://x", ServiceNow: upstreams.ServiceNowOptions{MaxRecords: 20000}}, Deps{Credentials: src}, "max_records"},
	} {
		if _, err := New(tc.cfg, tc.deps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
	a, err := New(upstreams.Config{Name: "sn", URL: "https://x.service-now.com"}, Deps{Credentials: src})
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := callTool(t, a, rita, ToolMyIncidents, nil)
	if err != nil || !res.IsError || !strings.Contains(text(res), "flow none") {
		t.Errorf("flow none: %v %s", err, text(res))
	}
}
