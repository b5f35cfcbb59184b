package authserver

// STUB — replaced by the sign-in helper (authorize.go, login.go,
// consent.go, sessions.go, pages.go, metadata.go). Signatures are the
// contract.

import (
	"context"
	"errors"
	"net/http"

	"github.com/mandate-gw/mandate/internal/identity"
)

type sessionCache struct{}

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

type idpLogin struct{}

func newIDPLogin(ctx context.Context, s *Server) (*idpLogin, error) { return &idpLogin{}, nil }

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request)  {}
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {}
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request)  {}
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request)   {}
