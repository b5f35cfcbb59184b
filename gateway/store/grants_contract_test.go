package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// The contract suite for grants (grants.go), against both drivers.

func testGrant(subject, upstream string, n time.Time) Grant {
	return Grant{
		Issuer: "https://idp", Subject: subject, Upstream: upstream,
		ConfigDigest: "digest-" + upstream, ClientID: "https://mandate.example.com/oauth/client.json",
		AccessToken: "at-" + subject + "-" + upstream, RefreshToken: "rt-" + subject + "-" + upstream,
		TokenType: "Bearer", Expiry: n.Add(time.Hour), Scope: "read write",
		PlatformSubject: subject + "@platform", CreatedAt: n.Add(-time.Hour), LastUsedAt: n.Add(-time.Hour),
	}
}

func TestContractGrants(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		_, err := s.GetGrant(ctx, "https://idp", "alice", "tracker")
		mustErr(t, "GetGrant before any", err, ErrNotFound)
		list, err := s.ListGrants(ctx, "https://idp", "alice")
		noErr(t, "ListGrants empty", err)
		if len(list) != 0 {
			t.Fatalf("ListGrants on an empty store = %v", list)
		}

		g := testGrant("alice", "tracker", n)
		noErr(t, "PutGrant", s.PutGrant(ctx, g))
		got, err := s.GetGrant(ctx, "https://idp", "alice", "tracker")
		noErr(t, "GetGrant", err)
		if d := cmp.Diff(g, got); d != "" {
			t.Fatalf("GetGrant (-put +got):\n%s", d)
		}

		// A new consent replaces a broken grant, every field of it.
		broken := g
		broken.Broken, broken.BrokenReason = true, "invalid_grant: refresh token revoked"
		noErr(t, "PutGrant broken", s.PutGrant(ctx, broken))
		if got, _ := s.GetGrant(ctx, "https://idp", "alice", "tracker"); !got.Broken || got.BrokenReason != broken.BrokenReason {
			t.Fatalf("broken grant read back as %+v", got)
		}
		g2 := testGrant("alice", "tracker", n.Add(time.Minute))
		g2.ConfigDigest, g2.AccessToken, g2.RefreshToken, g2.Expiry = "digest-2", "at-new", "", time.Time{}
		noErr(t, "PutGrant replacing", s.PutGrant(ctx, g2))
		got, err = s.GetGrant(ctx, "https://idp", "alice", "tracker")
		noErr(t, "GetGrant replaced", err)
		if d := cmp.Diff(g2, got); d != "" {
			t.Fatalf("GetGrant after replace (-put +got):\n%s", d)
		}

		// Other upstreams, another user, the same subject at another issuer.
		noErr(t, "PutGrant alice/wiki", s.PutGrant(ctx, testGrant("alice", "wiki", n)))
		noErr(t, "PutGrant bob/tracker", s.PutGrant(ctx, testGrant("bob", "tracker", n)))
		other := testGrant("alice", "tracker", n)
		other.Issuer, other.AccessToken = "https://other-idp", "at-other-issuer"
		noErr(t, "PutGrant other issuer", s.PutGrant(ctx, other))
		if got, _ := s.GetGrant(ctx, "https://idp", "alice", "tracker"); got.AccessToken != "at-new" {
			t.Fatalf("alice's grant at https://idp has access token %q after a put at another issuer", got.AccessToken)
		}
		list, err = s.ListGrants(ctx, "https://idp", "alice")
		noErr(t, "ListGrants", err)
		var names []string
		for _, g := range list {
			if g.Issuer != "https://idp" || g.Subject != "alice" {
				t.Fatalf("ListGrants(alice) returned a grant of %s/%s", g.Issuer, g.Subject)
			}
			names = append(names, g.Upstream)
		}
		if d := cmp.Diff([]string{"tracker", "wiki"}, names); d != "" {
			t.Fatalf("ListGrants upstreams, ordered (-want +got):\n%s", d)
		}
		if d := cmp.Diff(g2, list[0]); d != "" {
			t.Fatalf("ListGrants[0] (-want +got):\n%s", d)
		}

		// TouchGrant writes at most once a minute.
		t0 := g2.LastUsedAt
		noErr(t, "TouchGrant +30s", s.TouchGrant(ctx, "https://idp", "alice", "tracker", t0.Add(30*time.Second)))
		if got, _ := s.GetGrant(ctx, "https://idp", "alice", "tracker"); !got.LastUsedAt.Equal(t0) {
			t.Fatalf("touch within a minute moved LastUsedAt to %v", got.LastUsedAt)
		}
		noErr(t, "TouchGrant +2m", s.TouchGrant(ctx, "https://idp", "alice", "tracker", t0.Add(2*time.Minute)))
		if got, _ := s.GetGrant(ctx, "https://idp", "alice", "tracker"); !got.LastUsedAt.Equal(t0.Add(2 * time.Minute)) {
			t.Fatalf("LastUsedAt = %v, want %v", got.LastUsedAt, t0.Add(2*time.Minute))
		}
		mustErr(t, "TouchGrant unknown", s.TouchGrant(ctx, "https://idp", "carol", "tracker", n), ErrNotFound)

		// DeleteGrant: that grant only.
		noErr(t, "DeleteGrant", s.DeleteGrant(ctx, "https://idp", "alice", "tracker"))
		mustErr(t, "DeleteGrant again", s.DeleteGrant(ctx, "https://idp", "alice", "tracker"), ErrNotFound)
		_, err = s.GetGrant(ctx, "https://idp", "alice", "tracker")
		mustErr(t, "GetGrant deleted", err, ErrNotFound)
		for _, k := range [][3]string{{"https://idp", "alice", "wiki"}, {"https://idp", "bob", "tracker"}, {"https://other-idp", "alice", "tracker"}} {
			if _, err := s.GetGrant(ctx, k[0], k[1], k[2]); err != nil {
				t.Fatalf("grant %v after deleting alice/tracker: %v", k, err)
			}
		}

		// The key is required.
		if err := s.PutGrant(ctx, Grant{Issuer: "https://idp", Subject: "alice"}); err == nil {
			t.Fatal("PutGrant without an upstream succeeded")
		}
	})
}

