package salesforce

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/callinfo"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	sb "github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
)

var (
	wantRep = []string{sb.OppAcmeRenewal, sb.OppAcmeExpansion}
	// Every open opportunity, by close date: what Public Read Only shows
	// anyone, and what the role hierarchy shows the VP.
	wantAllOpen = []string{sb.OppInitechPlatform, sb.OppAcmeRenewal, sb.OppGlobexNewLogo, sb.OppAcmeExpansion, sb.OppUmbrellaEnt}
	// The VP's reports' open opportunities (scope team).
	wantVPTeam = []string{sb.OppInitechPlatform, sb.OppAcmeRenewal, sb.OppGlobexNewLogo, sb.OppAcmeExpansion}
)

// openOppsSOQL is every open opportunity the user can see.
const openOppsSOQL = "SELECT Id, Name, Amount, StageName, CloseDate FROM Opportunity WHERE IsClosed = false ORDER BY CloseDate"

// my_pipeline lists what the user owns, not what sharing lets them see:
// in a new org's sharing (Opportunity Public Read Only) every user sees
// every opportunity through soql_query, yet each pipeline holds only the
// user's own; with Private sharing the answer is the same. Exact record
// sets, ordered by close date, through the real broker's jwt_bearer flow.
func TestMyPipelineRecordSets(t *testing.T) {
	t.Parallel()
	for _, org := range []struct {
		name    string
		sharing map[string]sb.SharingModel
	}{{"public read only", nil}, {"private", sb.PrivateSharing()}} {
		t.Run(org.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{sharing: org.sharing})
			a := e.adapter(t, e.config(e.jwtBearer()))
			for _, tc := range []struct {
				name string
				id   *identity.Identity
				want []string
			}{
				{"rep gets only her open opportunities", rita, wantRep},
				{"second rep gets only his", sam, []string{sb.OppGlobexNewLogo}},
				{"manager gets only his own, not his reports'", morgan, []string{sb.OppInitechPlatform}},
				{"vp gets only her own", val, []string{sb.OppUmbrellaEnt}},
				{"outsider owns none", oscar, []string{}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					res, info, err := callTool(t, a, tc.id, ToolMyPipeline, nil)
					if err != nil || res.IsError {
						t.Fatalf("my_pipeline: %v %s", err, text(res))
					}
					if diff := cmp.Diff(tc.want, pipelineIDs(t, res)); diff != "" {
						t.Errorf("opportunities (-want +got):\n%s", diff)
					}
					snap := info.Snapshot()
					if snap.Flow != credentials.FlowJWTBearer || snap.PlatformSubject != tc.id.Email || snap.ServiceAccount {
						t.Errorf("callinfo = %+v, want flow jwt_bearer as %s, not a service account", snap, tc.id.Email)
					}
					if len(tc.want) == 0 && !strings.Contains(text(res), "No open opportunities you own") {
						t.Errorf("empty pipeline text: %q", text(res))
					}
				})
			}
		})
	}

	// Under Public Read Only, rita can read everyone's open opportunities:
	// "visible" and "mine" differ, and my_pipeline is "mine".
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res := mustTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": openOppsSOQL})
	var visible QueryOutput
	structured(t, res, &visible)
	var ids []string
	for _, r := range visible.Records {
		ids = append(ids, r["Id"].(string))
	}
	if diff := cmp.Diff(wantAllOpen, ids); diff != "" {
		t.Errorf("open opportunities rita can see (-want +got):\n%s", diff)
	}
}

