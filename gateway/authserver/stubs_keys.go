package authserver

// STUB — replaced by the tokens helper (keys.go, tokens.go, token.go,
// revoke.go, idjag.go). Signatures are the contract.

import (
	"context"
	"errors"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

type sessionCache struct{}

// create stores a new IdP session (sealed tokens, verified claims) and
// returns its id. kind is "login" or "id_jag".
func (c *sessionCache) create(ctx context.Context, kind string, tok *oauth2.Token, idToken string, claims map[string]any) (string, error) {
	return "", ErrSessionEnded
}

func newSessionCache(s *Server) *sessionCache { return &sessionCache{} }

// ErrSessionEnded: the IdP refused to refresh the session's tokens (user
// disabled, session revoked) or it was revoked in Mandate.
var ErrSessionEnded = errors.New("authserver: the sign-in at the identity provider has ended")

// identity returns the identity of IdP session sid, from memory on a warm
// call; it refreshes the IdP tokens when they are about to expire (single
// flight) and returns ErrSessionEnded when the IdP refuses.
func (c *sessionCache) identity(ctx context.Context, sid string) (*identity.Identity, error) {
	return nil, ErrSessionEnded
}

type keyRing struct{}

func newKeyRing(ctx context.Context, st store.Store, rotation time.Duration, now func() time.Time) (*keyRing, error) {
	return &keyRing{}, nil
}

func (s *Server) verifyAccessToken(ctx context.Context, raw string) (*identity.Identity, bool, *authn.Error) {
	return nil, false, nil
}
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request)   {}
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request)  {}
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {}
func (s *Server) run(ctx context.Context)                             {}