func TestContractOutboundClients(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		_, err := s.GetOutboundClient(ctx, "https://as.example", "k1")
		mustErr(t, "GetOutboundClient before any", err, ErrNotFound)
		c := OutboundClient{Issuer: "https://as.example", Key: "redirect=https://m/cb", Metadata: []byte(`{"client_id":"x","client_secret":"s"}`), CreatedAt: n}
		noErr(t, "PutOutboundClient", s.PutOutboundClient(ctx, c))
		got, err := s.GetOutboundClient(ctx, c.Issuer, c.Key)
		noErr(t, "GetOutboundClient", err)
		if d := cmp.Diff(c, got); d != "" {
			t.Fatalf("GetOutboundClient (-put +got):\n%s", d)
		}
		// Re-registration under the same key replaces; another key is another row.
		c2 := c
		c2.Metadata, c2.CreatedAt = []byte(`{"client_id":"y"}`), n.Add(time.Minute)
		noErr(t, "PutOutboundClient replacing", s.PutOutboundClient(ctx, c2))
		got, _ = s.GetOutboundClient(ctx, c.Issuer, c.Key)
		if d := cmp.Diff(c2, got); d != "" {
			t.Fatalf("after replace (-put +got):\n%s", d)
		}
		_, err = s.GetOutboundClient(ctx, c.Issuer, "redirect=https://other/cb")
		mustErr(t, "GetOutboundClient other key", err, ErrNotFound)
		_, err = s.GetOutboundClient(ctx, "https://other-as", c.Key)
		mustErr(t, "GetOutboundClient other issuer", err, ErrNotFound)
	})
}