// scope "team" lists the open opportunities of the user's reports in the
// role hierarchy (USING SCOPE team), without the user's own.
func TestMyPipelineTeamScope(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		name string
		id   *identity.Identity
		want []string
	}{
		{"manager: both reps'", morgan, []string{sb.OppAcmeRenewal, sb.OppGlobexNewLogo, sb.OppAcmeExpansion}},
		{"vp: everyone below her", val, wantVPTeam},
		{"rep without reports: none", rita, []string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := mustTool(t, a, tc.id, ToolMyPipeline, map[string]any{"scope": "team"})
			if diff := cmp.Diff(tc.want, pipelineIDs(t, res)); diff != "" {
				t.Errorf("team opportunities (-want +got):\n%s", diff)
			}
			var out PipelineOutput
			structured(t, res, &out)
			if out.Scope != PipelineScopeTeam {
				t.Errorf("scope = %q, want team", out.Scope)
			}
			if len(tc.want) == 0 && !strings.Contains(text(res), "No open opportunities owned by your reports") {
				t.Errorf("empty team pipeline text: %q", text(res))
			}
			if len(tc.want) > 0 && !strings.Contains(text(res), "owned by your reports") {
				t.Errorf("team pipeline text does not say whose: %q", text(res))
			}
		})
	}
	res := mustTool(t, a, rita, ToolMyPipeline, map[string]any{"scope": "mine"})
	if diff := cmp.Diff(wantRep, pipelineIDs(t, res)); diff != "" {
		t.Errorf("explicit scope mine (-want +got):\n%s", diff)
	}

	// The tool says what "mine" means and offers team in its schema.
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	lt, err := s.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var def *mcp.Tool
	for _, tool := range lt.Tools {
		if tool.Name == ToolMyPipeline {
			def = tool
		}
	}
	if def == nil || !strings.Contains(def.Description, "the ones they own") || !strings.Contains(def.Description, "not every opportunity they can see") {
		t.Errorf("my_pipeline description does not say what mine means: %+v", def)
	}
	schema, _ := def.InputSchema.(map[string]any)
	props, _ := schema["properties"].(map[string]any)
	scope, _ := props["scope"].(map[string]any)
	if !cmp.Equal(scope["enum"], []string{"mine", "team"}) || scope["default"] != "mine" {
		t.Errorf("scope schema = %v", scope)
	}
	// An unknown scope is refused before Salesforce is called.
	before := e.RestHits.Load()
	res, _, err = callTool(t, a, rita, ToolMyPipeline, map[string]any{"scope": "everything"})
	if err != nil || !res.IsError || !strings.Contains(text(res), `scope "everything" is not one of`) {
		t.Errorf("scope everything: err=%v %s", err, text(res))
	}
	if e.RestHits.Load() != before {
		t.Error("a refused scope reached Salesforce")
	}
}

func TestPipelineAmountsAndText(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res := mustTool(t, a, rita, ToolMyPipeline, map[string]any{})
	var out PipelineOutput
	structured(t, res, &out)
	if out.Count != 2 || out.TotalAmount != 170000 || out.Truncated {
		t.Errorf("pipeline = %+v, want 2 opportunities totalling 170000, not truncated", out)
	}
	first := out.Opportunities[0]
	if first.Name != "Acme Widgets - Renewal" || first.Stage != "Negotiation/Review" || first.CloseDate != "2026-12-15" || first.Amount == nil || *first.Amount != 50000 {
		t.Errorf("first opportunity = %+v", first)
	}
	for _, want := range []string{"2 open opportunities", "170,000", "Acme Widgets - Renewal — 50,000 — Negotiation/Review — closes 2026-12-15"} {
		if !strings.Contains(text(res), want) {
			t.Errorf("text lacks %q:\n%s", want, text(res))
		}
	}
}

// Pagination follows nextRecordsUrl and stops at max_records, saying so.
func TestPaginationBoundedByMaxRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{batchSize: 2})
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, val, ToolMyPipeline, map[string]any{"scope": "team"})
	if diff := cmp.Diff(wantVPTeam, pipelineIDs(t, res)); diff != "" {
		t.Errorf("all pages (-want +got):\n%s", diff)
	}
	before := e.RestHits.Load()
	res = mustTool(t, a, val, ToolSOQLQuery, map[string]any{"query": openOppsSOQL, "max_records": 3})
	var out QueryOutput
	structured(t, res, &out)
	if out.TotalSize != 5 || out.Returned != 3 || !out.Truncated || len(out.Records) != 3 {
		t.Errorf("bounded query = total %d returned %d truncated %v (%d records), want 5/3/true", out.TotalSize, out.Returned, out.Truncated, len(out.Records))
	}
	if got := e.RestHits.Load() - before; got != 2 {
		t.Errorf("REST requests for 3 of 5 records in pages of 2 = %d, want 2", got)
	}
	if !strings.Contains(text(res), "truncated") {
		t.Errorf("text does not report truncation: %s", text(res))
	}

	// A cap in the configuration bounds every call.
	cfg := e.config(e.jwtBearer())
	cfg.Salesforce.MaxRecords = 3
	capped := e.adapter(t, cfg)
	res = mustTool(t, capped, val, ToolMyPipeline, map[string]any{"scope": "team"})
	var po PipelineOutput
	structured(t, res, &po)
	if po.Count != 3 || !po.Truncated {
		t.Errorf("capped pipeline = %d truncated %v, want 3 true", po.Count, po.Truncated)
	}
	res, _, err := callTool(t, capped, val, ToolSOQLQuery, map[string]any{"query": openOppsSOQL, "max_records": 4})
	if err != nil || !res.IsError || !strings.Contains(text(res), "between 1 and 3") {
		t.Errorf("max_records above the cap: err=%v %s", err, text(res))
	}
}

func TestSOQLQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{sharing: sb.PrivateSharing()}) // the role hierarchy decides
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": "SELECT Id, Name FROM Account ORDER BY Name"})
	var out QueryOutput
	structured(t, res, &out)
	var names []string
	for _, r := range out.Records {
		names = append(names, r["Name"].(string))
	}
	if diff := cmp.Diff([]string{"Acme Widgets"}, names); diff != "" {
		t.Errorf("rep's accounts (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"DML", "DELETE FROM Account", []string{"only SELECT"}},
		{"second statement", "SELECT Id FROM Account; DELETE FROM Account", []string{"only one statement"}},
		{"FOR UPDATE", "SELECT Id FROM Account FOR UPDATE", []string{"FOR UPDATE"}},
		{"UPDATE VIEWSTAT", "SELECT Id FROM KnowledgeArticleVersion UPDATE VIEWSTAT", []string{"UPDATE is not allowed"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := e.RestHits.Load()
			res, _, err := callTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": tc.query})
			if err != nil || !res.IsError {
				t.Fatalf("want a tool error, got err=%v res=%s", err, text(res))
			}
			for _, w := range tc.want {
				if !strings.Contains(text(res), w) {
					t.Errorf("message %q lacks %q", text(res), w)
				}
			}
			if e.RestHits.Load() != before {
				t.Error("a refused query reached Salesforce")
			}
		})
	}

	// Salesforce's own message for a malformed query reaches the user.
	res, _, err := callTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": "SELECT Nme FROM Account"})
	if err != nil || !res.IsError {
		t.Fatalf("malformed query: err=%v res=%s", err, text(res))
	}
	for _, w := range []string{"Salesforce rejected the request", "INVALID_FIELD", "No such column 'Nme'"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	res, _, _ = callTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": "SELECT Id FROM Account WHERE"})
	if !res.IsError || !strings.Contains(text(res), "MALFORMED_QUERY") {
		t.Errorf("MALFORMED_QUERY not surfaced: %s", text(res))
	}
}

func TestGetRecord(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{sharing: sb.PrivateSharing()}) // the role hierarchy decides
	a := e.adapter(t, e.config(e.jwtBearer()))

	res := mustTool(t, a, rita, ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": sb.OppAcmeRenewal, "fields": []string{"Name", "Amount"}})
	var rec map[string]any
	structured(t, res, &rec)
	if rec["Name"] != "Acme Widgets - Renewal" || rec["Amount"] != 50000.0 {
		t.Errorf("record = %v", rec)
	}
	if _, ok := rec["StageName"]; ok {
		t.Errorf("fields were not applied: %v", rec)
	}
	// The manager sees the rep's record through the role hierarchy.
	mustTool(t, a, morgan, ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": sb.OppAcmeRenewal})

	// Not shared with the user: a tool error naming the platform user.
	res, _, err := callTool(t, a, rita, ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": sb.OppGlobexNewLogo})
	if err != nil || !res.IsError {
		t.Fatalf("unshared record: err=%v res=%s", err, text(res))
	}
	for _, w := range []string{`Salesforce user "rep@acme.example"`, "NOT_FOUND", "sharing rules"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	// Bad ids never reach Salesforce.
	before := e.RestHits.Load()
	res, _, _ = callTool(t, a, rita, ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": "../../query?q=x"})
	if !res.IsError || e.RestHits.Load() != before {
		t.Errorf("a malformed id was not refused locally: %s", text(res))
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{sharing: sb.PrivateSharing()}) // the role hierarchy decides
	a := e.adapter(t, e.config(e.jwtBearer()))
	names := func(res *mcp.CallToolResult) []string {
		var out struct {
			Records []map[string]any `json:"records"`
		}
		structured(t, res, &out)
		var ns []string
		for _, r := range out.Records {
			ns = append(ns, fmt.Sprint(r["Name"]))
		}
		slices.Sort(ns)
		return ns
	}
	args := map[string]any{"term": "Acme", "objects": []map[string]any{{"type": "Opportunity", "fields": []string{"Id", "Name"}}}}
	if diff := cmp.Diff([]string{"Acme Widgets - Expansion", "Acme Widgets - Pilot", "Acme Widgets - Renewal"}, names(mustTool(t, a, rita, ToolSearch, args))); diff != "" {
		t.Errorf("rep's search (-want +got):\n%s", diff)
	}
	if got := names(mustTool(t, a, oscar, ToolSearch, args)); len(got) != 0 {
		t.Errorf("outsider found %v", got)
	}
	// Reserved characters are searched literally, never as syntax.
	for _, term := range []string{"Acme} RETURNING User(Username", `Acme\ "Widgets" -x`, "Acme (Widgets) OR *"} {
		res, _, err := callTool(t, a, rita, ToolSearch, map[string]any{"term": term, "objects": []map[string]any{{"type": "Account", "fields": []string{"Name"}}}})
		if err != nil {
			t.Fatalf("term %q: %v", term, err)
		}
		if res.IsError && !strings.Contains(text(res), "Salesforce rejected") {
			t.Errorf("term %q: %s", term, text(res))
		}
		if res.IsError {
			continue
		}
		var out struct {
			Records []struct {
				Attributes struct {
					Type string `json:"type"`
				} `json:"attributes"`
			} `json:"records"`
		}
		structured(t, res, &out)
		for _, r := range out.Records {
			if r.Attributes.Type != "Account" {
				t.Errorf("term %q returned a %s record: the term changed the statement", term, r.Attributes.Type)
			}
		}
	}
	res, _, err := callTool(t, a, rita, ToolSearch, map[string]any{"term": "Acme", "objects": []map[string]any{{"type": "Account) RETURNING User"}}})
	if err != nil || !res.IsError || !strings.Contains(text(res), "not an sObject API name") {
		t.Errorf("bad object name: err=%v %s", err, text(res))
	}
}

func TestResources(t *testing.T) {
	t.Parallel()
	// Accounts private, opportunities Public Read Only: the pipeline
	// resource must still hold only rita's own.
	e := newEnv(t, envOptions{sharing: map[string]sb.SharingModel{"Account": sb.SharingPrivate}})
	a := e.adapter(t, e.config(e.jwtBearer()))
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	ctx, _ := ctxAs(t, rita)

	lr, err := s.ListResources(ctx, nil)
	if err != nil || len(lr.Resources) != 1 || lr.Resources[0].URI != PipelineURI {
		t.Fatalf("ListResources = %v, %v", lr, err)
	}
	lt, err := s.ListResourceTemplates(ctx, nil)
	if err != nil || len(lt.ResourceTemplates) != 1 || lt.ResourceTemplates[0].URITemplate != RecordURITemplate {
		t.Fatalf("ListResourceTemplates = %v, %v", lt, err)
	}
	rr, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: PipelineURI})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range wantRep {
		if !strings.Contains(rr.Contents[0].Text, id) {
			t.Errorf("pipeline resource lacks %s", id)
		}
	}
	if strings.Contains(rr.Contents[0].Text, sb.OppGlobexNewLogo) || rr.Contents[0].MIMEType != "application/json" {
		t.Errorf("pipeline resource = %s", rr.Contents[0].Text)
	}
	rr, err = s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "salesforce://sobjects/Account/" + sb.AccountAcme})
	if err != nil || !strings.Contains(rr.Contents[0].Text, "Acme Widgets") {
		t.Fatalf("record resource: %v %v", rr, err)
	}
	octx, _ := ctxAs(t, oscar)
	_, err = s.ReadResource(octx, &mcp.ReadResourceParams{URI: "salesforce://sobjects/Account/" + sb.AccountAcme})
	var rpc *jsonrpc.Error
	if !errors.As(err, &rpc) || rpc.Code != mcp.CodeResourceNotFound || !strings.Contains(rpc.Message, `"outsider@acme.example"`) {
		t.Errorf("unshared record resource: %v", err)
	}
	for _, uri := range []string{"salesforce://nope", "salesforce://sobjects/Account", "https://x/y"} {
		if _, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); !errors.As(err, &rpc) {
			t.Errorf("%s: %v", uri, err)
		}
	}
	cr, err := s.Complete(ctx, &mcp.CompleteParams{Ref: &mcp.CompleteReference{Type: "ref/resource", URI: RecordURITemplate}, Argument: mcp.CompleteParamsArgument{Name: "type", Value: "opp"}})
	if err != nil || !slices.Equal(cr.Completion.Values, []string{"Opportunity"}) {
		t.Errorf("Complete = %v, %v", cr, err)
	}
}

