package servicenow

// Reference fields the tools write (an incident's caller, assignee and
// assignment group) are resolved to sys_ids before the write. The Table API
// stores a written value as given unless sysparm_input_display_value=true
// (docs: Table API, "sysparm_input_display_value … false: Treats input
// values as actual values and stores them in the database without
// manipulation"), so a user name or an email sent as assigned_to becomes a
// broken reference on a real instance. The lookup runs as the calling user;
// no match and several matches are tool errors, never a guess.

import (
	"fmt"
	"strings"

	"github.com/mandate-gw/mandate/upstreams/rest"
)

// refKind describes how one reference field is looked up.
type refKind struct {
	table  string   // referenced table
	noun   string   // for messages
	by     []string // fields matched exactly, besides sys_id
	fields string   // sysparm_fields of the lookup
	label  func(map[string]any) string
}

var (
	userRef = refKind{
		table: "sys_user", noun: "user", by: []string{"user_name", "email"}, fields: "sys_id,user_name,email,name",
		label: func(r map[string]any) string {
			return fmt.Sprintf("%s (user name %s, email %s, sys_id %s)", str(r["name"]), str(r["user_name"]), str(r["email"]), str(r["sys_id"]))
		},
	}
	groupRef = refKind{
		table: "sys_user_group", noun: "group", by: []string{"name"}, fields: "sys_id,name",
		label: func(r map[string]any) string { return fmt.Sprintf("%s (sys_id %s)", str(r["name"]), str(r["sys_id"])) },
	}
)

// maxRefMatches is how many matches a lookup reads; two already mean the
// value is ambiguous, a few more make the message useful.
const maxRefMatches = 5

// resolveRef returns the sys_id of the record of k that value names (by
// sys_id or one of k.by), as the calling user. "" stays "" (clears the
// field). A *dictError is a message for the user; other errors are the
// platform's.
func (c *call) resolveRef(k refKind, arg, value string) (string, error) {
	if value == "" {
		return "", nil
	}
	if strings.TrimSpace(value) != value || strings.Contains(value, "^") || strings.Contains(foldCase(value), "javascript:") {
		return "", &dictError{fmt.Sprintf("%s %q is not a %s name, email or sys_id (no surrounding spaces, ^ or javascript: allowed)", arg, rest.Clip(value, 80), k.noun)}
	}
	conds := []string{"sys_id=" + value}
	for _, f := range k.by {
		conds = append(conds, f+"="+value)
	}
	rows, err := c.rows(k.table, strings.Join(conds, "^OR"), k.fields, maxRefMatches)
	if err != nil {
		return "", err
	}
	ids := map[string]bool{}
	var labels []string
	for _, r := range rows {
		id := str(r["sys_id"])
		if !reSysID.MatchString(id) || ids[id] {
			continue
		}
		ids[id] = true
		labels = append(labels, k.label(r))
	}
	switch len(ids) {
	case 0:
		return "", &dictError{fmt.Sprintf("%s: ServiceNow has no %s %q (matched by sys_id or %s) that %s can see; give an existing %s's %s or sys_id.", arg, k.noun, rest.Clip(value, 80), strings.Join(k.by, " or "), who(c.Token()), k.noun, strings.Join(k.by, ", "))}
	case 1:
		for id := range ids {
			return id, nil
		}
	}
	return "", &dictError{fmt.Sprintf("%s: %q matches %d ServiceNow %ss: %s. Give the one you mean by its sys_id (or a %s only it has).", arg, rest.Clip(value, 80), len(ids), k.noun, strings.Join(labels, "; "), strings.Join(k.by, " or "))}
}

// resolveRefs replaces the reference values in fields (caller_id,
// assigned_to, assignment_group) by sys_ids. It returns a tool error
// result for the user, or an error for ToolFailure.
func (c *call) resolveRefs(fields map[string]string, args map[string]string) (string, error) {
	for _, f := range []struct {
		key string
		k   refKind
	}{{"caller_id", userRef}, {"assigned_to", userRef}, {"assignment_group", groupRef}} {
		v, ok := fields[f.key]
		if !ok {
			continue
		}
		id, err := c.resolveRef(f.k, args[f.key], v)
		if err != nil {
			if d, ok := asDictError(err); ok {
				return d.msg, nil
			}
			return "", err
		}
		fields[f.key] = id
	}
	return "", nil
}
