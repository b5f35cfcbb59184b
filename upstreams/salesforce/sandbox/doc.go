// Package sandbox is a small, faithful stand-in for a Salesforce org, built
// from Salesforce's public API documentation. Tests and `mandate-demo` run it
// in-process (it is an http.Handler) to exercise the Salesforce adapter as
// different users without a real org.
//
// What it serves:
//
//   - POST /services/oauth2/token — the OAuth 2.0 JWT bearer flow
//     (grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer) for registered
//     connected apps: RS256 only, signature checked against the app's
//     certificate/public key, iss = consumer key, sub = a pre-authorized
//     username, aud = a configured login URL, exp present, not passed and at
//     most three minutes ahead. No refresh token is issued. Also the client
//     credentials flow (grant_type=client_credentials) for apps that name a
//     run-as user, the way Salesforce's "Client Credentials Flow" does.
//     Errors use Salesforce's wording: invalid_client_id "client identifier
//     invalid", invalid_grant "invalid assertion", "audience is invalid",
//     "expired authorization code", "user hasn't approved this consumer",
//     "inactive user", invalid_client "invalid client credentials",
//     invalid_grant "no client credentials user enabled",
//     unsupported_grant_type "grant type not supported".
//   - POST /services/oauth2/revoke, GET /services/oauth2/userinfo and the
//     identity URL GET /id/{orgId}/{userId} returned as "id".
//   - GET /services/data/ (versions), and under /services/data/vNN.N/:
//     query?q=SOQL, query/{locator} (nextRecordsUrl pages), search?q=SOSL,
//     sobjects/{type}/{id}[?fields=a,b], sobjects/{type}/describe (fields,
//     picklist values, child relationships; describe.go),
//     sobjects/{type}/{id}/{relationship}[?fields=a,b] (the parent record,
//     or the child records under sharing; related.go) and recent (the
//     user's recently viewed records, Seed.RecentlyViewed; recent.go);
//     writes (dml.go): POST
//     sobjects/{type}/ (201 {"id","errors":[],"success":true}) and PATCH
//     sobjects/{type}/{id} (204) for Account, Contact, Lead, Opportunity,
//     Case and Task.
//
// Field-level security: User.HiddenFields are absent from describe and
// from records read without a field list; naming one is INVALID_FIELD
// (fls.go). DefaultSeed hides Account.AnnualRevenue from the sales reps.
//
// Writes run as the user. Edit access follows the organization-wide
// default (Public Read/Write grants it; under Public Read Only and Private
// only the owner and users above the owner's role may edit; a contact
// under Controlled by Parent is editable when its account is), otherwise
// 400 INSUFFICIENT_ACCESS_OR_READONLY. Field rules follow the describe:
// system fields and fields the user's profile may only read
// (User.ReadOnlyFields, SetReadOnlyFields: field-level security) answer
// INVALID_FIELD_FOR_INSERT_UPDATE "Unable to create/update fields: …";
// missing required fields (Contact LastName, Lead LastName and Company,
// Opportunity Name/StageName/CloseDate) REQUIRED_FIELD_MISSING; a value
// outside a restricted picklist INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST; a
// lookup to the wrong kind of record FIELD_INTEGRITY_EXCEPTION ("id value
// of incorrect type"), to a record the user cannot see
// INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY; every error body is the
// documented [{"message","errorCode","fields"}]. Object permissions are
// User.Objects for writes too (no separate create/edit permission). Tasks
// (activities) are private to their owner and the role hierarchy; leads
// are Public Read/Write/Transfer. Ownership is never transferred.
//
// Sharing follows Salesforce's organization-wide defaults (Seed.Sharing,
// SharingModel) plus ownership and the role hierarchy. By default the org
// has a new org's defaults (DefaultSharing): opportunities Public Read
// Only, accounts Public Read/Write, cases Public Read/Write/Transfer,
// contacts Controlled by Parent — so every user reads every opportunity,
// as in most real orgs. Under Private (PrivateSharing) a user sees the
// records they own and the records owned by users whose role is below
// theirs (transitively); peers in the same role do not see each other's
// records. A record a user cannot see is absent from query and search
// results, and GET by id answers 404 NOT_FOUND (Salesforce does not
// disclose that it exists). Users are readable by everyone.
//
// SOQL's USING SCOPE narrows a query within what the user may see: mine
// (records the user owns), team (records owned by the user's direct and
// indirect reports in the role hierarchy; Account and Opportunity) and
// everything; API version 32.0 and later.
//
// Object permissions come from User.Objects: nil means every object, a
// non-nil empty slice means none — the "Minimum Access - API Only
// Integrations" profile of the seeded integration user. Querying an object
// the user has no permission on answers 400 INVALID_TYPE ("sObject type
// 'Opportunity' is not supported…"), which is how Salesforce refuses a
// service account's token for user data.
//
// REST errors are JSON arrays as documented:
// [{"message":"Session expired or invalid","errorCode":"INVALID_SESSION_ID"}]
// (401), MALFORMED_QUERY / INVALID_FIELD / INVALID_TYPE (400),
// INVALID_QUERY_LOCATOR (400), NOT_FOUND (404), METHOD_NOT_ALLOWED (405) and
// REQUEST_LIMIT_EXCEEDED (403, past Options.DailyRequestLimit, default
// DefaultDailyRequestLimit). Every authenticated REST response carries
// Sforce-Limit-Info: api-usage=used/limit. A version outside
// MinVersion..LatestVersion (v66.0) answers 404 NOT_FOUND.
//
// Usage:
//
//	key, _ := rsa.GenerateKey(rand.Reader, 2048)
//	sb := sandbox.New(&sandbox.Options{Apps: []sandbox.ConnectedApp{{
//		ConsumerKey:   "mandate-test",
//		PublicKey:     &key.PublicKey,
//		PreAuthorized: []string{"rep@acme.example", "manager@acme.example"},
//	}}})
//	ts := httptest.NewServer(sb)
//	// sign {iss: "mandate-test", sub: "rep@acme.example",
//	//       aud: "https://login.salesforce.com", exp: now+2m} with key (RS256)
//	// and POST it to ts.URL+"/services/oauth2/token".
//
// The sandbox never logs tokens or assertions. Every exported method is safe
// for concurrent use.
package sandbox
