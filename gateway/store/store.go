// Package store is Mandate's persistent state: what must outlive a process
// and be shared by replicas. Today it holds the authorization server's
// state (OAuth clients, authorization codes, refresh-token families,
// consents, IdP sessions, signing keys); per-user platform grants (issue 16)
// go here too.
//
// Two drivers implement one Store: embedded SQLite (modernc.org/sqlite, pure
// Go) for one replica, PostgreSQL (pgx) for several. One contract suite runs
// against both. Secrets at rest are sealed with AES-GCM under a key ring
// with key ids (Sealer); tokens the store only needs to recognise (codes,
// refresh tokens, client secrets) are stored as SHA-256 hashes, never in
// the clear.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every driver returns (wrapped or not; test with errors.Is).
var (
	// ErrNotFound: no such row (or it expired).
	ErrNotFound = errors.New("store: not found")
	// ErrUsed: a single-use value (authorization code) was presented again.
	ErrUsed = errors.New("store: already used")
	// ErrReused: a refresh token that was already rotated was presented
	// again; the driver has revoked its whole family.
	ErrReused = errors.New("store: refresh token reused; family revoked")
	// ErrRevoked: the family (or IdP session) was revoked.
	ErrRevoked = errors.New("store: revoked")
	// ErrConflict: a row with that key exists.
	ErrConflict = errors.New("store: conflict")
)

// Client is an OAuth client of Mandate's authorization server that Mandate
// registered (dynamic registration) or cached (client ID metadata
// documents are cached by the fetcher, not here). Pre-registered clients
// come from config and are not stored.
type Client struct {
	ID string
	// Metadata is the client's registered metadata (RFC 7591 JSON), as
	// Mandate accepted it.
	Metadata []byte
	// SecretHash is SHA-256 of the client secret; nil for public clients.
	SecretHash []byte
	CreatedAt  time.Time
	// LastUsedAt is bumped (at most once a minute) when the client is used;
	// registrations unused for authorization_server.registration.unused_ttl
	// are deleted.
	LastUsedAt time.Time
}

// Code is an authorization code, stored by hash, single use.
type Code struct {
	Hash     []byte // SHA-256 of the code
	ClientID string
	// SessionID is the IdP session the user signed in with.
	SessionID     string
	RedirectURI   string
	CodeChallenge string // S256
	Resource      string
	Scope         string
	// FamilyID is the refresh-token family the code's redemption creates;
	// it is chosen when the code is made so that a replayed code can revoke
	// what its first redemption issued.
	FamilyID  string
	ExpiresAt time.Time
}