func TestContractUpdateGrant(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		called := false
		_, err := s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) { called = true; return g, nil })
		mustErr(t, "UpdateGrant of no grant", err, ErrNotFound)
		if called {
			t.Fatal("fn called without a grant")
		}

		g := testGrant("alice", "tracker", n)
		noErr(t, "PutGrant", s.PutGrant(ctx, g))
		want := g
		want.AccessToken, want.RefreshToken, want.Expiry, want.Scope = "at-2", "rt-2", n.Add(2*time.Hour), "read"
		got, err := s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(cur Grant) (Grant, error) {
			if d := cmp.Diff(g, cur); d != "" {
				t.Errorf("fn saw (-stored +seen):\n%s", d)
			}
			cur.AccessToken, cur.RefreshToken, cur.Expiry, cur.Scope = want.AccessToken, want.RefreshToken, want.Expiry, want.Scope
			return cur, nil
		})
		noErr(t, "UpdateGrant", err)
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("UpdateGrant returned (-want +got):\n%s", d)
		}
		stored, _ := s.GetGrant(ctx, "https://idp", "alice", "tracker")
		if d := cmp.Diff(want, stored); d != "" {
			t.Fatalf("stored after UpdateGrant (-want +got):\n%s", d)
		}

		// fn's error: nothing stored, the error returned as is.
		errPlatform := errors.New("platform said invalid_grant")
		_, err = s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(cur Grant) (Grant, error) {
			cur.RefreshToken = "rt-should-not-be-stored"
			return cur, errPlatform
		})
		mustErr(t, "UpdateGrant with fn error", err, errPlatform)
		stored, _ = s.GetGrant(ctx, "https://idp", "alice", "tracker")
		if d := cmp.Diff(want, stored); d != "" {
			t.Fatalf("fn error changed the row (-want +got):\n%s", d)
		}

		// Marking broken through UpdateGrant.
		got, err = s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(cur Grant) (Grant, error) {
			cur.Broken, cur.BrokenReason = true, "invalid_grant"
			return cur, nil
		})
		noErr(t, "UpdateGrant broken", err)
		if stored, _ := s.GetGrant(ctx, "https://idp", "alice", "tracker"); !stored.Broken || stored.BrokenReason != "invalid_grant" {
			t.Fatalf("broken not stored: %+v", stored)
		}

		// fn may not move the grant to another key.
		_, err = s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(cur Grant) (Grant, error) {
			cur.Subject = "mallory"
			return cur, nil
		})
		if err == nil {
			t.Fatal("UpdateGrant let fn change the subject")
		}
		if _, err := s.GetGrant(ctx, "https://idp", "mallory", "tracker"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a grant for mallory exists after a refused key change: %v", err)
		}

		// A cancelled ctx while waiting: the ctx error, fn not called.
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		called = false
		_, err = s.UpdateGrant(cctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) { called = true; return g, nil })
		if !errors.Is(err, context.Canceled) || called {
			t.Fatalf("UpdateGrant with a cancelled ctx: err %v, fn called %v", err, called)
		}
	})
}

// TestContractUpdateGrantCtx: a wait for the lock ends with the caller's
// ctx (fn not called); once fn succeeded its result is stored even if the
// caller's ctx ended meanwhile (fn may have rotated the refresh token at
// the platform: losing the new one would break the grant).
func TestContractUpdateGrantCtx(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		replicas := []Store{b.open(t), b.open(t)}
		n := now()
		noErr(t, "PutGrant", replicas[0].PutGrant(ctx, testGrant("alice", "tracker", n)))

		// ctx ends inside fn: the rotation is stored, no error.
		fctx, cancel := context.WithCancel(ctx)
		got, err := replicas[0].UpdateGrant(fctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) {
			cancel()
			time.Sleep(20 * time.Millisecond)
			g.RefreshToken = "rt-rotated"
			return g, nil
		})
		noErr(t, "UpdateGrant whose ctx ended during fn", err)
		if got.RefreshToken != "rt-rotated" {
			t.Fatalf("returned %q", got.RefreshToken)
		}
		if stored, _ := replicas[1].GetGrant(ctx, "https://idp", "alice", "tracker"); stored.RefreshToken != "rt-rotated" {
			t.Fatalf("stored refresh token %q after ctx ended during fn, want rt-rotated", stored.RefreshToken)
		}

		// A waiter on the other replica gives up with its ctx.
		inside, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := replicas[0].UpdateGrant(ctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) {
				close(inside)
				<-release
				g.RefreshToken = "rt-holder"
				return g, nil
			})
			done <- err
		}()
		<-inside
		wctx, wcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer wcancel()
		began := time.Now()
		called := false
		_, err = replicas[1].UpdateGrant(wctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) { called = true; return g, nil })
		if !errors.Is(err, context.DeadlineExceeded) || called {
			t.Fatalf("waiter: err %v, fn called %v; want DeadlineExceeded without fn", err, called)
		}
		if waited := time.Since(began); waited > 2*time.Second {
			t.Fatalf("waiter returned %v after its 200 ms deadline", waited)
		}
		close(release)
		noErr(t, "holder", <-done)
		stored, err := replicas[1].GetGrant(ctx, "https://idp", "alice", "tracker")
		noErr(t, "GetGrant on the waiter's replica", err)
		if stored.RefreshToken != "rt-holder" {
			t.Fatalf("stored %q, want the holder's rt-holder", stored.RefreshToken)
		}
		_, err = replicas[1].UpdateGrant(ctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) { return g, nil })
		noErr(t, "UpdateGrant on the waiter's replica afterwards", err)
	})
}

