package authserver

// STUB — replaced by the tokens helper (keys.go, tokens.go, token.go,
// revoke.go, idjag.go). Signatures are the contract.

import (
	"context"
	"net/http"
	"time"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

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
