package credentials

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/internal/testenv/testpg"
)

// storeGrants is the GrantStore and ClientRegistry over the gateway's real
// storage (SQLite or PostgreSQL), as the gateway wires it: a test helper
// here (gateway/store does not import this package, so no cycle).
type storeGrants struct{ s store.Store }

var (
	_ GrantStore     = storeGrants{}
	_ ClientRegistry = storeGrants{}
)

func fromStore(g store.Grant) Grant {
	return Grant{
		ClientID: g.ClientID, AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: g.TokenType,
		Expiry: g.Expiry, Scope: g.Scope, PlatformSubject: g.PlatformSubject, Broken: g.Broken, BrokenReason: g.BrokenReason,
	}
}

func toStore(k GrantKey, g Grant, created time.Time) store.Grant {
	return store.Grant{
		Issuer: k.Issuer, Subject: k.Subject, Upstream: k.Upstream, ConfigDigest: k.ConfigDigest,
		ClientID: g.ClientID, AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: g.TokenType,
		Expiry: g.Expiry, Scope: g.Scope, PlatformSubject: g.PlatformSubject, Broken: g.Broken, BrokenReason: g.BrokenReason,
		CreatedAt: created,
	}
}

func (a storeGrants) Get(ctx context.Context, k GrantKey) (Grant, error) {
	g, err := a.s.GetGrant(ctx, k.Issuer, k.Subject, k.Upstream)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return Grant{}, ErrNoGrant
	case err != nil:
		return Grant{}, err
	case g.ConfigDigest != k.ConfigDigest:
		return Grant{}, ErrNoGrant
	}
	return fromStore(g), nil
}

func (a storeGrants) Update(ctx context.Context, k GrantKey, fn func(Grant) (Grant, error)) (Grant, error) {
	sg, err := a.s.UpdateGrant(ctx, k.Issuer, k.Subject, k.Upstream, func(cur store.Grant) (store.Grant, error) {
		if cur.ConfigDigest != k.ConfigDigest {
			return cur, ErrNoGrant
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
		return Grant{}, ErrNoGrant
	}
	if err != nil {
		return Grant{}, err
	}
	return fromStore(sg), nil
}

func (a storeGrants) Put(ctx context.Context, k GrantKey, g Grant) error {
	return a.s.PutGrant(ctx, toStore(k, g, time.Now()))
}

func (a storeGrants) Delete(ctx context.Context, k GrantKey) error {
	err := a.s.DeleteGrant(ctx, k.Issuer, k.Subject, k.Upstream)
	if errors.Is(err, store.ErrNotFound) {
		return ErrNoGrant
	}
	return err
}

func (a storeGrants) Touch(ctx context.Context, k GrantKey) error {
	return a.s.TouchGrant(ctx, k.Issuer, k.Subject, k.Upstream, time.Now())
}

func (a storeGrants) Lock(ctx context.Context, name string) (func(), error) {
	return a.s.Lock(ctx, name)
}

func (a storeGrants) GetClient(ctx context.Context, issuer, key string) ([]byte, error) {
	c, err := a.s.GetOutboundClient(ctx, issuer, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoClient
	}
	return c.Metadata, err
}

func (a storeGrants) PutClient(ctx context.Context, issuer, key string, metadata []byte) error {
	return a.s.PutOutboundClient(ctx, store.OutboundClient{Issuer: issuer, Key: key, Metadata: metadata, CreatedAt: time.Now()})
}

var testStoreKey = store.EncryptionKey{ID: "k1", Key: secret.String("MTExMTExMTExMTExMTExMTExMTExMTExMTExMTExMTE=")}

// sqliteGrants opens a fresh SQLite store; open returns another Store on
// the same database (another replica).
func sqliteGrants(t testing.TB) (open func() storeGrants) {
	path := filepath.Join(t.TempDir(), "mandate.db")
	return func() storeGrants { return openGrants(t, store.Config{Driver: store.DriverSQLite, Path: path}) }
}

// postgresGrants is sqliteGrants on a schema of its own at
// MANDATE_POSTGRES_DSN (skipped without it, unless MANDATE_E2E=1).
func postgresGrants(t testing.TB) (open func() storeGrants) {
	dsn := testpg.Schema(t)
	return func() storeGrants {
		return openGrants(t, store.Config{Driver: store.DriverPostgres, DSN: secret.String(dsn)})
	}
}

func openGrants(t testing.TB, cfg store.Config) storeGrants {
	t.Helper()
	cfg.EncryptionKeys = []store.EncryptionKey{testStoreKey}
	s, err := store.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return storeGrants{s}
}
