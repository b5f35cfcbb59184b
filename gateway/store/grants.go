package store

import (
	"context"
	"time"
)

// Grant is one user's grant at one upstream's authorization server (issue
// 16: per-user grants for platforms that do not trust the company IdP),
// obtained by the user's own consent (authorization code + PKCE). It is
// keyed by the user (IdP issuer and subject) and the upstream with a
// digest of its credential configuration: a grant is never used for
// anyone else, nor after the upstream's authorization server or client
// changed. AccessToken and RefreshToken are sealed by the store.
type Grant struct {
	Issuer, Subject string // the user
	Upstream        string // upstream name
	ConfigDigest    string // digest of the upstream's credential configuration
	// ClientID is Mandate's client id at the platform's authorization
	// server (configured, registered, or a metadata document URL).
	ClientID     string
	AccessToken  string
	RefreshToken string
	TokenType    string
	Expiry       time.Time // the access token's; zero when unknown
	Scope        string    // space-separated, as granted
	// PlatformSubject is the user's identity at the platform, as far as
	// Mandate learnt it (token response, introspection, id_token, userinfo).
	PlatformSubject string
	CreatedAt       time.Time
	LastUsedAt      time.Time
	// Broken is set when the platform refused the refresh token
	// (invalid_grant): the user must connect again. BrokenReason says why.
	Broken       bool
	BrokenReason string
}

// OutboundClient is Mandate's registration as a client at a platform's
// authorization server (dynamic registration), shared by replicas.
// Metadata is the registration response (JSON, sealed: it may hold a
// client secret).
type OutboundClient struct {
	Issuer    string // the authorization server's issuer
	Key       string // what Mandate registered (redirect URI etc.), so a change re-registers
	Metadata  []byte
	CreatedAt time.Time
}

// Grants is the grant part of the Store.
type Grants interface {
	// PutGrant inserts or replaces the grant of (Issuer, Subject,
	// Upstream) — a new consent replaces a broken or older grant.
	PutGrant(ctx context.Context, g Grant) error
	// GetGrant returns the user's grant at upstream (ErrNotFound).
	GetGrant(ctx context.Context, issuer, subject, upstream string) (Grant, error)
	// ListGrants returns every grant of the user (for "My connections").
	ListGrants(ctx context.Context, issuer, subject string) ([]Grant, error)
	// DeleteGrant removes the user's grant at upstream (disconnect);
	// ErrNotFound when there was none.
	DeleteGrant(ctx context.Context, issuer, subject, upstream string) error
	// UpdateGrant runs fn with the current grant under a lock that
	// excludes every other UpdateGrant of the same grant, on every replica
	// (PostgreSQL: SELECT … FOR UPDATE in a transaction; SQLite: the single
	// writer), and stores what fn returns. fn may call the platform's token
	// endpoint while the lock is held: that is the single flight across
	// replicas for refreshes (a rotated refresh token is never replayed).
	// fn returning an error stores nothing and returns it. ErrNotFound when
	// there is no grant (fn is not called). fn is called at most once;
	// waiting for the lock ends with ctx, but once fn succeeded its result
	// is stored even if ctx ended meanwhile (a rotated refresh token is
	// never lost). fn must not change the key, and must not write to the
	// Store: on SQLite fn holds the database's single writer, so every
	// other write of the process waits for fn (one replica; bound fn by
	// the token endpoint's timeout).
	UpdateGrant(ctx context.Context, issuer, subject, upstream string, fn func(Grant) (Grant, error)) (Grant, error)
	// TouchGrant bumps LastUsedAt (at most once a minute); ErrNotFound
	// when there is no grant.
	TouchGrant(ctx context.Context, issuer, subject, upstream string, at time.Time) error

	// Outbound client registrations at platform authorization servers.
	PutOutboundClient(ctx context.Context, c OutboundClient) error
	GetOutboundClient(ctx context.Context, issuer, key string) (OutboundClient, error)

	// Notify publishes payload on channel to every replica's Listen
	// (PostgreSQL NOTIFY; SQLite: this Store only). Listen delivers
	// until ctx ends (or the Store is closed), then closes the channel;
	// it returns once subscribed, so a later Notify is delivered. Used to
	// make a disconnect or an admin revoke take effect on every replica
	// within a second.
	//
	// Channels are lower-case identifiers ([a-z][a-z0-9_]*, ≤ 63 bytes);
	// payloads are 1 to MaxNotifyPayload (7999) bytes of UTF-8 without
	// NUL. Listen delivers an EMPTY payload when notifications may have
	// been lost (its PostgreSQL connection dropped and was re-established;
	// an in-process backlog overflowed): the subscriber should then resync
	// (e.g. drop every cached platform token). See notify.go.
	Notify(ctx context.Context, channel, payload string) error
	Listen(ctx context.Context, channel string) (<-chan string, error)
}
