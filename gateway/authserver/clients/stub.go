package clients

// STUB — replaced by the clients helper. Signatures are the contract.

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/store"
)

// Options configure a Registry.
type Options struct {
	Preregistered     []ClientConfig
	Registration      RegistrationConfig
	MetadataDocuments MetadataDocumentsConfig
	Store             store.Store
	// HTTPClient fetches metadata documents; nil builds the SSRF-safe
	// default.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
	Audit      func(ctx context.Context, r *audit.Record)
}

type Registry struct{}

func New(opts Options) (*Registry, error) { return &Registry{}, nil }
func (r *Registry) Resolve(ctx context.Context, clientID string) (*Client, *Error) {
	return nil, &Error{Status: 400, Code: "invalid_client", Description: "stub"}
}
func (c *Client) RedirectAllowed(uri string) bool { return false }
func (r *Registry) Authenticate(req *http.Request) (*Client, *Error) {
	return nil, &Error{Status: 401, Code: "invalid_client", Description: "stub"}
}
func (r *Registry) RegisterHandler() http.Handler   { return http.NotFoundHandler() }
func (r *Registry) Sweep(ctx context.Context) error { return nil }