// A token for a service account (client_credentials) runs as the API-only
// integration user, which Salesforce refuses user data: the tool error
// says so, and the audit facts say it ran as a service account.
func TestServiceAccountRefusedUserData(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.clientCredentials()))
	res, info, err := callTool(t, a, rita, ToolMyPipeline, nil)
	if err != nil || !res.IsError {
		t.Fatalf("want a tool error, got err=%v res=%s", err, text(res))
	}
	for _, w := range []string{"INVALID_TYPE", "sObject type 'Opportunity' is not supported", "service account", "client_credentials", "not yours"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	if snap := info.Snapshot(); !snap.ServiceAccount || snap.Flow != credentials.FlowClientCredentials {
		t.Errorf("callinfo = %+v, want a service account via client_credentials", snap)
	}
}

// An assertion for a user Salesforce does not know: invalid_grant, as an
// actionable tool error, and never a REST call.
func TestUnknownUserInvalidGrant(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res, _, err := callTool(t, a, ghost, ToolMyPipeline, nil)
	if err != nil || !res.IsError {
		t.Fatalf("want a tool error, got err=%v res=%s", err, text(res))
	}
	// Salesforce gives the same answer for an unknown username and an
	// unapproved user: the message names the username, the subject
	// mapping that produced it, and the connected app's pre-authorisation.
	for _, w := range []string{"invalid_grant", "user hasn't approved this consumer", `"user-ghost"`,
		`no user "ghost@acme.example"`, "no such username exists", `subject mapping (credentials.subject "{{ .Email }}")`, "pre-authorised for your profile or permission set"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	if e.RestHits.Load() != 0 || e.TokenHits.Load() != 1 {
		t.Errorf("token hits %d, REST hits %d; want 1 and 0", e.TokenHits.Load(), e.RestHits.Load())
	}
}

// A revoked session (INVALID_SESSION_ID) is re-exchanged once and the call
// retried once; the second call reuses the cached fresh token.
func TestRevokedSessionReexchangesOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	mustTool(t, a, rita, ToolMyPipeline, nil)
	mustTool(t, a, rita, ToolMyPipeline, nil)
	if got := e.TokenHits.Load(); got != 1 {
		t.Fatalf("token endpoint hits after two calls = %d, want 1 (cached)", got)
	}
	e.sb.RevokeAll()
	res, info, err := callTool(t, a, rita, ToolMyPipeline, nil)
	if err != nil || res.IsError {
		t.Fatalf("after revocation: %v %s", err, text(res))
	}
	if diff := cmp.Diff(wantRep, pipelineIDs(t, res)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got := e.TokenHits.Load(); got != 2 {
		t.Errorf("token endpoint hits = %d, want 2 (one re-exchange)", got)
	}
	if got := e.Rest401.Load(); got != 1 {
		t.Errorf("401 answers = %d, want 1", got)
	}
	if snap := info.Snapshot(); snap.Exchanges != 1 || snap.CacheHit {
		t.Errorf("callinfo = %+v, want the last credential freshly exchanged", snap)
	}
	mustTool(t, a, rita, ToolMyPipeline, nil)
	if got := e.TokenHits.Load(); got != 2 {
		t.Errorf("token endpoint hits = %d after another call, want 2", got)
	}
}

// A session refused even after a fresh token: exactly one retry, then a
// tool error that names the user.
func TestPersistentInvalidSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{intercept: func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`[{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]`))
		return true
	}})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res, _, err := callTool(t, a, rita, ToolMyPipeline, nil)
	if err != nil || !res.IsError {
		t.Fatalf("want a tool error, got err=%v res=%s", err, text(res))
	}
	for _, w := range []string{"INVALID_SESSION_ID", `"rep@acme.example"`, "also after obtaining a fresh one"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	if e.TokenHits.Load() != 2 || e.RestHits.Load() != 2 {
		t.Errorf("token hits %d, REST hits %d; want 2 and 2", e.TokenHits.Load(), e.RestHits.Load())
	}
}

