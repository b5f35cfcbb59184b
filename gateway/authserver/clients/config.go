package clients

import (
	"time"

	"github.com/mandate-gw/mandate/internal/secret"
)

// RegistrationConfig is dynamic client registration.
type RegistrationConfig struct {
	// Policy: open (anyone may register), token (an initial access token
	// is required), off. Default open.
	Policy string `yaml:"policy"`
	// InitialAccessToken is required with policy token (${ENV}).
	InitialAccessToken secret.String `yaml:"initial_access_token"`
	// UnusedTTL deletes registrations unused for this long. Default 720h.
	UnusedTTL time.Duration `yaml:"unused_ttl"`
}

// MetadataDocumentsConfig is client ID metadata documents (CIMD).
type MetadataDocumentsConfig struct {
	// Disabled turns CIMD support off (metadata then says
	// client_id_metadata_document_supported: false).
	Disabled bool `yaml:"disabled"`
	// AllowLoopbackHTTP lets client_id be an http://127.0.0.1 URL (the demo
	// and tests). Elsewhere client ids must be https and resolve to public
	// addresses.
	AllowLoopbackHTTP bool `yaml:"allow_loopback_http"`
	// AllowedHosts, if set, restricts metadata documents to these hosts
	// (exact, or *.example.com).
	AllowedHosts []string `yaml:"allowed_hosts"`
}

// ClientConfig is a pre-registered client.
type ClientConfig struct {
	ClientID     string   `yaml:"client_id"`
	ClientName   string   `yaml:"client_name"`
	RedirectURIs []string `yaml:"redirect_uris"`
	// ClientSecret makes it a confidential client (client_secret_basic or
	// client_secret_post); without it the client is public (PKCE only).
	ClientSecret     secret.String `yaml:"client_secret"`
	ClientSecretFile string        `yaml:"client_secret_file"`
	// SkipConsent: the organisation approved this client for everyone.
	SkipConsent bool `yaml:"skip_consent"`
}
