package authserver

import (
	"crypto/sha256"
	"errors"
	"net/http"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/store"
)

// handleRevoke is token revocation (RFC 7009): a refresh token or a
// Mandate access token revokes its whole family (every token of that
// grant). Unknown or invalid tokens are answered 200, as the RFC says.
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	ctx := r.Context()
	if e := parseTokenForm(w, r); e != nil {
		writeTokenError(w, e)
		return
	}
	client, e := s.authenticateClient(r)
	if e != nil {
		writeTokenError(w, e)
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeTokenError(w, tokInvalidRequest("token is required"))
		return
	}
	hint := r.PostForm.Get("token_type_hint")
	fam, owner, user := "", "", audit.UserRef{}
	tryRefresh := func() error {
		h := sha256.Sum256([]byte(tok))
		row, err := s.opts.Store.LookupRefresh(ctx, h[:])
		if err != nil {
			return err
		}
		fam, owner, user = row.FamilyID, row.ClientID, audit.UserRef{Issuer: row.Issuer, Subject: row.Subject}
		return nil
	}
	tryAccess := func() bool {
		c, ok := s.parseOwnAccessToken(tok)
		if ok {
			fam, owner = c.Fam, c.ClientID
			user = audit.UserRef{Subject: c.Sub}
		}
		return ok
	}
	var lookupErr error
	if hint == "access_token" {
		if !tryAccess() {
			lookupErr = tryRefresh()
		}
	} else {
		if lookupErr = tryRefresh(); lookupErr != nil {
			tryAccess()
		}
	}
	if fam == "" {
		if lookupErr != nil && !errors.Is(lookupErr, store.ErrNotFound) && !errors.Is(lookupErr, store.ErrRevoked) && !errors.Is(lookupErr, store.ErrReused) {
			s.log.Error("looking up a token to revoke", "error", lookupErr)
			writeTokenError(w, tokErr(http.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be checked; try again"))
			return
		}
		writeTokenJSON(w, http.StatusOK, struct{}{})
		return
	}
	if owner != client.ID {
		writeTokenError(w, tokErr(http.StatusBadRequest, "invalid_grant", "the token was issued to another client"))
		return
	}
	if err := s.revokeFamily(ctx, fam); err != nil {
		s.log.Error("revoking a token family", "error", err)
		writeTokenError(w, tokErr(http.StatusServiceUnavailable, "temporarily_unavailable", "the token could not be revoked; try again"))
		return
	}
	s.auditTok(ctx, &audit.Record{Method: audit.MethodOAuthRevoke, User: user, OAuthClient: client.ID, Outcome: audit.OutcomeOK}, start)
	writeTokenJSON(w, http.StatusOK, struct{}{})
}
