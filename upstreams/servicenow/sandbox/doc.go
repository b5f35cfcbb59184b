// Package sandbox is a small, faithful stand-in for a ServiceNow instance,
// built from ServiceNow's public documentation of the Table API, its OAuth
// endpoint and its inbound OIDC token support. Tests and `mandate-demo` run
// it in-process (it is an http.Handler) to exercise the ServiceNow adapter as
// different users.
//
// Authentication (every Table API call needs "Authorization: Bearer …"):
//
//   - POST /oauth_token.do, grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer
//     (ServiceNow's "JWT bearer grant"): client_id (+ client_secret when the
//     OAuth app has one) and an assertion signed by a key registered on the
//     app's JWT provider (RS256/RS384/RS512); iss must equal the app's
//     Issuer (default: its client id), aud one of its Audiences (default:
//     its client id only, as ServiceNow requires), exp present and not
//     passed; sub is matched
//     against the sys_user field named by UserField (user_name by default,
//     or email, or sys_id).
//   - POST /oauth_token.do, grant_type=client_credentials: the token runs as
//     the app's run-as user (a service account).
//   - Bearer JWTs from a trusted external OIDC provider ("Configure an OIDC
//     provider to verify ID tokens"): the token's signature is checked with
//     the provider's JWKS (static keys, a JWKS URL or the discovery document),
//     iss must equal the provider's Issuer, aud must contain its ClientID,
//     exp must not have passed; the claim named UserClaim (default "email")
//     is matched against the sys_user field UserField (default "email"). An
//     access token obtained from the company IdP by RFC 8693 token exchange,
//     with aud = the ServiceNow client id and an email claim, therefore
//     authenticates as the sys_user with that email.
//
// The token endpoint answers success as {"access_token","scope",
// "token_type":"Bearer","expires_in"} (no refresh token) and every failure
// the way ServiceNow does, opaquely: 401 {"error":"server_error",
// "error_description":"access_denied"}; the precise reason is logged at
// debug level (never the assertion).
//
// Table API: GET /api/now/table/{table} (incident, sys_user, sys_user_group,
// sys_user_grmember, and the schema tables sys_db_object and
// sys_dictionary: incident extends task, whose fields sys_dictionary lists
// under name=task) with sysparm_query, sysparm_fields (dot-walking one
// level, e.g. caller_id.email), sysparm_limit (default and cap 10000),
// sysparm_offset, sysparm_display_value (false|true|all),
// sysparm_exclude_reference_link and sysparm_input_display_value; X-Total-Count
// and Link headers. As on the platform, the page is cut (offset, limit)
// before ACLs remove the rows the user may not read, so a page can be short
// or empty while later pages hold readable rows; X-Total-Count counts the
// query's rows before ACLs. Written reference values are stored as given
// (a user name stays a user name: a broken reference) unless
// sysparm_input_display_value=true, which looks up the display value.
// GET /api/now/table/{table}/{sys_id}; POST /api/now/table/incident (201);
// PATCH/PUT /api/now/table/incident/{sys_id}; DELETE (refused by ACL).
//
// Encoded queries: field=value, !=, <, <=, >, >=, LIKE, NOT LIKE,
// STARTSWITH, ENDSWITH, IN, NOT IN, ISEMPTY, ISNOTEMPTY, ANYTHING, joined
// with ^ (AND), ^OR (binds tighter than AND) and ^NQ (a new OR'd query),
// plus ORDERBYfield / ORDERBYDESCfield; dot-walking one level
// (caller_id.email=…); the value javascript:gs.getUserID() (and
// gs.getUserName()) resolve to the caller. Like ServiceNow by default
// (glide.invalid_query.returns_no_rows=false), a condition on an unknown
// field, a malformed condition or an ORDERBY on an unknown field is
// silently dropped and the rest runs, returning MORE rows;
// Options.InvalidQueryReturnsNoRows makes such queries return none. Other
// javascript: values, over-long queries and more than 200 conditions
// answer 400 "Invalid query".
//
// ACLs: incidents are readable by users with role itil or admin, and
// otherwise only by their caller (caller_id), opener (opened_by), assignee
// (assigned_to) or members of their assignment_group; rows a user may not
// read are absent from lists, and GET by sys_id answers 404 "No Record
// found". itil/admin may update any incident; the caller or opener may
// update their own; anyone else who can read it gets 403. Any user may
// create an incident; opened_by is always the creator. Field-level ACLs
// (fieldacl.go): without itil or admin a user may not write caller_id,
// assigned_to, assignment_group, work_notes, close_code or close_notes —
// such values are silently ignored and the request still succeeds, as on the
// platform — nor read work_notes, which come back empty. Journal fields
// (comments, work_notes) append an entry to the record's journal on every
// non-empty write (journal.go); their value reads empty and their display
// value is the journal, newest entry first. sys_user, sys_user_group and sys_user_grmember are
// readable by every authenticated user and writable by nobody here;
// sys_db_object and sys_dictionary likewise, unless Options.DictionaryRoles
// restricts them to some roles.
//
// Errors use the documented body {"error":{"message":…,"detail":…},
// "status":"failure"}: 401 "User Not Authenticated" / "Required to provide
// Auth information", 403 "Operation Failed" / "ACL restricts the record
// update", 404 "No Record found" / "Record doesn't exist or ACL restricts
// the record retrieval", 400 "Invalid table …" or "Invalid query", 429 "Too
// Many Requests" when the rate limit rule that applies to the user
// (Options.RateLimitPerHour for all users, Options.RateLimitRules per user
// or role) is spent; requests a rule matches carry X-RateLimit-Limit,
// X-RateLimit-Reset and X-RateLimit-Rule, a 429 also Retry-After
// (ratelimit.go).
//
// The sandbox never logs tokens or assertions. Every exported method is safe
// for concurrent use.
package sandbox