// TestContractUpdateGrantSingleFlight: N UpdateGrants of one grant race from
// two Store instances (two replicas), each "rotating" the refresh token the
// way a refresh at a platform does. No two fns see the same refresh token
// (no replay), every fn sees the latest one (no lost update), fns never
// overlap, and the final token is the last one written.
func TestContractUpdateGrantSingleFlight(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		replicas := []Store{b.open(t), b.open(t)}
		n := now()
		g := testGrant("alice", "tracker", n)
		g.RefreshToken = "rt-initial"
		noErr(t, "PutGrant", replicas[0].PutGrant(ctx, g))

		const N = 16
		const work = 5 * time.Millisecond // the platform's token endpoint
		var mu sync.Mutex
		latest := g.RefreshToken
		seen := map[string]bool{}
		inFlight, maxInFlight := 0, 0
		errs := make([]error, N)
		var wg sync.WaitGroup
		start := make(chan struct{})
		began := time.Now()
		for i := range N {
			wg.Go(func() {
				<-start
				_, errs[i] = replicas[i%2].UpdateGrant(ctx, "https://idp", "alice", "tracker", func(cur Grant) (Grant, error) {
					mu.Lock()
					inFlight++
					maxInFlight = max(maxInFlight, inFlight)
					if seen[cur.RefreshToken] {
						t.Errorf("fn %d saw refresh token %q that another fn saw already (replay)", i, cur.RefreshToken)
					}
					seen[cur.RefreshToken] = true
					if cur.RefreshToken != latest {
						t.Errorf("fn %d saw refresh token %q, the latest is %q (lost update)", i, cur.RefreshToken, latest)
					}
					mu.Unlock()
					time.Sleep(work)
					next := fmt.Sprintf("rt-%d", i)
					mu.Lock()
					latest = next
					inFlight--
					mu.Unlock()
					cur.RefreshToken, cur.AccessToken = next, fmt.Sprintf("at-%d", i)
					return cur, nil
				})
			})
		}
		close(start)
		wg.Wait()
		elapsed := time.Since(began)
		for i, err := range errs {
			if err != nil {
				t.Errorf("UpdateGrant %d: %v", i, err)
			}
		}
		if maxInFlight != 1 {
			t.Errorf("%d fns ran at once, want 1", maxInFlight)
		}
		if len(seen) != N {
			t.Errorf("fns saw %d distinct refresh tokens, want %d", len(seen), N)
		}
		for i, r := range replicas {
			final, err := r.GetGrant(ctx, "https://idp", "alice", "tracker")
			noErr(t, "GetGrant", err)
			if final.RefreshToken != latest {
				t.Errorf("replica %d: final refresh token %q, want the last written %q", i, final.RefreshToken, latest)
			}
		}
		t.Logf("%s: %d UpdateGrants over 2 replicas, fn %v each: %v (%.1f ms per update; serialized floor %v)",
			b.driver, N, work, elapsed.Round(time.Millisecond), float64(elapsed.Microseconds())/1000/N, N*work)
	})
}

// TestContractUpdateGrantOthersProceed: while one UpdateGrant's fn runs,
// reads of the grant, and (PostgreSQL) UpdateGrants of other grants and
// other writes, proceed.
func TestContractUpdateGrantOthersProceed(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		noErr(t, "PutGrant alice", s.PutGrant(ctx, testGrant("alice", "tracker", n)))
		noErr(t, "PutGrant bob", s.PutGrant(ctx, testGrant("bob", "tracker", n)))
		inside, release := make(chan struct{}), make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) {
				close(inside)
				<-release
				g.RefreshToken = "rt-after"
				return g, nil
			})
			done <- err
		}()
		<-inside
		tctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		got, err := s.GetGrant(tctx, "https://idp", "alice", "tracker")
		noErr(t, "GetGrant while fn runs", err)
		if got.RefreshToken != "rt-alice-tracker" {
			t.Fatalf("read during fn saw %q, want the committed row", got.RefreshToken)
		}
		if _, err := s.ListGrants(tctx, "https://idp", "bob"); err != nil {
			t.Fatalf("ListGrants while fn runs: %v", err)
		}
		if b.driver == DriverPostgres {
			_, err := s.UpdateGrant(tctx, "https://idp", "bob", "tracker", func(g Grant) (Grant, error) { return g, nil })
			noErr(t, "UpdateGrant of another grant while fn runs", err)
			noErr(t, "PutConsent while fn runs", s.PutConsent(tctx, Consent{Issuer: "https://idp", Subject: "bob", ClientID: "c", GrantedAt: n}))
		}
		close(release)
		noErr(t, "UpdateGrant", <-done)
	})
}

