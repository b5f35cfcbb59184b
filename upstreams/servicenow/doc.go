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
//   - my_incidents    {relation?, active_only?, limit?} (read-only)
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
