// Package servicenow is Mandate's native ServiceNow adapter (kind:
// servicenow): it serves ServiceNow's Table API as MCP tools and a resource
// template, calling ServiceNow as the signed-in user with a platform token
// from the credentials broker. ServiceNow's ACLs decide what each user sees
// and may change; the adapter adds no data filter.
//
// Credentials (upstreams[].credentials), both documented and tested:
//
//   - jwt_bearer: Mandate signs an RFC 7523 assertion (sub from the subject
//     template, e.g. "{{ .Email }}") and posts it to
//     https://<instance>.service-now.com/oauth_token.do with the OAuth
//     app's client id and secret; the app's JWT provider maps sub to a
//     sys_user field (user_name, email or sys_id).
//   - token_exchange: the company IdP exchanges the user's inbound token
//     (RFC 8693) for one whose audience is the client id of the OIDC
//     provider configured on the instance; ServiceNow accepts that JWT as a
//     bearer token and maps its email claim to the sys_user.
//
// Tools:
//
//   - my_incidents    {relation?, active_only?, limit?, offset?} (read-only)
//   - get_incident    {number | sys_id, display_values?} (read-only)
//   - create_incident {short_description, description?, urgency?, impact?,
//     category?, caller?} (not read-only, not destructive)
//   - update_incident {number | sys_id, fields…} (not read-only, destructive)
//   - query_table     {table, query?, fields?, limit?, offset?,
//     display_values?} (read-only; limit ≤ servicenow.max_records; the
//     only javascript: values allowed in query are AllowedQueryScripts)
//
// Resource template: servicenow://table/{table}/{sys_id} (JSON with value
// and display value of every field).
//
// How ServiceNow really behaves, and what the adapter does about it:
//
//   - Paging: ServiceNow cuts the page (sysparm_offset, sysparm_limit)
//     before its ACLs remove the rows the user may not read, and
//     X-Total-Count counts rows before ACLs. List results therefore carry
//     limit, hidden (rows of the page the ACLs removed) and next_offset =
//     offset + limit; a page whose rows were all hidden says so and where
//     the next page starts, never "nothing matched".
//   - Queries: ServiceNow silently ignores a condition on an unknown field
//     (returning MORE rows). query_table reads the table's fields from
//     sys_db_object (following super_class) and sys_dictionary as the
//     user, caches them per upstream, user and table for 10 minutes, and refuses
//     a query naming an unknown field, dot-walking a non-reference, or
//     holding a part it cannot read as a condition or ORDERBY, with a tool
//     error naming the field. A user who may not read the dictionary gets a
//     tool error instead of an unchecked query.
//   - References: with sysparm_input_display_value=false ServiceNow stores
//     a written reference as given, so create_incident's caller and
//     update_incident's assigned_to and assignment_group are resolved to a
//     sys_id first (sys_user by sys_id, user_name or email; sys_user_group
//     by sys_id or name), as the user; no match or several matches are tool
//     errors and nothing is written.
//
// A 401 invalidates the cached token, re-exchanges once and retries once.
// 403 and 404 (a record ACLs hide) become tool errors that say ServiceNow
// refused this user (naming the platform account when known); 400 carries
// ServiceNow's message and detail; 429 surfaces Retry-After;
// *credentials.Error texts are passed through. Unknown tools and arguments
// that are not a JSON object of the right shape are *jsonrpc.Error -32602.
// Tokens never appear in errors or logs. Each call records its credential
// in callinfo for the audit record.
//
// The plumbing shared with the other native adapter (token per request,
// the 401 retry, the timeout and max_result_bytes bounds, the mapping of
// failures to JSON-RPC codes, sessions, argument decoding) is package
// upstreams/rest; this package holds what is platform-specific.
//
// Usage:
//
//	src, _ := broker.Source(cfg.Name, cfg.Credentials)
//	a, err := servicenow.New(cfg, servicenow.Deps{Credentials: src, Logger: log})
//	sess, _ := a.Open(ctx, upstreams.OpenOptions{})
//	res, err := sess.CallTool(identity.NewContext(ctx, id), &mcp.CallToolParams{Name: "my_incidents"})
package servicenow