// TestContractGrantsSealedAtRest reads the raw rows: no platform token or
// registration secret is stored in the clear, and a sealed token moved to
// another user's row does not open.
func TestContractGrantsSealedAtRest(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		g := testGrant("alice", "tracker", n)
		g.AccessToken, g.RefreshToken = "PLAINTEXT-PLATFORM-ACCESS", "PLAINTEXT-PLATFORM-REFRESH"
		noErr(t, "PutGrant", s.PutGrant(ctx, g))
		_, err := s.UpdateGrant(ctx, g.Issuer, g.Subject, g.Upstream, func(cur Grant) (Grant, error) {
			cur.AccessToken, cur.RefreshToken = "PLAINTEXT-ROTATED-ACCESS", "PLAINTEXT-ROTATED-REFRESH"
			return cur, nil
		})
		noErr(t, "UpdateGrant", err)
		noErr(t, "PutOutboundClient", s.PutOutboundClient(ctx, OutboundClient{Issuer: "https://as", Key: "k", Metadata: []byte(`{"client_secret":"PLAINTEXT-CLIENT-SECRET"}`), CreatedAt: n}))

		db, q := raw(s)
		var at, rt, md []byte
		noErr(t, "raw grant", db.QueryRow(`SELECT access_token, refresh_token FROM grants`).Scan(&at, &rt))
		noErr(t, "raw outbound client", db.QueryRow(`SELECT metadata FROM outbound_clients`).Scan(&md))
		for i, c := range [][]byte{at, rt, md} {
			if bytes.Contains(c, []byte("PLAINTEXT")) {
				t.Errorf("cell %d stored in the clear: %q", i, c)
			}
			if len(c) < 2 || c[0] != sealVersion || string(c[2:2+int(c[1])]) != "k1" {
				t.Errorf("cell %d is not sealed under k1: %x", i, c)
			}
		}
		if b.driver == DriverSQLite {
			for _, suffix := range []string{"", "-wal"} {
				data, err := readFileIfExists(b.cfg.Path + suffix)
				noErr(t, "reading the database file", err)
				if bytes.Contains(data, []byte("PLAINTEXT")) {
					t.Errorf("%s holds plaintext", b.cfg.Path+suffix)
				}
			}
		}

		// alice's sealed refresh token copied into bob's row does not open.
		noErr(t, "PutGrant bob", s.PutGrant(ctx, testGrant("bob", "tracker", n)))
		_, err = db.Exec(q(`UPDATE grants SET refresh_token = ? WHERE subject = ?`), rt, "bob")
		noErr(t, "moving", err)
		_, err = s.GetGrant(ctx, "https://idp", "bob", "tracker")
		if err == nil || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("a token moved from alice's row into bob's: %v, want a does-not-open error", err)
		}
		if strings.Contains(err.Error(), "bob") || strings.Contains(err.Error(), "PLAINTEXT") {
			t.Fatalf("error names the row or content: %v", err)
		}
		// Also across upstreams of one user.
		noErr(t, "PutGrant alice/wiki", s.PutGrant(ctx, testGrant("alice", "wiki", n)))
		_, err = db.Exec(q(`UPDATE grants SET access_token = ? WHERE subject = ? AND upstream = ?`), at, "alice", "wiki")
		noErr(t, "moving", err)
		_, err = s.ListGrants(ctx, "https://idp", "alice")
		if err == nil || !strings.Contains(err.Error(), "does not open") {
			t.Fatalf("a token moved between upstreams: %v, want a does-not-open error", err)
		}
	})
}