// Refresh is one refresh token of a family. A family is one grant (client,
// user, IdP session, scope); each rotation replaces the family's current
// token; presenting a rotated one revokes the family (reuse detection,
// RFC 9700 §4.14.2).
type Refresh struct {
	Hash      []byte // SHA-256 of the refresh token
	FamilyID  string
	ClientID  string
	SessionID string
	Issuer    string // the user's IdP issuer and subject
	Subject   string
	Scope     string
	Resource  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// Consent is a user's approval of a client.
type Consent struct {
	Issuer, Subject, ClientID string
	Scope                     string
	GrantedAt                 time.Time
	ExpiresAt                 time.Time
}

// IdPSession is a user's sign-in at the company IdP through Mandate. Its
// tokens are secrets: drivers seal AccessToken, RefreshToken and IDToken
// with the Sealer and never store them in the clear.
type IdPSession struct {
	ID      string
	Issuer  string
	Subject string
	// Claims are the verified claims the identity is built from (JSON): the
	// IdP access token's at sign-in or refresh, or an ID-JAG's. Not secret,
	// but personal data: drivers seal them too.
	Claims []byte
	// Kind is "login" (browser sign-in; RefreshToken may be set) or
	// "id_jag" (Enterprise-Managed Authorization; AccessToken is the
	// ID-JAG, no refresh).
	Kind         string
	AccessToken  string
	RefreshToken string
	IDToken      string
	// TokenExpiry is the access token's expiry.
	TokenExpiry time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
	// Revoked is set when the IdP refused to refresh (user disabled,
	// session revoked) or an admin purged the user.
	Revoked bool
}

// SigningKey is one of Mandate's token-signing keys. Private is sealed at
// rest. Replicas share the keys through the store.
type SigningKey struct {
	ID        string // the JWK kid
	Algorithm string // ES256
	Private   []byte // PKCS#8 DER
	CreatedAt time.Time
	// RetiredAt: no longer used to sign; still published until
	// RetiredAt + the longest token lifetime.
	RetiredAt time.Time
}

// Store is the persistent state. Every method is safe for concurrent use,
// across goroutines and across replicas sharing one database.
type Store interface {
	// Grants are per-user platform grants (grants.go).
	Grants

	// Clients (dynamic registration).
	PutClient(ctx context.Context, c Client) error // ErrConflict if the id exists
	GetClient(ctx context.Context, id string) (Client, error)
	TouchClient(ctx context.Context, id string, at time.Time) error
	// DeleteClientsUnusedSince deletes registrations whose LastUsedAt is
	// before t (and their refresh families); returns how many.
	DeleteClientsUnusedSince(ctx context.Context, t time.Time) (int, error)

	// Codes. TakeCode atomically marks the code used and returns it; a
	// second TakeCode of the same hash returns the code and ErrUsed (so the
	// caller can revoke code.FamilyID). An expired code is ErrNotFound.
	PutCode(ctx context.Context, c Code) error
	TakeCode(ctx context.Context, hash []byte, now time.Time) (Code, error)

	// Refresh tokens. PutRefresh starts a family (or adds its first token).
	// RotateRefresh atomically replaces the family's current token oldHash
	// by next (next.FamilyID must equal the family's) and returns the old
	// row: ErrReused (family revoked) when oldHash was already rotated,
	// ErrRevoked when the family was revoked, ErrNotFound when unknown or
	// expired.
	PutRefresh(ctx context.Context, r Refresh) error
	RotateRefresh(ctx context.Context, oldHash []byte, next Refresh, now time.Time) (Refresh, error)
	// LookupRefresh returns the family's row for a current token without
	// rotating (for revocation: RFC 7009).
	LookupRefresh(ctx context.Context, hash []byte) (Refresh, error)
	RevokeFamily(ctx context.Context, familyID string) error
	// FamilyRevoked reports whether a family is revoked (access tokens of a
	// revoked family are refused).
	FamilyRevoked(ctx context.Context, familyID string) (bool, error)
	// RevokedFamiliesSince lists families revoked at or after t, for
	// replicas to refresh their in-memory revocation sets.
	RevokedFamiliesSince(ctx context.Context, t time.Time) ([]string, error)

	// Consents, keyed by (Issuer, Subject, ClientID).
	PutConsent(ctx context.Context, c Consent) error
	GetConsent(ctx context.Context, issuer, subject, clientID string) (Consent, error)

	// IdP sessions.
	PutIdPSession(ctx context.Context, s IdPSession) error // insert or replace
	GetIdPSession(ctx context.Context, id string) (IdPSession, error)
	// RevokeUser revokes every IdP session and refresh family of the user
	// and deletes their consents and platform grants (DELETE
	// /admin/users/{subject}).
	RevokeUser(ctx context.Context, issuer, subject string) error

	// Signing keys, newest first; RetiredAt zero = active.
	PutSigningKey(ctx context.Context, k SigningKey) error
	SigningKeys(ctx context.Context) ([]SigningKey, error)
	RetireSigningKey(ctx context.Context, id string, at time.Time) error

	// UseJTI records a single-use assertion id until exp; false if it was
	// recorded already (ID-JAG replay).
	UseJTI(ctx context.Context, issuer, jti string, exp time.Time) (bool, error)

	// Sweep deletes expired codes, refresh rows, consents and JTIs.
	Sweep(ctx context.Context, now time.Time) error

	// Lock takes a lock named name that excludes its other holders on
	// every replica sharing the database, until unlock (lock.go).
	Lock(ctx context.Context, name string) (unlock func(), err error)

	// Ping reports whether the database answers (readiness).
	Ping(ctx context.Context) error
	Close() error
}
