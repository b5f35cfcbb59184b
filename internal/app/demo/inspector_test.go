package demo

import (
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

// TestInspectorAgainstDemo runs the MCP Inspector CLI the banner tells users
// to run (same release, same --cli URL --transport http --method …
// --header "Authorization: Bearer …" arguments) against a running demo.
// Skipped without Node 22 and the Inspector (`bash .ci/test.sh` installs
// them; with MANDATE_E2E=1 a missing tool fails instead).
func TestInspectorAgainstDemo(t *testing.T) {
	nodetools.RequireInspector(t)
	t.Parallel()
	ctx := testCtx(t)
	d, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if !strings.Contains(d.InspectorCommand("RITA_TOKEN", "tools/list"), " --cli "+d.MCPURL+" --transport http --method tools/list --header \"Authorization: Bearer $RITA_TOKEN\"") {
		t.Fatalf("printed command changed: %s", d.InspectorCommand("RITA_TOKEN", "tools/list"))
	}
	rita, _ := d.User("rita")
	out, err := nodetools.RunInspector(ctx, d.MCPURL, rita.Token, "tools/list")
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Tools []struct {
			Name string `json:"name"`
		} `json:"tools"`
	}
	if err := nodetools.InspectorResult(out, &list); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range list.Tools {
		names = append(names, tl.Name)
	}
	sort.Strings(names)
	want := []string{"kb_get_article", "kb_search_articles", "salesforce_create_contact", "salesforce_create_lead",
		"salesforce_describe_object", "salesforce_get_record", "salesforce_log_call", "salesforce_my_pipeline",
		"salesforce_recently_viewed", "salesforce_related_records", "salesforce_search", "salesforce_soql_query",
		"salesforce_update_opportunity", "servicenow_approve", "servicenow_get_incident", "servicenow_my_approvals",
		"servicenow_my_groups_queue", "servicenow_my_incidents", "servicenow_my_requested_items", "servicenow_query_table",
		"servicenow_reject", "servicenow_search_knowledge", "tracker_my_issues", "whoami"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("rita's tools via the Inspector (-want +got):\n%s", diff)
	}

	out, err = nodetools.RunInspector(ctx, d.MCPURL, rita.Token, "tools/call", "--tool-name", ToolPipeline)
	if err != nil {
		t.Fatal(err)
	}
	var call struct {
		Structured struct {
			Opportunities []struct {
				Name string `json:"name"`
			} `json:"opportunities"`
		} `json:"structuredContent"`
		IsError bool `json:"isError"`
	}
	if err := nodetools.InspectorResult(out, &call); err != nil {
		t.Fatal(err)
	}
	var opps []string
	for _, o := range call.Structured.Opportunities {
		opps = append(opps, o.Name)
	}
	if diff := cmp.Diff([]string{"Acme Widgets - Renewal", "Acme Widgets - Expansion"}, opps); diff != "" || call.IsError {
		t.Errorf("rita's pipeline via the Inspector (isError %v) (-want +got):\n%s", call.IsError, diff)
	}
}