// TestContractRevokeUserGrants: RevokeUser deletes the user's grants and
// no one else's.
func TestContractRevokeUserGrants(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		n := now()
		for _, u := range []string{"alice", "bob"} {
			for _, up := range []string{"tracker", "wiki"} {
				noErr(t, "PutGrant", s.PutGrant(ctx, testGrant(u, up, n)))
			}
		}
		other := testGrant("alice", "tracker", n)
		other.Issuer = "https://other-idp"
		noErr(t, "PutGrant other issuer", s.PutGrant(ctx, other))

		noErr(t, "RevokeUser", s.RevokeUser(ctx, "https://idp", "alice"))
		list, err := s.ListGrants(ctx, "https://idp", "alice")
		noErr(t, "ListGrants alice", err)
		if len(list) != 0 {
			t.Fatalf("alice has %d grants after RevokeUser", len(list))
		}
		_, err = s.UpdateGrant(ctx, "https://idp", "alice", "tracker", func(g Grant) (Grant, error) { return g, nil })
		mustErr(t, "UpdateGrant after RevokeUser", err, ErrNotFound)
		if list, _ := s.ListGrants(ctx, "https://idp", "bob"); len(list) != 2 {
			t.Fatalf("bob has %d grants after revoking alice, want 2", len(list))
		}
		if _, err := s.GetGrant(ctx, "https://other-idp", "alice", "tracker"); err != nil {
			t.Fatalf("alice at another issuer lost her grant: %v", err)
		}
	})
}

// recv waits up to d for a value on ch.
func recv(t *testing.T, ch <-chan string, d time.Duration) (string, bool) {
	t.Helper()
	select {
	case v, ok := <-ch:
		if !ok {
			t.Fatal("the Listen channel closed")
		}
		return v, true
	case <-time.After(d):
		return "", false
	}
}

func TestContractNotifyListen(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		s := b.open(t)
		lctx, cancel := context.WithCancel(ctx)
		defer cancel()
		a, err := s.Listen(lctx, "grants")
		noErr(t, "Listen", err)
		a2, err := s.Listen(lctx, "grants")
		noErr(t, "Listen again", err)
		other, err := s.Listen(lctx, "other")
		noErr(t, "Listen other", err)

		for _, p := range []string{"one", "two", "three"} {
			noErr(t, "Notify", s.Notify(ctx, "grants", p))
		}
		for name, ch := range map[string]<-chan string{"first": a, "second": a2} {
			for _, want := range []string{"one", "two", "three"} {
				got, ok := recv(t, ch, time.Second)
				if !ok || got != want {
					t.Fatalf("%s subscriber: got %q (%v), want %q", name, got, ok, want)
				}
			}
		}
		if got, ok := recv(t, other, 200*time.Millisecond); ok {
			t.Fatalf("a subscriber of another channel got %q", got)
		}

		// Bad input: precise errors, nothing sent.
		for _, c := range []string{"", "Grants", "1grants", "grants;drop", `gr"ants`, "g rants", strings.Repeat("a", 64)} {
			if err := s.Notify(ctx, c, "x"); err == nil || !strings.Contains(err.Error(), "channel") {
				t.Errorf("Notify on channel %q: %v, want a channel error", c, err)
			}
			if _, err := s.Listen(lctx, c); err == nil || !strings.Contains(err.Error(), "channel") {
				t.Errorf("Listen on channel %q: %v, want a channel error", c, err)
			}
		}
		noErr(t, "Notify of 7999 bytes", s.Notify(ctx, "grants", strings.Repeat("p", MaxNotifyPayload)))
		if got, ok := recv(t, a, time.Second); !ok || len(got) != MaxNotifyPayload {
			t.Fatalf("the 7999-byte payload: %d bytes (%v)", len(got), ok)
		}
		for _, p := range []string{strings.Repeat("p", MaxNotifyPayload+1), "", "nul\x00byte", "bad\xffutf8"} {
			if err := s.Notify(ctx, "grants", p); err == nil || !strings.Contains(err.Error(), "payload") {
				t.Errorf("Notify with payload of %d bytes: %v, want a payload error", len(p), err)
			}
		}

		// Ending ctx closes the channel.
		cancel()
		for _, ch := range []<-chan string{a, a2, other} {
			deadline := time.After(5 * time.Second)
		drain:
			for {
				select {
				case _, ok := <-ch:
					if !ok {
						break drain
					}
				case <-deadline:
					t.Fatal("Listen channel not closed after ctx ended")
				}
			}
		}
	})
}

