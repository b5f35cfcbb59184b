package connect_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/internal/testenv/testpg"
)

// A grant change on one replica reaches OnChange on another (two Services
// on one PostgreSQL database) within a second.
func TestGrantChangeReachesOtherReplica(t *testing.T) {
	dsn := testpg.Schema(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t) // the authorization server (sign-in) of both
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	open := func() store.Store {
		st, err := store.Open(ctx, store.Config{Driver: store.DriverPostgres, DSN: secret.String(dsn), EncryptionKeys: []store.EncryptionKey{key}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		return st
	}
	stateKey := make([]byte, 32)
	_, _ = rand.Read(stateKey)
	got := make(chan [3]string, 4)
	a, err := connect.New(ctx, connect.Options{Issuer: e.issuer, Auth: e.as, Store: open(), StateKey: stateKey})
	if err != nil {
		t.Fatal(err)
	}
	b, err := connect.New(ctx, connect.Options{Issuer: e.issuer, Auth: e.as, Store: open(), StateKey: stateKey,
		OnChange: func(iss, sub, up string) { got <- [3]string{iss, sub, up} }})
	if err != nil {
		t.Fatal(err)
	}
	go b.Run(ctx)
	time.Sleep(200 * time.Millisecond) // b subscribed (Listen returns once it is)
	start := time.Now()
	a.UserRemoved(ctx, "https://idp.example", "rita|with|bars")
	select {
	case v := <-got:
		if v != [3]string{"https://idp.example", "rita|with|bars", ""} {
			t.Fatalf("OnChange(%q)", v)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("took %v, want under a second", d)
		}
		t.Logf("notification reached the other replica in %v", time.Since(start))
	case <-time.After(3 * time.Second):
		t.Fatal("the other replica's OnChange was not called")
	}
}
