package clients

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/secret"
)

// Options configure a Registry. The zero value of every field but Store
// works (Store is needed for dynamic registration).
type Options struct {
	Preregistered     []ClientConfig
	Registration      RegistrationConfig
	MetadataDocuments MetadataDocumentsConfig
	Store             store.Store
	// HTTPClient fetches metadata documents; nil builds the SSRF-safe
	// default (NewMetadataClient). Whatever client is given, redirects are
	// never followed.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Now        func() time.Time
	Audit      func(ctx context.Context, r *audit.Record)
}

// touchEvery is how often a dynamic client's LastUsedAt is bumped at most.
const touchEvery = time.Minute

// UnnamedClient is Client.Name of a dynamically registered client that
// sent no client_name.
const UnnamedClient = "unnamed client"

// Registry resolves client ids. Its methods are safe for concurrent use.
type Registry struct {
	prereg map[string]*preregistered
	reg    RegistrationConfig
	cimd   *fetcher // nil: metadata documents are off
	store  store.Store
	log    *slog.Logger
	now    func() time.Time
	audit  func(ctx context.Context, r *audit.Record)
	// iatHash is SHA-256 of the initial access token (policy token).
	iatHash []byte
	// limits bound registrations per client address (nil: no bound).
	limits *lru.Cache[string, *rate.Limiter]
}

type preregistered struct {
	client     Client
	secretHash []byte // nil: public
}