// TestNotifyAcrossReplicas (PostgreSQL): Notify on replica A reaches
// Listen on replica B within a second; killing B's listening connection
// (pg_terminate_backend) makes it reconnect, announce the gap with an
// empty payload, and deliver again.
func TestNotifyAcrossReplicas(t *testing.T) {
	b := freshPostgres(t)
	a, bb := b.open(t), b.open(t)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := bb.Listen(lctx, "grants")
	noErr(t, "Listen", err)

	var worst time.Duration
	for i := range 20 {
		sent := time.Now()
		noErr(t, "Notify", a.Notify(ctx, "grants", fmt.Sprint("p", i)))
		got, ok := recv(t, ch, time.Second)
		if !ok || got != fmt.Sprint("p", i) {
			t.Fatalf("notification %d: got %q (%v) within 1 s", i, got, ok)
		}
		worst = max(worst, time.Since(sent))
	}
	t.Logf("replica A → replica B: 20 notifications, worst latency %v", worst)

	// Another schema (another deployment on the same database) is another
	// channel namespace.
	other := freshPostgres(t).open(t)
	noErr(t, "Notify from another schema", other.Notify(ctx, "grants", "elsewhere"))
	if got, ok := recv(t, ch, 300*time.Millisecond); ok {
		t.Fatalf("a notification of another schema arrived: %q", got)
	}

	// Kill the listener's connection.
	db, _ := raw(a)
	pids := func() []int {
		rows, err := db.Query(`SELECT pid FROM pg_stat_activity WHERE query = $1`, listenStatement(a.(*sqlStore).pgChannel("grants")))
		noErr(t, "pg_stat_activity", err)
		defer rows.Close()
		var out []int
		for rows.Next() {
			var p int
			noErr(t, "scan", rows.Scan(&p))
			out = append(out, p)
		}
		return out
	}
	before := pids()
	if len(before) != 1 {
		t.Fatalf("listener connections: %v, want exactly one", before)
	}
	killed := time.Now()
	var ok bool
	noErr(t, "pg_terminate_backend", db.QueryRow(`SELECT pg_terminate_backend($1)`, before[0]).Scan(&ok))
	if !ok {
		t.Fatal("pg_terminate_backend returned false")
	}
	got, ok := recv(t, ch, 5*time.Second)
	if !ok || got != "" {
		t.Fatalf("after the kill: got %q (%v), want the empty resync payload within 5 s", got, ok)
	}
	reconnected := time.Since(killed)
	after := pids()
	if len(after) != 1 || after[0] == before[0] {
		t.Fatalf("listener pids after reconnect: %v (before %v)", after, before)
	}
	sent := time.Now()
	noErr(t, "Notify after reconnect", a.Notify(ctx, "grants", "after"))
	if got, ok := recv(t, ch, time.Second); !ok || got != "after" {
		t.Fatalf("after reconnect: got %q (%v) within 1 s", got, ok)
	}
	t.Logf("listener reconnected %v after pg_terminate_backend; next notification in %v", reconnected.Round(time.Millisecond), time.Since(sent))

	// Closing the Store ends its listeners.
	bb.Close()
	select {
	case _, open := <-ch:
		for open {
			_, open = <-ch
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Listen channel still open 5 s after Close")
	}
}

// TestListenOverflowResyncs (SQLite's in-process fan-out): a subscriber
// that does not read never blocks Notify; past maxSubscriberQueue its
// backlog becomes one empty payload (resync), followed by what came after.
func TestListenOverflowResyncs(t *testing.T) {
	s := freshSQLite(t).open(t)
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := s.Listen(lctx, "grants")
	noErr(t, "Listen", err)
	const total = maxSubscriberQueue + 10
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range total {
			noErr(t, "Notify", s.Notify(ctx, "grants", fmt.Sprint("p", i)))
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify blocked on a subscriber that does not read")
	}
	var got []string
	for len(got) == 0 || got[len(got)-1] != fmt.Sprint("p", total-1) {
		v, ok := recv(t, ch, 2*time.Second)
		if !ok {
			t.Fatalf("after %d values (%v…), nothing more", len(got), got[:min(3, len(got))])
		}
		got = append(got, v)
	}
	if len(got) > 20 {
		t.Fatalf("received %d values, want the backlog collapsed", len(got))
	}
	resync := false
	for _, v := range got[:min(2, len(got))] {
		resync = resync || v == ""
	}
	if !resync {
		t.Fatalf("no empty (resync) payload at the start: %q", got[:min(3, len(got))])
	}
}
