package authserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

// IdP sessions.
const (
	// SessionKindLogin is a browser sign-in at the IdP; SessionKindIDJAG an
	// Identity Assertion JWT Authorization Grant (no IdP refresh).
	SessionKindLogin = "login"
	SessionKindIDJAG = "id_jag"
	// sessionCacheSize bounds the in-memory IdP sessions.
	sessionCacheSize = 10_000
	// refreshAhead: the IdP access token is refreshed when it expires
	// within this.
	refreshAhead = time.Minute
	// refreshTimeout bounds one refresh at the IdP (not the caller's
	// deadline: other callers wait on the same refresh).
	refreshTimeout = 30 * time.Second
)

// ErrSessionEnded: the IdP refused to refresh the session's tokens (user
// disabled, session revoked) or it was revoked in Mandate.
var ErrSessionEnded = errors.New("authserver: the sign-in at the identity provider has ended")

// sessionCache holds the IdP sessions behind Mandate's tokens: in the
// store (tokens sealed by it), cached in memory with the identity built
// from them, so a warm call never waits on the database. Safe for
// concurrent use.
type sessionCache struct {
	s     *Server
	cache *lru.Cache[string, *session]
	load  singleflight.Group // per sid: loading from the store
	fresh singleflight.Group // per sid: refreshing at the IdP
	// refresh redeems an IdP refresh token; nil means s.login.refresh.
	refresh func(ctx context.Context, refreshToken string) (*oauth2.Token, error)
}

// session is one cached IdP session: the row (tokens in the clear, in
// memory only) and the identity built from it. Immutable; replaced whole.
type session struct {
	row store.IdPSession
	id  *identity.Identity
}

func newSessionCache(s *Server) *sessionCache {
	c := &sessionCache{s: s}
	c.cache, _ = lru.New[string, *session](sessionCacheSize)
	return c
}

func (c *sessionCache) refreshFunc() func(context.Context, string) (*oauth2.Token, error) {
	if c.refresh != nil {
		return c.refresh
	}
	return c.s.login.refresh
}

// create stores a new IdP session (sealed tokens, verified claims) and
// returns its id. kind is "login" or "id_jag". claims are the verified
// claims the identity is built from (the IdP access token's, or the
// ID-JAG's).
func (c *sessionCache) create(ctx context.Context, kind string, tok *oauth2.Token, idToken string, claims map[string]any) (string, error) {
	if tok == nil || tok.AccessToken == "" {
		return "", errors.New("authserver: creating an IdP session without an access token")
	}
	if kind != SessionKindLogin && kind != SessionKindIDJAG {
		return "", fmt.Errorf("authserver: unknown IdP session kind %q", kind)
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding the session's claims: %w", err)
	}
	now := c.s.now()
	row := store.IdPSession{
		ID: randomToken(24), Claims: raw, Kind: kind,
		AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, IDToken: idToken,
		TokenExpiry: tok.Expiry, CreatedAt: now, UpdatedAt: now,
	}
	if kind == SessionKindIDJAG {
		row.RefreshToken = ""
	}
	sess, err := c.build(row, claims)
	if err != nil {
		return "", err
	}
	if row.TokenExpiry.IsZero() {
		row.TokenExpiry = sess.id.Expiry
		sess.row.TokenExpiry = sess.id.Expiry
	}
	if err := c.s.opts.Store.PutIdPSession(ctx, sess.row); err != nil {
		return "", fmt.Errorf("storing the IdP session: %w", err)
	}
	c.cache.Add(row.ID, sess)
	return row.ID, nil
}

// build maps a session row to its identity. claims may be nil (decoded
// from row.Claims).
func (c *sessionCache) build(row store.IdPSession, claims map[string]any) (*session, error) {
	if claims == nil {
		var err error
		if claims, err = authn.DecodeClaims(row.Claims); err != nil {
			return nil, fmt.Errorf("IdP session %s: decoding its claims: %w", row.ID, err)
		}
	}
	mapped, e := c.s.opts.Identity.IdentityFromClaims(claims)
	if e != nil {
		return nil, fmt.Errorf("IdP session: %s", e.Description)
	}
	if mapped.Expiry.IsZero() || (!row.TokenExpiry.IsZero() && row.TokenExpiry.Before(mapped.Expiry)) {
		mapped.Expiry = row.TokenExpiry
	}
	row.Issuer, row.Subject = mapped.Issuer, mapped.Subject
	return &session{row: row, id: mapped.WithRawToken(row.AccessToken)}, nil
}

// identity returns the identity of IdP session sid, from memory on a warm
// call; it refreshes the IdP tokens when they are about to expire (single
// flight) and returns ErrSessionEnded when the IdP refuses.
func (c *sessionCache) identity(ctx context.Context, sid string) (*identity.Identity, error) {
	sess, ok := c.cache.Get(sid)
	if !ok {
		v, err, _ := c.load.Do(sid, func() (any, error) {
			row, err := c.s.opts.Store.GetIdPSession(ctx, sid)
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrRevoked) {
				return nil, ErrSessionEnded
			}
			if err != nil {
				return nil, fmt.Errorf("loading IdP session: %w", err)
			}
			sess, err := c.build(row, nil)
			if err != nil {
				return nil, err
			}
			c.cache.Add(sid, sess)
			return sess, nil
		})
		if err != nil {
			return nil, err
		}
		sess = v.(*session)
	}
	if sess.row.Revoked {
		return nil, ErrSessionEnded
	}
	now := c.s.now()
	if sess.row.TokenExpiry.IsZero() || now.Add(refreshAhead).Before(sess.row.TokenExpiry) {
		return sess.id, nil
	}
	expired := !now.Before(sess.row.TokenExpiry)
	if sess.row.Kind == SessionKindIDJAG || sess.row.RefreshToken == "" {
		if expired {
			c.cache.Remove(sid)
			return nil, ErrSessionEnded
		}
		return sess.id, nil
	}
	v, err, _ := c.fresh.Do(sid, func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), refreshTimeout)
		defer cancel()
		return c.refreshSession(rctx, sess)
	})
	if err != nil {
		if !errors.Is(err, ErrSessionEnded) && !expired {
			// A transient failure while the IdP token is still valid:
			// keep using it; the next call retries.
			c.s.log.Warn("refreshing the IdP tokens failed; retrying on the next request", "error", err)
			return sess.id, nil
		}
		return nil, err
	}
	return v.(*session).id, nil
}

