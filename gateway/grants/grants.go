// Package grants connects per-user platform grants (upstreams/credentials'
// authorization_code flow) to the gateway's storage: Store is the
// credentials.GrantStore and credentials.ClientRegistry over a store.Store
// (SQLite or PostgreSQL). A grant is found only under the configuration
// digest it was obtained with.
package grants

import (
	"context"
	"errors"
	"time"

	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Store adapts a store.Store.
type Store struct {
	S   store.Store
	Now func() time.Time
}

var (
	_ credentials.GrantStore     = Store{}
	_ credentials.ClientRegistry = Store{}
)

func (a Store) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

func fromStore(g store.Grant) credentials.Grant {
	return credentials.Grant{
		ClientID: g.ClientID, AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: g.TokenType,
		Expiry: g.Expiry, Scope: g.Scope, PlatformSubject: g.PlatformSubject, Broken: g.Broken, BrokenReason: g.BrokenReason,
	}
}

func toStore(k credentials.GrantKey, g credentials.Grant, created time.Time) store.Grant {
	return store.Grant{
		Issuer: k.Issuer, Subject: k.Subject, Upstream: k.Upstream, ConfigDigest: k.ConfigDigest,
		ClientID: g.ClientID, AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: g.TokenType,
		Expiry: g.Expiry, Scope: g.Scope, PlatformSubject: g.PlatformSubject, Broken: g.Broken, BrokenReason: g.BrokenReason,
		CreatedAt: created,
	}
}

// Get returns the user's grant obtained under k.ConfigDigest.
func (a Store) Get(ctx context.Context, k credentials.GrantKey) (credentials.Grant, error) {
	g, err := a.S.GetGrant(ctx, k.Issuer, k.Subject, k.Upstream)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return credentials.Grant{}, credentials.ErrNoGrant
	case err != nil:
		return credentials.Grant{}, err
	case g.ConfigDigest != k.ConfigDigest:
		return credentials.Grant{}, credentials.ErrNoGrant
	}
	return fromStore(g), nil
}

// Update runs fn under the store's row lock (single flight across
// replicas).
func (a Store) Update(ctx context.Context, k credentials.GrantKey, fn func(credentials.Grant) (credentials.Grant, error)) (credentials.Grant, error) {
	sg, err := a.S.UpdateGrant(ctx, k.Issuer, k.Subject, k.Upstream, func(cur store.Grant) (store.Grant, error) {
		if cur.ConfigDigest != k.ConfigDigest {
			return cur, credentials.ErrNoGrant
		}
		g, err := fn(fromStore(cur))
		if err != nil {
			return cur, err
		}
		ng := toStore(k, g, cur.CreatedAt)
		ng.LastUsedAt = cur.LastUsedAt
		return ng, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return credentials.Grant{}, credentials.ErrNoGrant
	}
	if err != nil {
		return credentials.Grant{}, err
	}
	return fromStore(sg), nil
}

// Put stores a new grant (a consent), replacing the user's previous one.
func (a Store) Put(ctx context.Context, k credentials.GrantKey, g credentials.Grant) error {
	return a.S.PutGrant(ctx, toStore(k, g, a.now()))
}

// Delete removes the user's grant.
func (a Store) Delete(ctx context.Context, k credentials.GrantKey) error {
	err := a.S.DeleteGrant(ctx, k.Issuer, k.Subject, k.Upstream)
	if errors.Is(err, store.ErrNotFound) {
		return credentials.ErrNoGrant
	}
	return err
}

// Touch records the grant's use (at most once a minute: the store).
func (a Store) Touch(ctx context.Context, k credentials.GrantKey) error {
	return a.S.TouchGrant(ctx, k.Issuer, k.Subject, k.Upstream, a.now())
}

// Lock takes the storage's named lock (one registration across replicas).
func (a Store) Lock(ctx context.Context, name string) (func(), error) { return a.S.Lock(ctx, name) }

// GetClient returns Mandate's registration at a platform's authorization
// server.
func (a Store) GetClient(ctx context.Context, issuer, key string) ([]byte, error) {
	c, err := a.S.GetOutboundClient(ctx, issuer, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, credentials.ErrNoClient
	}
	return c.Metadata, err
}

// PutClient stores Mandate's registration at a platform's authorization
// server, shared by replicas.
func (a Store) PutClient(ctx context.Context, issuer, key string, metadata []byte) error {
	return a.S.PutOutboundClient(ctx, store.OutboundClient{Issuer: issuer, Key: key, Metadata: metadata, CreatedAt: a.now()})
}
