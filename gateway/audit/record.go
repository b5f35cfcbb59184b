package audit

import (
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
)

// Outcomes of an operation (Record.Outcome).
const (
	OutcomeOK              = "ok"
	OutcomeDenied          = "denied"
	OutcomeError           = "error"
	OutcomeUnauthenticated = "unauthenticated"
)

// MethodAuth is Record.Method for an authentication failure (no MCP method
// was reached).
const MethodAuth = "auth"

// Methods of the authorization server's records (Mandate as its clients'
// authorization server): sign-ins at the IdP, consents, tokens issued,
// refresh-token reuse, revocations and client registrations. They are in
// the same hash chain as MCP operations; Record.OAuthClient names the
// client.
const (
	MethodOAuthLogin        = "oauth/login"
	MethodOAuthConsent      = "oauth/consent"
	MethodOAuthToken        = "oauth/token"   // a code or ID-JAG redeemed
	MethodOAuthRefresh      = "oauth/refresh" // a refresh token rotated
	MethodOAuthRefreshReuse = "oauth/refresh_reuse"
	MethodOAuthCodeReuse    = "oauth/code_reuse"
	MethodOAuthRevoke       = "oauth/revoke"
	MethodOAuthRegister     = "oauth/register"
)

// Methods of per-user grants' records (a user's own consent at a platform
// that does not trust the company IdP, gateway/connect): Record.Upstream
// names the platform's upstream, Record.Credential the flow and the
// user's platform identity.
const (
	// MethodConnectGrant: a user connected (or tried to connect) their
	// account: the platform's consent redeemed and the grant stored, or
	// refused (a link opened by someone else, the platform's refusal).
	MethodConnectGrant = "connect/grant"
	// MethodConnectDisconnect: a user disconnected (the grant revoked at
	// the platform where it can be, and deleted).
	MethodConnectDisconnect = "connect/disconnect"
	// MethodConnectRefresh: Mandate renewed a user's grant at the platform
	// (a refresh token redeemed, the rotated one stored); outcome error
	// with class grant_broken when the platform refused it (the user is
	// asked to connect again).
	MethodConnectRefresh = "connect/refresh"
)

// Record is one audited MCP operation: one JSON line in the audit log.
//
// There is deliberately no field for a token, assertion, secret or cookie.
// Error is scrubbed of anything that looks like a JWT or a bearer credential
// before it is written, as a second line of defence; callers still must not
// put secrets there. Arguments are written only when the upstream opted in,
// and the caller passes them through Redact first.
//
// The JSON keys below are a public contract (compliance tooling reads them).
type Record struct {
	// Time is when the operation started; Log sets it from the clock if zero.
	Time time.Time `json:"time"`
	// RequestID is the gateway's request id (also in the HTTP response).
	RequestID string `json:"request_id,omitempty"`
	// TraceID and SpanID tie the record to its trace; Log fills them from
	// the OpenTelemetry span in ctx when empty.
	TraceID string `json:"trace_id,omitempty"`
	SpanID  string `json:"span_id,omitempty"`
	// SessionID is the MCP session id (Mcp-Session-Id), if any.
	SessionID string `json:"session_id,omitempty"`
	// RemoteAddr is the client's address, for requests without a verified
	// MCP identity: authentication failures and admin actions.
	RemoteAddr string `json:"remote_addr,omitempty"`
	// User is the MCP identity (from the inbound token). Empty for
	// authentication failures.
	User UserRef `json:"user"`
	// Target is the user an admin action applied to (a purge), if any.
	Target *UserRef `json:"target,omitempty"`
	// Client is the client's name/version from initialize.
	Client string `json:"client,omitempty"`
	// OAuthClient is the OAuth client of Mandate's authorization server
	// that obtained the token used (its client_id: an id Mandate issued,
	// a pre-registered id, or a client ID metadata document URL), and on
	// oauth/* records the client concerned.
	OAuthClient string `json:"oauth_client,omitempty"`
	// Method is the MCP method (tools/call, tools/list, ...) or MethodAuth.
	Method string `json:"method"`
	// Upstream is the upstream's configured name; empty for methods that
	// span all upstreams (the list methods).
	Upstream string `json:"upstream,omitempty"`
	// Tool, Resource and Prompt are the names as the upstream knows them
	// (not namespaced); at most one is set.
	Tool     string `json:"tool,omitempty"`
	Resource string `json:"resource,omitempty"`
	Prompt   string `json:"prompt,omitempty"`
	// Decision is the policy decision, if policy was evaluated.
	Decision *DecisionRef `json:"decision,omitempty"`
	// Credential is how the platform token was obtained, if one was.
	Credential *CredentialRef `json:"credential,omitempty"`
	// Outcome is one of the Outcome* constants.
	Outcome string `json:"outcome"`
	// ErrorClass is a short stable class such as "upstream_timeout",
	// "policy_denied", "invalid_token"; Error is the human message.
	ErrorClass string `json:"error_class,omitempty"`
	Error      string `json:"error,omitempty"`
	// LatencyMS is the operation's duration in milliseconds.
	LatencyMS float64 `json:"latency_ms"`
	// Arguments are the call's arguments, only when the upstream opted in,
	// after Redact.
	Arguments map[string]any `json:"arguments,omitempty"`

	// Seq, PrevHash and Hash are the tamper-evidence chain; Log sets them
	// (any values the caller put there are overwritten).
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// UserRef is the MCP identity of the caller.
type UserRef struct {
	Issuer  string   `json:"issuer"`
	Subject string   `json:"subject"`
	Email   string   `json:"email,omitempty"`
	Roles   []string `json:"roles,omitempty"`
}

// UserFromIdentity returns the audit view of id: issuer, subject, email and
// roles; never the token or the other claims. A nil id gives the zero UserRef.
func UserFromIdentity(id *identity.Identity) UserRef {
	if id == nil {
		return UserRef{}
	}
	return UserRef{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, Roles: id.Roles}
}

// DecisionRef is the policy decision and the rule that made it.
type DecisionRef struct {
	Allow  bool   `json:"allow"`
	Rule   string `json:"rule,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// CredentialRef says as whom the upstream was called.
type CredentialRef struct {
	// Flow is the credential flow (token_exchange, entra_obo, jwt_bearer,
	// client_credentials, none).
	Flow string `json:"flow"`
	// PlatformSubject is the platform identity: the subject of the exchanged
	// token or the mapped platform username; for a service account its
	// client id.
	PlatformSubject string `json:"platform_subject,omitempty"`
	// ServiceAccount is true when the call ran as a service account
	// (client_credentials), not as the user.
	ServiceAccount bool `json:"service_account"`
	// CacheHit is true when the platform token came from the cache.
	CacheHit bool `json:"cache_hit"`
}
