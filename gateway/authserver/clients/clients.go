// Package clients resolves the OAuth clients of Mandate's authorization
// server: pre-registered ones (config), client ID metadata documents
// (client_id is an https URL; Mandate fetches it safely) and dynamic
// registrations (RFC 7591, stored in the store). It also matches redirect
// URIs and authenticates clients at the token endpoint.
package clients

// Kinds of client (Client.Kind; audit records name them).
const (
	KindPreregistered    = "preregistered"
	KindMetadataDocument = "metadata_document"
	KindDynamic          = "dynamic"
)

// Client is a resolved client.
type Client struct {
	ID           string
	Name         string
	Kind         string
	RedirectURIs []string
	// URI is client_uri from its metadata, if any (shown on the consent
	// page beside the origin of its redirect URI).
	URI string
	// Public: no secret; PKCE alone protects its codes.
	Public      bool
	SkipConsent bool
	// GrantTypes it registered (authorization_code, refresh_token, ...).
	GrantTypes []string
}

// Error is an OAuth error: Code is the RFC 6749 error code
// (invalid_client, invalid_request, invalid_redirect_uri,
// invalid_client_metadata, ...), Description is safe to show the client,
// Status the HTTP status.
type Error struct {
	Status      int
	Code        string
	Description string
	// WWWAuthenticate, when set, is the response's WWW-Authenticate header
	// (Basic after a failed client_secret_basic, RFC 6749 §5.2). Write
	// sets it.
	WWWAuthenticate string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }
