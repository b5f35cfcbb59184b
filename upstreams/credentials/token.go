package credentials

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/internal/secret"
)

// Token is a platform token obtained for one user (or, for
// client_credentials, for Mandate's service account) on one upstream. It is
// shared between callers: never modify one.
type Token struct {
	// AccessToken is what goes into Authorization: Bearer.
	AccessToken secret.String
	// TokenType is the token_type of the response (Bearer, or N_A for RFC
	// 8693 tokens that are not access tokens).
	TokenType string
	// IssuedTokenType is the RFC 8693 issued_token_type, if any.
	IssuedTokenType string
	// Expiry is when the token expires; zero when the server did not say
	// (expires_in absent, as with Salesforce).
	Expiry time.Time
	// Scope is the scope the server granted, if it said.
	Scope string
	// Extra holds the response's other fields (Salesforce instance_url, id,
	// signature, issued_at; Entra ext_expires_in). refresh_token and
	// id_token are never kept.
	Extra map[string]any
	// PlatformSubject is who the token acts as on the platform: the sub (or
	// for Entra preferred_username/upn/oid) of the issued token when it is a
	// JWT; for jwt_bearer the mapped platform username; for
	// client_credentials the client id. Empty when unknown (opaque token).
	PlatformSubject string
	// ServiceAccount is true for client_credentials: the call does not run
	// as the user.
	ServiceAccount bool
	// Flow is the flow that obtained the token.
	Flow string
}

// ExtraString returns Extra[key] when it is a string (e.g. "instance_url").
func (t *Token) ExtraString(key string) string {
	if t == nil {
		return ""
	}
	s, _ := t.Extra[key].(string)
	return s
}

// LogValue implements slog.LogValuer without the token.
func (t *Token) LogValue() slog.Value {
	if t == nil {
		return slog.StringValue("none")
	}
	return slog.GroupValue(
		slog.String("flow", t.Flow),
		slog.String("platform_subject", t.PlatformSubject),
		slog.Bool("service_account", t.ServiceAccount),
		slog.Time("expiry", t.Expiry),
	)
}

// Result is what Source.Token returns.
type Result struct {
	// Token is nil for flow none (send no credentials).
	Token *Token
	// CacheHit reports that the token came from the cache.
	CacheHit bool
}

// Source obtains a token for the identity in ctx (identity.FromContext) on
// one upstream. Implementations are safe for concurrent use.
type Source interface {
	// Token returns a valid token for the caller. It returns promptly when
	// ctx is done even if an exchange shared with other callers continues.
	// Token endpoint failures are *Error.
	Token(ctx context.Context) (Result, error)
	// Invalidate drops the caller's cached token when it is still stale (the
	// token an upstream just refused); a nil stale drops whatever is cached
	// for the caller. The next Token call exchanges again.
	Invalidate(ctx context.Context, stale *Token)
}

// Error is a failure to obtain a platform token. Error() is written for the
// MCP user and never contains a token, assertion or secret.
type Error struct {
	// Upstream and Flow say where it happened.
	Upstream, Flow string
	// Code is the OAuth error code (RFC 6749 §5.2: invalid_grant,
	// invalid_client, invalid_target, interaction_required, ...); empty for
	// transport failures and non-OAuth answers.
	Code string
	// Description is the server's error_description, sanitised and cut to
	// one line.
	Description string
	// Status is the token endpoint's HTTP status; 0 when none was received.
	Status int
	// Interaction is true when the user must act: sign in again, complete
	// MFA, or consent (interaction_required, consent_required,
	// login_required, invalid_grant with AADSTS65001 or a claims challenge).
	// Such errors are never cached.
	Interaction bool
	// Consent is true when consent is what is missing (consent_required,
	// AADSTS65001).
	Consent bool
	// Claims is the Entra claims challenge to pass back to the client.
	Claims string
	// Retryable is true for transport failures, 5xx and 429.
	Retryable bool
	// User is the IdP subject of the caller (not a secret), for messages.
	User string
	// Err is the underlying cause (network error, context error, mapping
	// problem), if any.
	Err error
	// Hint, when set, is what the platform's documented answer means and
	// who must act (the jwt_bearer flow sets it for the platforms it knows,
	// see Config.Platform); it replaces the generic explanation.
	Hint string
	// redirectTo is the Location of a refused redirect (no query, fragment
	// or user info), for the operational log; never shown to users.
	redirectTo string
}

func (e *Error) Unwrap() error { return e.Err }

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "credentials for upstream %q", e.Upstream)
	if e.User != "" {
		fmt.Fprintf(&b, " (user %q)", e.User)
	}
	b.WriteString(": ")
	var cre *ConsentRequiredError
	if errors.As(e.Err, &cre) { // the user's own consent is missing: say only that
		b.WriteString(cre.Error())
		return b.String()
	}
	what := e.Code
	if e.Description != "" {
		if what != "" {
			what += ": "
		}
		what += e.Description
	}
	switch {
	case e.Hint != "":
		b.WriteString(e.Hint)
	case e.Consent:
		fmt.Fprintf(&b, "consent is required before Mandate may act for you on %s; ask an administrator to grant consent to the Mandate application for this upstream (or sign in again and accept the consent prompt), then retry", e.Upstream)
	case e.Interaction:
		b.WriteString("the identity provider requires you to sign in again (for example to complete multi-factor authentication or a conditional-access requirement); reconnect your MCP client to Mandate, sign in, then retry")
	case e.Code == "invalid_client" || e.Code == "unauthorized_client":
		b.WriteString("the token service rejected Mandate's own client credentials for this upstream; this is a gateway configuration problem, not yours — report it to the Mandate administrators")
	case e.Code == "invalid_target":
		b.WriteString("the token service refuses to issue tokens for this upstream's audience/resource to Mandate; ask the platform team to allow Mandate to exchange tokens for it")
	case e.Code == "invalid_scope":
		b.WriteString("the token service refused the requested scopes; ask the platform team to review this upstream's credentials.scopes")
	case e.Code == "invalid_grant":
		if ft := lookupFlow(e.Flow); ft != nil && ft.reads("subject") { // Mandate named the platform user
			b.WriteString("the platform refused to issue a token for your platform account (it may not exist, be inactive, or not be pre-authorised for the Mandate integration); ask the platform's administrators")
		} else {
			b.WriteString("the token service refused your sign-in token (it may be expired or revoked); sign in to Mandate again, then retry")
		}
	case e.Code == "access_denied":
		b.WriteString("the token service denied the exchange for your account; ask the platform team for access")
	case errors.Is(e.Err, ErrUnverifiedEmail):
		b.WriteString("this upstream identifies you by your email address, and your identity provider has not marked it verified; verify your email address with your identity provider and sign in again, or ask the Mandate administrators to map your account by an immutable id")
	case e.Code == "temporarily_unavailable" || e.Retryable:
		b.WriteString("the token service is unavailable; retry later")
	case e.Code != "":
		b.WriteString("the token service refused the request")
	default:
		b.WriteString("could not obtain a platform token")
	}
	if what != "" {
		fmt.Fprintf(&b, " [%s]", what)
	}
	if e.Status != 0 {
		fmt.Fprintf(&b, " (HTTP %d)", e.Status)
	}
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	return b.String()
}
