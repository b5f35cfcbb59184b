package servicenow

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// journalFields are the incident's journal fields: a write adds an entry to
// the record's journal (sys_journal_field) instead of replacing a value;
// the Table API reads their value as empty and their display value as the
// journal, newest entry first ("<when> - <who> (<field label>)\n<text>\n\n").
// ServiceNow docs, "Journal field type".
var journalFields = map[string]bool{"comments": true, "work_notes": true}

// updateResponseFields are the fields update_incident asks the PATCH to
// return: the list fields plus every field it sent.
func updateResponseFields(sent map[string]string) []string {
	out := slices.Clone(IncidentFields)
	for k := range sent {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	sort.Strings(out[len(IncidentFields):])
	return out
}

// notApplied compares the PATCH answer (sysparm_display_value=all) with
// what was sent and returns the fields ServiceNow did not change as asked,
// sorted. ServiceNow answers 200 with the record even when a field-level
// write ACL (or a business rule) kept a field's old value — the Table API
// silently ignores fields the user may not write (ServiceNow KB2971488,
// "field-level ACL silencing") — so the answer is the only evidence. A
// journal field counts as applied when its newest entry holds the text.
func notApplied(rec map[string]any, sent map[string]string) []string {
	var out []string
	for k, want := range sent {
		v, d := fieldValue(rec[k])
		ok := v == want
		if journalFields[k] {
			_, entry, _ := strings.Cut(d, "\n") // after the newest entry's header
			ok = strings.TrimSpace(want) == "" || strings.HasPrefix(entry, strings.TrimSpace(want))
		}
		if !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// fieldValue splits a sysparm_display_value=all field into value and
// display value; a plain string is both.
func fieldValue(v any) (value, display string) {
	switch x := v.(type) {
	case map[string]any:
		value, _ = x["value"].(string)
		display, _ = x["display_value"].(string)
		return value, display
	case string:
		return x, x
	}
	return "", ""
}

// updateResult is update_incident's result: the record as display values
// (journal fields only when sent), plus not_applied when ServiceNow kept
// fields it was asked to change. When it kept all of them the result is
// a tool error, so nobody reports a change that did not happen.
func updateResult(rec map[string]any, sent map[string]string, id string) *mcp.CallToolResult {
	out := make(map[string]any, len(rec)+1)
	for k, v := range rec {
		_, d := fieldValue(v)
		out[k] = d
	}
	number := str(out["number"])
	skipped := notApplied(rec, sent)
	if len(skipped) == 0 {
		return recordResult(out, fmt.Sprintf("Updated incident %s (sys_id %s).", number, id))
	}
	var kept []string
	for _, k := range skipped {
		if journalFields[k] {
			kept = append(kept, k+" (no new journal entry)")
			continue
		}
		_, d := fieldValue(rec[k])
		kept = append(kept, fmt.Sprintf("%s (still %q)", k, rest.Clip(d, 80)))
	}
	why := "ServiceNow answered with the record but kept these fields as they were — its field-level ACLs (or business rules) did not let you change them; ask a ServiceNow fulfiller or administrator if they must change"
	if len(skipped) == len(sent) {
		return rest.ToolError(fmt.Sprintf("Incident %s (sys_id %s) was not changed: %s. %s.", number, id, strings.Join(kept, ", "), why))
	}
	out["not_applied"] = skipped
	return recordResult(out, fmt.Sprintf("Updated incident %s (sys_id %s), except: %s. %s.", number, id, strings.Join(kept, ", "), why))
}
