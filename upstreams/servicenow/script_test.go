package servicenow

import (
	"strings"
	"testing"
)

// Encoded queries may carry `javascript:` values, which ServiceNow runs as
// server-side script. query_table refuses them, with a tool error and
// without calling ServiceNow, except the two idioms for "me" and "my
// groups" (case-insensitive, exactly).
func TestQueryTableScriptedValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	a := e.adapter(t, e.config(e.jwtBearer()))

	for _, q := range []string{
		"caller_id=javascript:gs.getUserID()^ORDERBYnumber",
		"caller_id=JavaScript:GS.GetUserID()",
		"active=true^assignment_groupINjavascript:getMyGroups()",
		"assigned_to=javascript:gs.getUserID()^ORassignment_groupINjavascript:getMyGroups()^active=true",
	} {
		before := e.RestHits.Load()
		res, _, err := callTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": q, "fields": []string{"sys_id"}})
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if e.RestHits.Load() == before {
			t.Errorf("%q was refused locally: %s", q, text(res))
		}
	}

	for _, q := range []string{
		"short_description=javascript:gs.getSession().getClientIP()",
		"caller_id=javascript:new GlideRecord('sys_user').deleteMultiple()",
		"caller_id=javascript:gs.getUserID();gs.log('x')",
		"caller_id=javascript:gs.getUserID()+''",
		"caller_id=javascript: gs.getUserID()",
		"caller_id=javascript:gs.getUserID()^^x",
		"active=true^short_descriptionLIKEJAVASCRIPT:eval(1)",
		"caller_id=java\u017fcript:evil()", // ſ folds to s, as in Java's equalsIgnoreCase
		"caller_id=javascript:",
	} {
		before := e.RestHits.Load()
		res, _, err := callTool(t, a, ivy, ToolQueryTable, map[string]any{"table": "incident", "query": q})
		if err != nil {
			t.Fatalf("%q: %v", q, err)
		}
		if !res.IsError || !strings.Contains(text(res), "javascript:") || !strings.Contains(text(res), "javascript:gs.getUserID()") {
			t.Errorf("%q: want a tool error about javascript: values, got %s", q, text(res))
		}
		if e.RestHits.Load() != before {
			t.Errorf("%q reached ServiceNow", q)
		}
	}
}