func TestRequestLimitExceeded(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{requestLimit: 1})
	a := e.adapter(t, e.config(e.jwtBearer()))
	mustTool(t, a, rita, ToolMyPipeline, nil)
	res, _, err := callTool(t, a, rita, ToolMyPipeline, nil)
	if err != nil || !res.IsError {
		t.Fatalf("want a tool error, got err=%v res=%s", err, text(res))
	}
	for _, w := range []string{"REQUEST_LIMIT_EXCEEDED", "api-usage=1/1", "retry after", "not a Mandate fault"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
	// A platform that sends Retry-After has it surfaced in seconds.
	e2 := newEnv(t, envOptions{intercept: func(w http.ResponseWriter, r *http.Request) bool {
		w.Header().Set("Retry-After", "42")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`))
		return true
	}})
	res, _, _ = callTool(t, e2.adapter(t, e2.config(e2.jwtBearer())), rita, ToolMyPipeline, nil)
	if !res.IsError || !strings.Contains(text(res), "retry after 42 seconds") {
		t.Errorf("Retry-After not surfaced: %s", text(res))
	}
}

// A 403 INSUFFICIENT_ACCESS is the platform refusing this user.
func TestInsufficientAccess(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{intercept: func(w http.ResponseWriter, r *http.Request) bool {
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte(`[{"message":"insufficient access rights on object id","errorCode":"INSUFFICIENT_ACCESS"}]`))
		return true
	}})
	a := e.adapter(t, e.config(e.jwtBearer()))
	res, _, err := callTool(t, a, morgan, ToolGetRecord, map[string]any{"sobject": "Account", "id": sb.AccountAcme})
	if err != nil || !res.IsError {
		t.Fatalf("want a tool error, got err=%v", err)
	}
	for _, w := range []string{`refused this request for Salesforce user "manager@acme.example"`, "INSUFFICIENT_ACCESS", "not a Mandate fault"} {
		if !strings.Contains(text(res), w) {
			t.Errorf("message %q lacks %q", text(res), w)
		}
	}
}

// Calls go to the token's instance_url, not the configured URL.
func TestCallsGoToInstanceURL(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cfg := e.config(e.jwtBearer())
	cfg.URL = "http://127.0.0.1:1" // nothing listens there
	a := e.adapter(t, cfg)
	res := mustTool(t, a, rita, ToolMyPipeline, nil)
	if diff := cmp.Diff(wantRep, pipelineIDs(t, res)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(release) }) })
	e := newEnv(t, envOptions{intercept: func(w http.ResponseWriter, r *http.Request) bool {
		select {
		case <-release:
		case <-r.Context().Done():
		}
		return true
	}})
	cfg := e.config(e.jwtBearer())
	cfg.Timeout = 300 * time.Millisecond
	a := e.adapter(t, cfg)
	res, _, err := callTool(t, a, rita, ToolMyPipeline, nil)
	if err != nil || !res.IsError || !strings.Contains(text(res), "did not answer within 300ms") {
		t.Errorf("timeout: err=%v %s", err, text(res))
	}
}

func TestProtocolErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	for _, tc := range []struct {
		name string
		tool string
		args any
	}{
		{"unknown tool", "drop_table", nil},
		{"wrong type", ToolSOQLQuery, map[string]any{"query": 5}},
		{"unknown property", ToolMyPipeline, map[string]any{"owner": "me"}},
		{"array", ToolGetRecord, []int{1}},
	} {
		_, _, err := callTool(t, a, rita, tc.tool, tc.args)
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) || rpc.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("%s: want -32602, got %v", tc.name, err)
		}
	}
	res, _, err := callTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": "SELECT Id FROM Account", "max_records": 0})
	if err != nil || !res.IsError || !strings.Contains(text(res), "max_records must be between 1 and 2000") {
		t.Errorf("max_records 0: %v %s", err, text(res))
	}
	if e.RestHits.Load() != 0 {
		t.Errorf("protocol errors reached Salesforce %d times", e.RestHits.Load())
	}
}

// Tokens appear in no error text and no log line.
func TestNoTokensInErrorsOrLogs(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))
	var texts []string
	for _, args := range []struct {
		tool string
		args any
	}{
		{ToolMyPipeline, nil},
		{ToolSOQLQuery, map[string]any{"query": "SELECT Nme FROM Account"}},
		{ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": sb.OppGlobexNewLogo}},
	} {
		res, _, err := callTool(t, a, rita, args.tool, args.args)
		if err != nil {
			texts = append(texts, err.Error())
		}
		texts = append(texts, text(res))
	}
	e.sb.RevokeAll()
	res, _, _ := callTool(t, a, rita, ToolMyPipeline, nil)
	texts = append(texts, text(res), e.logs.String(), e.brokerLogs.String())
	if !strings.Contains(e.logs.String(), "salesforce call") {
		t.Error("no debug log was written; the test would prove nothing")
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
	src := credentials.NewBroker(credentials.BrokerOptions{})
	s, err := src.Source("sf", credentials.Config{Flow: credentials.FlowNone})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  upstreams.Config
		deps Deps
		want string
	}{
		{"no credentials", upstreams.Config{Name: "sf", URL: "https://x.my.salesforce.com"}, Deps{}, "Deps.Credentials is required"},
		{"bad url", upstreams.Config{Name: "sf", URL: "ftp://x"}, Deps{Credentials: s}, "upstreams[sf].url"},
		{"bad version", upstreams.Config{Name: "sf", URL: "https://x", Salesforce: upstreams.SalesforceOptions{APIVersion: "62"}}, Deps{Credentials: s}, "api_version"},
	} {
		if _, err := New(tc.cfg, tc.deps); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// flow none: the adapter says Salesforce needs a per-user token.
	a, err := New(upstreams.Config{Name: "sf", URL: "https://x.my.salesforce.com"}, Deps{Credentials: s})
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := callTool(t, a, rita, ToolMyPipeline, nil)
	if err != nil || !res.IsError || !strings.Contains(text(res), "jwt_bearer") {
		t.Errorf("flow none: %v %s", err, text(res))
	}
}

var _ = callinfo.NewContext

// Assertions Salesforce refuses (signed by a key the connected app does
// not hold, or valid for longer than Salesforce's 3 minutes) reach the
// user as actionable credentials errors, never as a REST call.
func TestRefusedAssertions(t *testing.T) {
	t.Parallel()
	t.Run("wrongly signed", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		other, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.sb.RegisterApp(sb.ConnectedApp{ConsumerKey: consumerKey, PublicKey: &other.PublicKey, PreAuthorized: []string{"rep@acme.example"}}); err != nil {
			t.Fatal(err)
		}
		a := e.adapter(t, e.config(e.jwtBearer()))
		res, _, err := callTool(t, a, rita, ToolMyPipeline, nil)
		if err != nil || !res.IsError {
			t.Fatalf("err=%v %s", err, text(res))
		}
		for _, w := range []string{"invalid_grant", "invalid assertion", "digital-signature certificate must match credentials.private_key_file"} {
			if !strings.Contains(text(res), w) {
				t.Errorf("message %q lacks %q", text(res), w)
			}
		}
		if e.RestHits.Load() != 0 {
			t.Error("REST API called without a token")
		}
	})
	// Salesforce wants exp within 3 minutes: a longer assertion_lifetime
	// on a salesforce upstream is a configuration error, not a refusal
	// every user meets at run time.
	t.Run("lifetime over 3 minutes", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envOptions{})
		creds := e.jwtBearer()
		creds.AssertionLifetime = 10 * time.Minute
		cfg := e.config(creds).WithDefaults()
		if err := cfg.Validate("upstreams[salesforce]"); err == nil || !strings.Contains(err.Error(), "upstreams[salesforce].credentials.assertion_lifetime: 10m0s is longer than salesforce accepts (at most 3m0s)") {
			t.Errorf("validate: %v", err)
		}
		creds.AssertionLifetime = 3 * time.Minute
		a := e.adapter(t, e.config(creds))
		mustTool(t, a, rita, ToolMyPipeline, nil) // exactly 3 minutes is accepted
	})
}

// A caller who goes away mid-call gets its cancellation back (the call is
// abandoned, not reported as a platform failure), promptly.
func TestCancelledMidCall(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	e := newEnv(t, envOptions{intercept: func(w http.ResponseWriter, r *http.Request) bool {
		started <- struct{}{}
		<-r.Context().Done()
		return true
	}})
	a := e.adapter(t, e.config(e.jwtBearer()))
	s, _ := a.Open(context.Background(), upstreams.OpenOptions{})
	ctx, cancel := context.WithCancel(identity.NewContext(context.Background(), rita))
	go func() {
		<-started
		cancel()
	}()
	done := make(chan error, 1)
	go func() {
		_, err := s.CallTool(ctx, &mcp.CallToolParams{Name: ToolMyPipeline})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the call did not return after cancellation")
	}
}
