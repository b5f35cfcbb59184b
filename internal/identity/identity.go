// Package identity holds the caller's identity as the gateway established it
// from the inbound bearer token. It is a leaf package: every layer (gateway,
// upstreams, policy) may import it, and it imports none of ours.
package identity

import (
	"context"
	"log/slog"
	"strings"
	"time"
)

// Identity is the authenticated end user of one MCP request.
//
// It is immutable once built: share pointers freely, never modify one after
// it has been put into a context.
type Identity struct {
	// Issuer is the token's iss claim (exact, as configured).
	Issuer string `json:"issuer"`
	// Subject is the mapped subject claim (default "sub").
	Subject string `json:"subject"`
	// Email is the mapped email claim, if any.
	Email string `json:"email,omitempty"`
	// EmailTrusted reports that the email-like claims of the token (Email,
	// and the claims EmailLikeClaim names) may identify the user: the
	// token's email_verified claim is true, or the operator declared that
	// the IdP issues only verified values (identity.trust_unverified_email).
	// Without it, anyone who can set their own email at the IdP could pose
	// as another user ("nOAuth").
	EmailTrusted bool `json:"email_trusted,omitempty"`
	// Roles and Groups are the mapped role and group claims (string or list).
	Roles  []string `json:"roles,omitempty"`
	Groups []string `json:"groups,omitempty"`
	// Scopes are the scopes the token carries (scope or scp claim).
	Scopes []string `json:"scopes,omitempty"`
	// Claims are all claims of the token, as decoded JSON.
	Claims map[string]any `json:"claims,omitempty"`
	// OAuthClient is the client a Mandate-issued token was issued to (its
	// client_id), when Mandate is the authorization server; empty for IdP
	// tokens. Audit records name it.
	OAuthClient string `json:"oauth_client,omitempty"`
	// Expiry is the token's exp; platform tokens derived from it are not
	// cached past it.
	Expiry time.Time `json:"expiry"`

	// rawToken is the inbound bearer token. It is used only as the subject
	// token of a token exchange; it is never forwarded, logged or marshalled.
	rawToken string
}

// WithRawToken returns a copy of id that carries the inbound bearer token.
func (id Identity) WithRawToken(tok string) *Identity {
	id.rawToken = tok
	return &id
}

// RawToken returns the inbound bearer token (for token exchange only).
func (id *Identity) RawToken() string { return id.rawToken }

// Key identifies the user across requests: issuer and subject.
func (id *Identity) Key() string { return id.Issuer + "\x00" + id.Subject }

// HasRole reports whether the identity has role r.
func (id *Identity) HasRole(r string) bool {
	for _, x := range id.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// EmailLikeClaim reports whether a claim name (a key or dotted path;
// namespaced names such as https://acme.example/email count by their last
// segment) holds an email address or a user-editable login name: email,
// emails, mail, anything containing "email", preferred_username, upn,
// unique_name. Such claims identify a user only when the IdP verified them.
func EmailLikeClaim(name string) bool {
	n := strings.ToLower(name)
	if i := strings.LastIndexAny(n, "/:."); i >= 0 {
		n = n[i+1:]
	}
	switch n {
	case "mail", "preferred_username", "upn", "unique_name":
		return true
	}
	return strings.Contains(n, "email")
}

// LogValue implements slog.LogValuer; it never includes the raw token or claims.
func (id *Identity) LogValue() slog.Value {
	if id == nil {
		return slog.StringValue("anonymous")
	}
	return slog.GroupValue(
		slog.String("issuer", id.Issuer),
		slog.String("subject", id.Subject),
		slog.String("email", id.Email),
	)
}

// String returns issuer and subject; never the token.
func (id *Identity) String() string {
	if id == nil {
		return "anonymous"
	}
	return id.Subject + " (" + id.Issuer + ")"
}

type ctxKey struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id *Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, id)
}

// FromContext returns the identity in ctx, or nil.
func FromContext(ctx context.Context) *Identity {
	id, _ := ctx.Value(ctxKey{}).(*Identity)
	return id
}
