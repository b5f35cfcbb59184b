package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Per-user grants (issue 16): platforms that do not trust the company IdP
// get each user's own consent once (authorization code + PKCE at the
// platform's authorization server); Mandate keeps and refreshes that
// user's grant. The flow that uses them is authorization_code
// (flow_authorization_code.go); the grants live in the gateway's storage,
// reached through GrantStore.

// GrantKey names one user's grant at one upstream. ConfigDigest is a
// digest of the upstream's credential configuration (the authorization
// server, the client, the scopes): a grant obtained under another
// configuration is not used.
type GrantKey struct {
	Issuer, Subject string
	Upstream        string
	ConfigDigest    string
}

// Grant is a user's grant as the flow sees it. Secrets are plain here;
// the store seals them.
type Grant struct {
	ClientID        string
	AccessToken     string
	RefreshToken    string
	TokenType       string
	Expiry          time.Time
	Scope           string
	PlatformSubject string
	Broken          bool
	BrokenReason    string
}

// ErrNoGrant is returned by GrantStore.Get and Update when the user has no
// grant (or one from another ConfigDigest).
var ErrNoGrant = errors.New("credentials: the user has no grant for this upstream")

// GrantStore is where grants live: the gateway implements it over its
// storage (SQLite or PostgreSQL). Safe for concurrent use.
type GrantStore interface {
	// Get returns the user's grant (ErrNoGrant).
	Get(ctx context.Context, k GrantKey) (Grant, error)
	// Update runs fn under a lock that excludes every other Update of the
	// grant on every replica, and stores fn's result: the refresh of a
	// grant happens once even when replicas race, and a rotated refresh
	// token replaces the old one atomically. ErrNoGrant when none.
	Update(ctx context.Context, k GrantKey, fn func(Grant) (Grant, error)) (Grant, error)
	// Put stores g as the user's grant, replacing any other (a new consent
	// replaces a broken grant, or one from another ConfigDigest).
	Put(ctx context.Context, k GrantKey, g Grant) error
	// Delete removes the user's grant; ErrNoGrant when there was none.
	Delete(ctx context.Context, k GrantKey) error
	// Touch records that the grant was used now (My connections shows it);
	// the store bounds how often it writes. Best effort.
	Touch(ctx context.Context, k GrantKey) error
}

// ErrNoClient is returned by ClientRegistry.GetClient when Mandate has no
// registration at the authorization server.
var ErrNoClient = errors.New("credentials: no client registration at this authorization server")

// ClientRegistry keeps Mandate's dynamic client registrations (RFC 7591)
// at platform authorization servers, shared by the replicas (the gateway
// implements it over its storage: store.OutboundClient), so that every
// replica uses one registration per authorization server. Safe for
// concurrent use.
type ClientRegistry interface {
	// GetClient returns the registration response stored for the
	// authorization server issuer under key (what Mandate registered);
	// ErrNoClient when none.
	GetClient(ctx context.Context, issuer, key string) ([]byte, error)
	// PutClient stores a registration response.
	PutClient(ctx context.Context, issuer, key string, metadata []byte) error
	// Lock takes a lock named name on every replica until unlock: the
	// replicas register Mandate at an authorization server once.
	Lock(ctx context.Context, name string) (unlock func(), err error)
}

// ConsentRequiredError says the user must connect (or reconnect) their
// account at an upstream before the call can run: there is no grant, the
// grant is broken (the platform refused its refresh token), or the call
// needs scopes the grant lacks. The dispatch turns it into a URL-mode
// elicitation (a Mandate page that takes the user through the platform's
// consent), or a tool error naming the page for clients without URL
// elicitation.
type ConsentRequiredError struct {
	Upstream string
	// Reason is "no_grant", "broken" or "insufficient_scope".
	Reason string
	// Detail is a sentence for the user (never a token).
	Detail string
	// Scopes the new consent must cover, when more are needed.
	Scopes []string
}

func (e *ConsentRequiredError) Error() string {
	switch e.Reason {
	case "broken":
		return fmt.Sprintf("your connection to %s no longer works (%s): connect again", e.Upstream, e.Detail)
	case "insufficient_scope":
		return fmt.Sprintf("%s needs more access than you granted: connect again", e.Upstream)
	default:
		return fmt.Sprintf("connect your %s account first: Mandate acts at %s only with your own consent", e.Upstream, e.Upstream)
	}
}

// Connector is what the connect pages (gateway/connect) need from an
// upstream whose flow is authorization_code: the user's side of the
// consent. The flow implements it; the gateway finds it per upstream.
type Connector interface {
	// AuthCodeURL is the platform's authorization URL that asks the user
	// to consent: state, the PKCE S256 challenge and redirectURI (Mandate's
	// callback page) are Mandate's; loginHint is passed on when non-empty.
	AuthCodeURL(ctx context.Context, state, codeChallenge, redirectURI, loginHint string) (string, error)
	// Redeem exchanges the code at the platform's token endpoint and stores
	// the user's grant (replacing a broken or older one).
	Redeem(ctx context.Context, k GrantKey, code, verifier, redirectURI string) (Grant, error)
	// Disconnect revokes the grant at the platform (RFC 7009, where it has
	// a revocation endpoint) and deletes it. Not found is not an error.
	Disconnect(ctx context.Context, k GrantKey) error
	// Key is the user's grant key at this upstream (ConfigDigest filled in).
	Key(issuer, subject string) GrantKey
	// Scopes are the scopes a consent asks for.
	Scopes() []string
}

// GrantRefresh is one refresh of a user's grant at a platform (for the
// audit chain): Broken says the platform refused it and the user must
// connect again (Reason why).
type GrantRefresh struct {
	Upstream        string
	Issuer, Subject string
	PlatformSubject string
	Broken          bool
	Reason          string
	Duration        time.Duration
}
