package gateway

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// TestGrantStore: the credentials.GrantStore over the real SQLite store —
// a grant is found only under its key and configuration digest, Update
// replaces it (a rotated refresh token), Put replaces one of another
// digest, Delete removes it; none is ErrNoGrant.
func TestGrantStore(t *testing.T) {
	ctx := context.Background()
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(ctx, store.Config{Driver: store.DriverSQLite, Path: filepath.Join(t.TempDir(), "m.db"),
		EncryptionKeys: []store.EncryptionKey{key}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gs := grantStore{st}
	k := credentials.GrantKey{Issuer: "https://idp", Subject: "rita", Upstream: "tracker", ConfigDigest: "d1"}
	if _, err := gs.Get(ctx, k); !errors.Is(err, credentials.ErrNoGrant) {
		t.Fatalf("Get before Put: %v, want ErrNoGrant", err)
	}
	g := credentials.Grant{ClientID: "mandate", AccessToken: "at1", RefreshToken: "rt1", TokenType: "Bearer",
		Expiry: time.Now().Add(time.Hour).Truncate(time.Second), Scope: "issues.read", PlatformSubject: "tracker-rita"}
	if err := gs.Put(ctx, k, g); err != nil {
		t.Fatal(err)
	}
	if sg, err := st.GetGrant(ctx, k.Issuer, k.Subject, k.Upstream); err != nil || sg.CreatedAt.IsZero() {
		t.Errorf("stored grant: created %v, %v; want the time of the consent", sg.CreatedAt, err)
	}
	got, err := gs.Get(ctx, k)
	if err != nil || got.RefreshToken != "rt1" || got.PlatformSubject != "tracker-rita" || !got.Expiry.Equal(g.Expiry) {
		t.Fatalf("Get = %+v, %v", got, err)
	}
	for name, other := range map[string]credentials.GrantKey{
		"other digest": {Issuer: k.Issuer, Subject: k.Subject, Upstream: k.Upstream, ConfigDigest: "d2"},
		"other user":   {Issuer: k.Issuer, Subject: "ivy", Upstream: k.Upstream, ConfigDigest: "d1"},
		"other issuer": {Issuer: "https://evil", Subject: k.Subject, Upstream: k.Upstream, ConfigDigest: "d1"},
		"other upstrm": {Issuer: k.Issuer, Subject: k.Subject, Upstream: "kb", ConfigDigest: "d1"},
	} {
		if _, err := gs.Get(ctx, other); !errors.Is(err, credentials.ErrNoGrant) {
			t.Errorf("%s: Get %v, want ErrNoGrant", name, err)
		}
		if _, err := gs.Update(ctx, other, func(g credentials.Grant) (credentials.Grant, error) { return g, nil }); !errors.Is(err, credentials.ErrNoGrant) {
			t.Errorf("%s: Update %v, want ErrNoGrant", name, err)
		}
	}
	up, err := gs.Update(ctx, k, func(g credentials.Grant) (credentials.Grant, error) {
		g.AccessToken, g.RefreshToken = "at2", "rt2"
		return g, nil
	})
	if err != nil || up.RefreshToken != "rt2" {
		t.Fatalf("Update = %+v, %v", up, err)
	}
	if got, _ := gs.Get(ctx, k); got.RefreshToken != "rt2" || got.AccessToken != "at2" {
		t.Errorf("after Update: %+v", got)
	}
	k2 := k
	k2.ConfigDigest = "d2"
	if err := gs.Put(ctx, k2, g); err != nil {
		t.Fatal(err)
	}
	if _, err := gs.Get(ctx, k); !errors.Is(err, credentials.ErrNoGrant) {
		t.Errorf("the d1 grant survived a d2 consent: %v", err)
	}
	if err := gs.Delete(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if err := gs.Delete(ctx, k2); !errors.Is(err, credentials.ErrNoGrant) {
		t.Errorf("second Delete: %v, want ErrNoGrant", err)
	}
}
