package gateway

import (
	"context"
	"errors"
	"time"

	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// grantStore is credentials.GrantStore over the gateway's storage: the
// user's grant at an upstream, under the configuration digest it was
// obtained with (a grant of another configuration is not used).
type grantStore struct{ s store.Store }

var _ credentials.GrantStore = grantStore{}

func toCred(g store.Grant) credentials.Grant {
	return credentials.Grant{ClientID: g.ClientID, AccessToken: g.AccessToken, RefreshToken: g.RefreshToken,
		TokenType: g.TokenType, Expiry: g.Expiry, Scope: g.Scope, PlatformSubject: g.PlatformSubject,
		Broken: g.Broken, BrokenReason: g.BrokenReason}
}

func toStore(k credentials.GrantKey, g credentials.Grant, old store.Grant) store.Grant {
	old.Issuer, old.Subject, old.Upstream, old.ConfigDigest = k.Issuer, k.Subject, k.Upstream, k.ConfigDigest
	old.ClientID, old.AccessToken, old.RefreshToken, old.TokenType = g.ClientID, g.AccessToken, g.RefreshToken, g.TokenType
	old.Expiry, old.Scope, old.PlatformSubject, old.Broken, old.BrokenReason = g.Expiry, g.Scope, g.PlatformSubject, g.Broken, g.BrokenReason
	return old
}

func (s grantStore) Get(ctx context.Context, k credentials.GrantKey) (credentials.Grant, error) {
	g, err := s.s.GetGrant(ctx, k.Issuer, k.Subject, k.Upstream)
	if errors.Is(err, store.ErrNotFound) || (err == nil && g.ConfigDigest != k.ConfigDigest) {
		return credentials.Grant{}, credentials.ErrNoGrant
	}
	if err != nil {
		return credentials.Grant{}, err
	}
	return toCred(g), nil
}

func (s grantStore) Update(ctx context.Context, k credentials.GrantKey, fn func(credentials.Grant) (credentials.Grant, error)) (credentials.Grant, error) {
	var out credentials.Grant
	_, err := s.s.UpdateGrant(ctx, k.Issuer, k.Subject, k.Upstream, func(g store.Grant) (store.Grant, error) {
		if g.ConfigDigest != k.ConfigDigest {
			return g, credentials.ErrNoGrant
		}
		n, err := fn(toCred(g))
		if err != nil {
			return g, err
		}
		out = n
		return toStore(k, n, g), nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return credentials.Grant{}, credentials.ErrNoGrant
	}
	return out, err
}

// Put stores a new consent: its creation time is now ("Connected" on My
// connections).
func (s grantStore) Put(ctx context.Context, k credentials.GrantKey, g credentials.Grant) error {
	return s.s.PutGrant(ctx, toStore(k, g, store.Grant{CreatedAt: time.Now().UTC()}))
}

func (s grantStore) Delete(ctx context.Context, k credentials.GrantKey) error {
	err := s.s.DeleteGrant(ctx, k.Issuer, k.Subject, k.Upstream)
	if errors.Is(err, store.ErrNotFound) {
		return credentials.ErrNoGrant
	}
	return err
}
