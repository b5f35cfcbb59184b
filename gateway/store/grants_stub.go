package store

// STUB — replaced by the grants-store helper (sql grants, notify/listen).

import (
	"context"
	"errors"
	"time"
)

var errGrantsStub = errors.New("store: grants not implemented yet")

func (s *sqlStore) PutGrant(ctx context.Context, g Grant) error { return errGrantsStub }
func (s *sqlStore) GetGrant(ctx context.Context, issuer, subject, upstream string) (Grant, error) {
	return Grant{}, ErrNotFound
}
func (s *sqlStore) ListGrants(ctx context.Context, issuer, subject string) ([]Grant, error) {
	return nil, nil
}
func (s *sqlStore) DeleteGrant(ctx context.Context, issuer, subject, upstream string) error {
	return ErrNotFound
}
func (s *sqlStore) UpdateGrant(ctx context.Context, issuer, subject, upstream string, fn func(Grant) (Grant, error)) (Grant, error) {
	return Grant{}, ErrNotFound
}
func (s *sqlStore) TouchGrant(ctx context.Context, issuer, subject, upstream string, at time.Time) error {
	return nil
}
func (s *sqlStore) PutOutboundClient(ctx context.Context, c OutboundClient) error {
	return errGrantsStub
}
func (s *sqlStore) GetOutboundClient(ctx context.Context, issuer, key string) (OutboundClient, error) {
	return OutboundClient{}, ErrNotFound
}
func (s *sqlStore) Notify(ctx context.Context, channel, payload string) error { return nil }
func (s *sqlStore) Listen(ctx context.Context, channel string) (<-chan string, error) {
	ch := make(chan string)
	go func() { <-ctx.Done(); close(ch) }()
	return ch, nil
}