// New builds a Registry. It validates the configuration it is given and
// reads client_secret_file.
func New(opts Options) (*Registry, error) {
	reg := opts.Registration.WithDefaults()
	md := opts.MetadataDocuments.WithDefaults()
	if err := errors.Join(
		reg.Validate("registration"),
		md.Validate("metadata_documents"),
		ValidateClients("clients", opts.Preregistered),
	); err != nil {
		return nil, err
	}
	if opts.Store == nil && reg.Policy != PolicyOff {
		return nil, errors.New("clients: dynamic client registration needs a store (or registration.policy: off)")
	}
	r := &Registry{
		prereg: map[string]*preregistered{},
		reg:    reg,
		store:  opts.Store,
		log:    opts.Logger,
		now:    opts.Now,
		audit:  opts.Audit,
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if reg.Policy == PolicyToken {
		h := sha256.Sum256([]byte(reg.InitialAccessToken.Reveal()))
		r.iatHash = h[:]
	}
	if reg.PerMinute > 0 {
		r.limits, _ = lru.New[string, *rate.Limiter](registrationLimitAddrs)
	}
	for _, cc := range opts.Preregistered {
		cc = cc.WithDefaults()
		p := &preregistered{client: Client{
			ID:           cc.ClientID,
			Name:         cc.ClientName,
			Kind:         KindPreregistered,
			RedirectURIs: append([]string(nil), cc.RedirectURIs...),
			SkipConsent:  cc.SkipConsent,
			GrantTypes:   []string{GrantAuthorizationCode, GrantRefreshToken},
		}}
		sec := cc.ClientSecret
		if cc.ClientSecretFile != "" {
			b, err := secret.ReadFile(cc.ClientSecretFile)
			if err != nil {
				return nil, fmt.Errorf("clients[%s].client_secret_file: %w", cc.ClientID, err)
			}
			sec = secret.String(strings.TrimSpace(string(b)))
			if sec.IsZero() {
				return nil, fmt.Errorf("clients[%s].client_secret_file: %s is empty", cc.ClientID, cc.ClientSecretFile)
			}
		}
		if !sec.IsZero() {
			h := sha256.Sum256([]byte(sec.Reveal()))
			p.secretHash = h[:]
		}
		p.client.Public = p.secretHash == nil
		r.prereg[cc.ClientID] = p
	}
	if !md.Disabled {
		r.cimd = newFetcher(md, opts.HTTPClient, r.log, r.now)
	}
	return r, nil
}

// RegistrationEnabled reports whether the registration endpoint accepts
// registrations (policy open or token): the metadata lists
// registration_endpoint only then.
func (r *Registry) RegistrationEnabled() bool { return r.reg.Policy != PolicyOff }

// MetadataDocumentsEnabled reports whether client ID metadata documents
// are accepted (client_id_metadata_document_supported).
func (r *Registry) MetadataDocumentsEnabled() bool { return r.cimd != nil }

// Resolve returns the client clientID names: a pre-registered client, a
// client ID metadata document (fetched, or from the cache), or a dynamic
// registration. Errors are invalid_client (status 400) and say why.
func (r *Registry) Resolve(ctx context.Context, clientID string) (*Client, *Error) {
	c, _, e := r.resolve(ctx, clientID)
	return c, e
}

// resolve also returns the client's secret hash (nil: public).
func (r *Registry) resolve(ctx context.Context, clientID string) (*Client, []byte, *Error) {
	switch {
	case clientID == "":
		return nil, nil, invalidClient("client_id is missing")
	case len(clientID) > maxClientIDLen:
		return nil, nil, invalidClient(fmt.Sprintf("client_id is longer than %d characters", maxClientIDLen))
	}
	if p, ok := r.prereg[clientID]; ok {
		c := p.client
		return &c, p.secretHash, nil
	}
	if isURLClientID(clientID) {
		if r.cimd == nil {
			return nil, nil, invalidClient(fmt.Sprintf("client_id %s is a URL, but this server does not accept client ID metadata documents", clip(clientID)))
		}
		c, err := r.cimd.resolve(ctx, clientID)
		if err != nil {
			return nil, nil, invalidClient(fmt.Sprintf("client metadata document %s: %v", clip(clientID), err))
		}
		return c, nil, nil
	}
	return r.resolveDynamic(ctx, clientID)
}

func (r *Registry) resolveDynamic(ctx context.Context, clientID string) (*Client, []byte, *Error) {
	if r.store == nil {
		return nil, nil, unknownClient(clientID)
	}
	row, err := r.store.GetClient(ctx, clientID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, unknownClient(clientID)
	}
	if err != nil {
		r.log.ErrorContext(ctx, "reading a registered client", "client_id", clip(clientID), "error", err)
		return nil, nil, &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the client registry is unavailable; try again"}
	}
	var md metadata
	if err := json.Unmarshal(row.Metadata, &md); err != nil {
		r.log.ErrorContext(ctx, "a registered client's metadata does not decode", "client_id", clip(clientID), "error", err)
		return nil, nil, invalidClient("the client's registration is damaged; register again")
	}
	c := &Client{
		ID:           row.ID,
		Name:         md.ClientName,
		Kind:         KindDynamic,
		RedirectURIs: md.RedirectURIs,
		URI:          md.ClientURI,
		Public:       row.SecretHash == nil,
		GrantTypes:   md.GrantTypes,
	}
	if c.Name == "" {
		c.Name = UnnamedClient
	}
	if now := r.now(); now.Sub(row.LastUsedAt) >= touchEvery {
		if err := r.store.TouchClient(ctx, clientID, now); err != nil {
			r.log.WarnContext(ctx, "recording a client's use", "client_id", clip(clientID), "error", err)
		}
	}
	return c, row.SecretHash, nil
}

// Sweep deletes dynamic registrations unused for registration.unused_ttl.
func (r *Registry) Sweep(ctx context.Context) error {
	if r.store == nil {
		return nil
	}
	n, err := r.store.DeleteClientsUnusedSince(ctx, r.now().Add(-r.reg.UnusedTTL))
	if err != nil {
		return fmt.Errorf("sweeping unused client registrations: %w", err)
	}
	if n > 0 {
		r.log.InfoContext(ctx, "deleted unused client registrations", "count", n, "unused_for", r.reg.UnusedTTL.String())
	}
	return nil
}

// isURLClientID: a client_id that is meant as a metadata document URL.
func isURLClientID(id string) bool {
	l := strings.ToLower(id)
	return strings.HasPrefix(l, "https:") || strings.HasPrefix(l, "http:")
}

func invalidClient(desc string) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "invalid_client", Description: desc}
}

func unknownClient(id string) *Error {
	return invalidClient(fmt.Sprintf("unknown client_id %q: register the client first (dynamic registration or a client ID metadata document URL)", clip(id)))
}

// clip shortens what a client sent before it goes into an error or a log.
func clip(s string) string {
	const n = 200
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
