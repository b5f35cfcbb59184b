package demo

import (
	"context"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
	sf "github.com/mandate-gw/mandate/upstreams/salesforce"
	sn "github.com/mandate-gw/mandate/upstreams/servicenow"
)

// TestRealClientsListDemo lists tools, prompts, resources and resource
// templates for every demo user with the MCP Inspector 2.12 CLI and the
// official TypeScript SDK 1.32 client, as a new user of `mandate-demo`
// would. Every list is an array (the SDK and the Inspector refuse null:
// "expected array, received null"), holding exactly what policy lets that
// user see: Salesforce (tools, the pipeline resource, the record template)
// for sales only; ServiceNow's writes for IT only; its reads, its record
// template and kb for everyone; no prompts anywhere.
func TestRealClientsListDemo(t *testing.T) {
	nodetools.Require(t, nodetools.ToolInspector, nodetools.ToolTSSDK)
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()

	kb := []string{"kb_get_article", "kb_search_articles"}
	salesforce := []string{"salesforce_create_contact", "salesforce_create_lead", "salesforce_describe_object", "salesforce_get_record",
		"salesforce_log_call", "salesforce_my_pipeline", "salesforce_recently_viewed", "salesforce_related_records", "salesforce_search",
		"salesforce_soql_query", "salesforce_update_opportunity"}
	// Everyone's ServiceNow tools (approve/reject: ServiceNow decides who is the approver).
	snReads := []string{"servicenow_approve", "servicenow_get_incident", "servicenow_my_approvals", "servicenow_my_groups_queue",
		"servicenow_my_incidents", "servicenow_my_requested_items", "servicenow_query_table", "servicenow_reject", "servicenow_search_knowledge"}
	snWrites := []string{"servicenow_create_incident", "servicenow_update_incident"}
	// Listed for everyone before they connected their tracker account
	// (tools_before_connect).
	tracker := []string{"tracker_my_issues"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	sales := map[string][]string{
		"tools/list":               cat(kb, salesforce, snReads, tracker, []string{"whoami"}),
		"prompts/list":             {},
		"resources/list":           {sf.PipelineURI},
		"resources/templates/list": {sf.RecordURITemplate, sn.RecordURITemplate},
	}
	want := map[string]map[string][]string{
		"rita":   sales,
		"morgan": sales,
		"ivy": {
			"tools/list":               cat(kb, snReads, snWrites, tracker, []string{"whoami"}),
			"prompts/list":             {},
			"resources/list":           {},
			"resources/templates/list": {sn.RecordURITemplate},
		},
		"oscar": {
			"tools/list":               cat(kb, snReads, tracker, []string{"whoami"}),
			"prompts/list":             {},
			"resources/list":           {},
			"resources/templates/list": {sn.RecordURITemplate},
		},
	}
	if len(want) != len(d.Users) {
		t.Fatalf("the demo has %d users, the test knows %d", len(d.Users), len(want))
	}
	methods := []string{"tools/list", "prompts/list", "resources/list", "resources/templates/list"}
	for _, u := range d.Users {
		t.Run(u.Name, func(t *testing.T) {
			w, ok := want[u.Name]
			if !ok {
				t.Fatalf("no expected listing for demo user %s", u.Name)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			for _, p := range nodetools.CheckListings(nodetools.ListWithClients(ctx, d.MCPURL, u.Token, methods...), w) {
				t.Error(p)
			}
		})
	}
}