// refreshSession refreshes the IdP tokens of sess: unless another replica
// already did (the store has newer tokens), it redeems the refresh token
// at the IdP, verifies the new access token as the gateway verifies IdP
// tokens, and stores the rotated tokens. An IdP refusal revokes the
// session.
func (c *sessionCache) refreshSession(ctx context.Context, sess *session) (*session, error) {
	sid := sess.row.ID
	// One refresh per session across replicas: the IdP rotates refresh
	// tokens, so a second replica refreshing at the same moment would
	// present a spent one (and many IdPs then revoke the whole grant).
	// Under the lock, a replica that waited finds the other's tokens in
	// the store (newerInStore) and does not refresh again.
	unlock, err := c.s.opts.Store.Lock(ctx, "idp-session:"+sid)
	if err != nil {
		return nil, fmt.Errorf("waiting for another replica's refresh of the IdP tokens: %w", err)
	}
	defer unlock()
	if row, err := c.s.opts.Store.GetIdPSession(ctx, sid); errors.Is(err, store.ErrRevoked) || errors.Is(err, store.ErrNotFound) || (err == nil && row.Revoked) {
		c.cache.Remove(sid) // revoked meanwhile (another replica, an admin purge)
		return nil, ErrSessionEnded
	}
	if fresh, ok := c.newerInStore(ctx, sess); ok {
		return fresh, nil
	}
	tok, err := c.refreshFunc()(ctx, sess.row.RefreshToken)
	if err != nil {
		if !errors.Is(err, ErrSessionEnded) {
			return nil, fmt.Errorf("refreshing the IdP tokens: %w", err)
		}
		// Another replica may have rotated the refresh token meanwhile.
		if fresh, ok := c.newerInStore(ctx, sess); ok {
			return fresh, nil
		}
		row := sess.row
		row.Revoked, row.UpdatedAt = true, c.s.now()
		if perr := c.s.opts.Store.PutIdPSession(ctx, row); perr != nil {
			c.s.log.Warn("marking an ended IdP session revoked failed", "error", perr)
		}
		c.cache.Remove(sid)
		c.s.log.Info("the identity provider refused to refresh a sign-in; its tokens stop working", "issuer", row.Issuer, "subject", row.Subject)
		return nil, ErrSessionEnded
	}
	if tok == nil || tok.AccessToken == "" {
		return nil, errors.New("refreshing the IdP tokens: the IdP returned no access token")
	}
	id, e := c.s.opts.Auth.Authenticate(ctx, []string{"Bearer " + tok.AccessToken})
	if e != nil {
		return nil, fmt.Errorf("the IdP's refreshed access token does not verify: %s", e.Description)
	}
	if id.Subject != sess.id.Subject || id.Issuer != sess.id.Issuer {
		return nil, fmt.Errorf("the IdP's refreshed access token is for another user")
	}
	raw, err := json.Marshal(id.Claims)
	if err != nil {
		return nil, err
	}
	row := sess.row
	row.AccessToken, row.Claims, row.UpdatedAt = tok.AccessToken, raw, c.s.now()
	row.TokenExpiry = tok.Expiry
	if row.TokenExpiry.IsZero() || (!id.Expiry.IsZero() && id.Expiry.Before(row.TokenExpiry)) {
		row.TokenExpiry = id.Expiry
	}
	if tok.RefreshToken != "" {
		row.RefreshToken = tok.RefreshToken
	}
	if it, _ := tok.Extra("id_token").(string); it != "" {
		row.IDToken = it
	}
	fresh, err := c.build(row, id.Claims)
	if err != nil {
		return nil, err
	}
	if err := c.s.opts.Store.PutIdPSession(ctx, fresh.row); err != nil {
		return nil, fmt.Errorf("storing refreshed IdP tokens: %w", err)
	}
	c.cache.Add(sid, fresh)
	return fresh, nil
}

// newerInStore returns the stored session when another replica refreshed
// it (its access token differs and is not about to expire).
func (c *sessionCache) newerInStore(ctx context.Context, sess *session) (*session, bool) {
	row, err := c.s.opts.Store.GetIdPSession(ctx, sess.row.ID)
	if err != nil || row.Revoked || row.AccessToken == sess.row.AccessToken ||
		!c.s.now().Add(refreshAhead).Before(row.TokenExpiry) {
		return nil, false
	}
	fresh, err := c.build(row, nil)
	if err != nil {
		return nil, false
	}
	c.cache.Add(row.ID, fresh)
	return fresh, true
}

// forgetUser drops a user's sessions from memory (after the store
// revoked them: RevokeUser), so this replica reads them — revoked — again.
func (c *sessionCache) forgetUser(issuer, subject string) int {
	n := 0
	for _, sid := range c.cache.Keys() {
		if sess, ok := c.cache.Peek(sid); ok && sess.row.Issuer == issuer && sess.row.Subject == subject {
			c.cache.Remove(sid)
			n++
		}
	}
	return n
}
