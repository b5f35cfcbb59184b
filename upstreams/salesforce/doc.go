// Package salesforce is Mandate's native Salesforce adapter (kind:
// salesforce): it serves Salesforce's REST API as MCP tools and resources,
// calling Salesforce as the signed-in user with a platform token from the
// credentials broker (flow jwt_bearer: Mandate signs an RFC 7523 assertion
// whose sub is the user's Salesforce username). Salesforce's own sharing
// rules decide what each user sees; the adapter adds no data filter.
//
// Read tools:
//
//   - soql_query  {query, max_records?}: one SOQL SELECT (ValidateSOQL
//     refuses anything else), following nextRecordsUrl pages up to
//     max_records (default and cap: salesforce.max_records); truncation is
//     reported.
//   - get_record  {sobject, id, fields?}: GET sobjects/{type}/{id}.
//   - search      {term, objects?, limit?}: SOSL built by BuildSOSL; the term
//     is escaped with EscapeSOSL, so it is always searched literally.
//   - my_pipeline {scope?, max_records?}: the user's open opportunities —
//     owned by them (PipelineSOQL, USING SCOPE mine), not merely visible:
//     with Opportunity's usual Public Read Only org-wide default a rep can
//     see everyone's. scope "team" (TeamPipelineSOQL, USING SCOPE team)
//     lists those owned by the user's reports in the role hierarchy.
//   - describe_object {sobject}: GET sobjects/{type}/describe, kept to what
//     a model needs (fields: name, label, type, length, nillable,
//     createable, updateable, active picklist values, lookups' targets and
//     relationship names; named child relationships). Field-level
//     security applies: Salesforce leaves out fields the user cannot read.
//   - related_records {sobject, id, relationship, fields?, max_records?}:
//     GET sobjects/{type}/{id}/{relationship} — a lookup's parent record or
//     the child records the user may see, following nextRecordsUrl.
//   - recently_viewed {limit?}: GET recent, the user's recently viewed
//     records (type, id, name), most recent first.
//
// Write tools (tools_write.go), offered for the objects on the upstream's
// salesforce.writable allow-list (default: upstreams.DefaultSalesforceWritable):
//
//   - update_opportunity {id, fields}: PATCH sobjects/Opportunity/{id}.
//   - log_call {what_id?, who_id?, subject?, description?, activity_date?}:
//     POST sobjects/Task/ with TaskSubtype Call and Status Completed.
//   - create_contact {fields}, create_lead {fields}: POST sobjects/{type}/.
//
// A field outside the allow-list is refused before any call. Salesforce's
// refusals (INSUFFICIENT_ACCESS_OR_READONLY, REQUIRED_FIELD_MISSING,
// INVALID_FIELD_FOR_INSERT_UPDATE, FIELD_INTEGRITY_EXCEPTION, …) become tool
// errors saying what to do.
//
// Resources: salesforce://my/pipeline (my_pipeline, scope mine) and the template
// salesforce://sobjects/{type}/{id} (JSON).
//
// Calls go to the token's instance_url (fallback: the configured url) under
// /services/data/{salesforce.api_version}/ (default v66.0). Every response's
// Sforce-Limit-Info (the org's api-usage=used/limit) is kept: APIUsage,
// gauges mandate.salesforce.api_requests.{used,limit,remaining} when
// Deps.MeterProvider is set, and a warning log once each time fewer than 10%
// of the org's daily calls are left. A 401 (INVALID_SESSION_ID)
// invalidates the cached token, re-exchanges once and retries once. Platform
// refusals (403, INSUFFICIENT_ACCESS, 404 for records not shared,
// INVALID_TYPE for objects the profile cannot read) become tool errors that
// name the platform user the call ran as; MALFORMED_QUERY and friends carry
// Salesforce's message; REQUEST_LIMIT_EXCEEDED reports the org's usage and
// when to retry; *credentials.Error texts (e.g. invalid_grant for a user
// Salesforce does not know) are passed through. Protocol problems (unknown
// tool, arguments that are not a JSON object of the right shape) are
// *jsonrpc.Error with code -32602. Tokens never appear in errors or logs.
// Each call records its credential (flow, platform subject, service
// account, cache hit) in callinfo for the audit record.
//
// The plumbing shared with the other native adapter (token per request,
// the 401 retry, the timeout and max_result_bytes bounds, the mapping of
// failures to JSON-RPC codes, sessions, argument decoding) is package
// upstreams/rest; this package holds what is platform-specific.
//
// Usage:
//
//	src, _ := broker.Source(cfg.Name, cfg.Credentials)
//	a, err := salesforce.New(cfg, salesforce.Deps{Credentials: src, Logger: log})
//	sess, _ := a.Open(ctx, upstreams.OpenOptions{})
//	res, err := sess.CallTool(identity.NewContext(ctx, id), &mcp.CallToolParams{Name: "my_pipeline"})
package salesforce
