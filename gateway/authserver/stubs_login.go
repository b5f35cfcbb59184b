package authserver

// STUB — replaced by the sign-in helper (authorize.go, login.go,
// consent.go, sessions.go, pages.go, metadata.go). Signatures are the
// contract.

import (
	"context"
	"net/http"

	"golang.org/x/oauth2"
)

type idpLogin struct{}

// refresh redeems an IdP refresh token at the IdP's token endpoint (x/oauth2,
// Mandate's client credentials). A refusal (invalid_grant: user disabled,
// session revoked) returns an error wrapping ErrSessionEnded.
func (l *idpLogin) refresh(ctx context.Context, refreshToken string) (*oauth2.Token, error) {
	return nil, ErrSessionEnded
}

func newIDPLogin(ctx context.Context, s *Server) (*idpLogin, error) { return &idpLogin{}, nil }

func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request)  {}
func (s *Server) handleAuthorize(w http.ResponseWriter, r *http.Request) {}
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request)  {}
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request)   {}
