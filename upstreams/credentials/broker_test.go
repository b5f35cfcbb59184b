package credentials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
)

// exchangeServer is an RFC 8693 endpoint that issues "platform-<user>-<n>"
// for subject token "inbound-token-of-<user>", with expires_in = lifetime.
func exchangeServer(t testing.TB, lifetime int, gate <-chan struct{}) *tokenServer {
	var n atomic.Int64
	return newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		if gate != nil {
			<-gate
		}
		u, ok := strings.CutPrefix(form.Get("subject_token"), "inbound-token-of-")
		if !ok {
			oauthError(w, 400, "invalid_grant", "unknown subject token")
			return
		}
		writeJSON(w, 200, map[string]any{
			"access_token": fmt.Sprintf("platform-%s-%d", u, n.Add(1)), "issued_token_type": TokenTypeAccessToken,
			"token_type": "Bearer", "expires_in": lifetime,
		})
	})
}

func exchangeConfig(ts *tokenServer) Config {
	return Config{Flow: FlowTokenExchange, TokenURL: ts.TokenURL(), ClientID: "mandate", ClientSecret: "s", Audience: "https://crm.internal"}
}

func TestConcurrentOneUserOneExchange(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	ts := exchangeServer(t, 3600, gate)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	const N = 200
	var wg sync.WaitGroup
	toks := make([]string, N)
	errs := make([]error, N)
	for i := range N {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := src.Token(ctx)
			errs[i] = err
			if err == nil {
				toks[i] = r.Token.AccessToken.Reveal()
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // let callers pile up behind the flight
	close(gate)
	wg.Wait()
	for i := range N {
		if errs[i] != nil || toks[i] != "platform-alice-1" {
			t.Fatalf("call %d: token %q err %v", i, toks[i], errs[i])
		}
	}
	if n := ts.calls.Load(); n != 1 {
		t.Fatalf("%d exchanges for %d concurrent calls by one user, want 1", n, N)
	}
}

func TestConcurrentManyUsers(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	const users, calls = 50, 20
	var wg sync.WaitGroup
	var bad atomic.Int64
	for u := range users {
		name := fmt.Sprintf("user%02d", u)
		ctx := user(context.Background(), name, time.Now().Add(time.Hour))
		for range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := src.Token(ctx)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					bad.Add(1)
					return
				}
				// Every result carries THIS user's token.
				if got := r.Token.AccessToken.Reveal(); !strings.HasPrefix(got, "platform-"+name+"-") {
					t.Errorf("%s got %q", name, got)
					bad.Add(1)
				}
			}()
		}
	}
	wg.Wait()
	if n := ts.calls.Load(); n != users {
		t.Fatalf("%d exchanges for %d users × %d calls, want %d", n, users, calls, users)
	}
}

func TestCancelledCallerDoesNotFailOthers(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	ts := exchangeServer(t, 3600, gate)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	base := user(context.Background(), "alice", time.Now().Add(time.Hour))

	first, cancel := context.WithCancel(base)
	firstErr := make(chan error, 1)
	go func() { _, err := src.Token(first); firstErr <- err }()
	for ts.calls.Load() == 0 { // the first caller's exchange is at the server
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	results := make([]error, 10)
	for i := range results {
		wg.Add(1)
		go func() { defer wg.Done(); _, results[i] = src.Token(base) }()
	}
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-firstErr:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled caller: err = %v, want context.Canceled", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancelled caller did not return promptly")
	}
	close(gate)
	wg.Wait()
	for i, err := range results {
		if err != nil {
			t.Errorf("caller %d failed because another was cancelled: %v", i, err)
		}
	}
	if n := ts.calls.Load(); n != 1 {
		t.Errorf("%d exchanges, want 1", n)
	}
}

func TestExchangeTimeout(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	ts := exchangeServer(t, 3600, gate)
	t.Cleanup(func() { close(gate) }) // runs before the server's Close
	cfg := exchangeConfig(ts)
	cfg.Timeout = 100 * time.Millisecond
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", cfg)
	start := time.Now()
	_, err := src.Token(user(context.Background(), "alice", time.Now().Add(time.Hour)))
	var oe *Error
	if !errors.As(err, &oe) || !oe.Retryable || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want retryable *Error wrapping DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %s", d)
	}
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	clock := newClock()
	ts := exchangeServer(t, 60, nil)
	b := NewBroker(BrokerOptions{Now: clock.Now})
	cfg := exchangeConfig(ts)
	cfg.CacheSkew = 5 * time.Second
	src := mustSource(t, b, "crm", cfg)
	ctx := user(context.Background(), "alice", clock.Now().Add(time.Hour))

	steps := []struct {
		advance time.Duration
		want    string
		wantHit bool
		comment string
	}{
		{0, "platform-alice-1", false, "first call exchanges"},
		{30 * time.Second, "platform-alice-1", true, "30 s later: cached"},
		{24 * time.Second, "platform-alice-1", true, "54 s: still inside 60 s - 5 s skew"},
		{1 * time.Second, "platform-alice-2", false, "55 s: expiry - skew reached, re-exchanged"},
		{10 * time.Second, "platform-alice-2", true, "new token cached"},
	}
	for _, s := range steps {
		clock.Advance(s.advance)
		r, err := src.Token(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Token.AccessToken.Reveal(); got != s.want || r.CacheHit != s.wantHit {
			t.Errorf("%s: token %q hit %v, want %q hit %v", s.comment, got, r.CacheHit, s.want, s.wantHit)
		}
	}
}

func TestUserTokenExpiryCapsCache(t *testing.T) {
	t.Parallel()
	clock := newClock()
	ts := exchangeServer(t, 3600, nil) // platform token: 1 h
	b := NewBroker(BrokerOptions{Now: clock.Now})
	src := mustSource(t, b, "crm", exchangeConfig(ts))
	// The user's inbound token expires in 2 minutes.
	ctx := user(context.Background(), "alice", clock.Now().Add(2*time.Minute))
	if _, err := src.Token(ctx); err != nil {
		t.Fatal(err)
	}
	clock.Advance(89 * time.Second) // < 120 s - 30 s skew
	if r, _ := src.Token(ctx); !r.CacheHit {
		t.Error("89 s: expected a cache hit")
	}
	clock.Advance(1 * time.Second) // = user expiry - skew, while the platform token has 58 min left
	r, err := src.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r.CacheHit || r.Token.AccessToken.Reveal() != "platform-alice-2" {
		t.Errorf("90 s: hit=%v token=%q; the entry must not outlive the user's token", r.CacheHit, r.Token.AccessToken.Reveal())
	}
}

func TestDefaultLifetimeWithoutExpiresIn(t *testing.T) {
	t.Parallel()
	clock := newClock()
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		writeJSON(w, 200, map[string]any{"access_token": "t", "token_type": "Bearer"})
	})
	cfg := Config{Flow: FlowClientCredentials, TokenURL: ts.TokenURL(), ClientID: "c", ClientSecret: "s", DefaultLifetime: 2 * time.Minute, CacheSkew: time.Second}
	src := mustSource(t, NewBroker(BrokerOptions{Now: clock.Now}), "x", cfg)
	ctx := context.Background()
	_, _ = src.Token(ctx)
	clock.Advance(118 * time.Second)
	if r, _ := src.Token(ctx); !r.CacheHit {
		t.Error("118 s: want hit")
	}
	clock.Advance(time.Second)
	if r, _ := src.Token(ctx); r.CacheHit {
		t.Error("119 s: want a new exchange")
	}
	if ts.calls.Load() != 2 {
		t.Errorf("calls = %d", ts.calls.Load())
	}
}

func TestInvalidGrantBackoff(t *testing.T) {
	t.Parallel()
	clock := newClock()
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		oauthError(w, 400, "invalid_grant", "subject token is not active")
	})
	src := mustSource(t, NewBroker(BrokerOptions{Now: clock.Now}), "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", clock.Now().Add(time.Hour))
	for range 3 {
		_, err := src.Token(ctx)
		var oe *Error
		if !errors.As(err, &oe) || oe.Code != "invalid_grant" {
			t.Fatalf("err = %v", err)
		}
	}
	if n := ts.calls.Load(); n != 1 {
		t.Errorf("%d requests within the back-off, want 1", n)
	}
	// A new inbound token (the user signed in again) is not held back.
	fresh := withIdentity(context.Background(), *identity.FromContext(ctx), "a-new-inbound-token")
	_, _ = src.Token(fresh)
	if n := ts.calls.Load(); n != 2 {
		t.Errorf("new inbound token: %d requests, want 2", n)
	}
	clock.Advance(DefaultInvalidGrantBackoff)
	_, _ = src.Token(ctx)
	if n := ts.calls.Load(); n != 3 {
		t.Errorf("after back-off: %d requests, want 3", n)
	}
}

func TestPurge(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	b := NewBroker(BrokerOptions{})
	crm := mustSource(t, b, "crm", exchangeConfig(ts))
	cfg2 := exchangeConfig(ts)
	cfg2.Audience = "https://hr.internal"
	hr := mustSource(t, b, "hr", cfg2)
	alice := user(context.Background(), "alice", time.Now().Add(time.Hour))
	bob := user(context.Background(), "bob", time.Now().Add(time.Hour))
	for _, s := range []Source{crm, hr} {
		for _, c := range []context.Context{alice, bob} {
			if _, err := s.Token(c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := b.Purge("https://idp.example.com/", "alice"); n != 2 {
		t.Errorf("Purge dropped %d entries, want 2", n)
	}
	if r, _ := crm.Token(alice); r.CacheHit {
		t.Error("alice still cached after purge")
	}
	if r, _ := crm.Token(bob); !r.CacheHit {
		t.Error("bob's token was purged too")
	}
}

func TestInvalidateOnlyStale(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	r1, _ := src.Token(ctx)
	src.Invalidate(ctx, r1.Token)
	r2, _ := src.Token(ctx)
	if r2.CacheHit || r2.Token == r1.Token {
		t.Fatal("Invalidate did not drop the stale token")
	}
	src.Invalidate(ctx, r1.Token) // r1 is no longer cached: keep r2
	if r3, _ := src.Token(ctx); !r3.CacheHit || r3.Token != r2.Token {
		t.Error("Invalidate with an old token dropped the fresh one")
	}
}

func TestOnExchangeOutcomes(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	var mu sync.Mutex
	var got []string
	b := NewBroker(BrokerOptions{OnExchange: func(up, flow, outcome string) {
		mu.Lock()
		got = append(got, up+"/"+flow+"/"+outcome)
		mu.Unlock()
	}})
	src := mustSource(t, b, "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	_, _ = src.Token(ctx)
	_, _ = src.Token(ctx)
	want := []string{"crm/token_exchange/ok", "crm/token_exchange/hit"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("outcomes = %v, want %v", got, want)
	}
}

func TestFlowNone(t *testing.T) {
	t.Parallel()
	src := mustSource(t, NewBroker(BrokerOptions{}), "public", Config{Flow: FlowNone})
	r, err := src.Token(context.Background())
	if err != nil || r.Token != nil {
		t.Fatalf("none: %+v %v", r, err)
	}
}

func TestPurgeDuringExchangeIsNotCached(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	ts := exchangeServer(t, 3600, gate)
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() { _, err := src.Token(ctx); done <- err }()
	for ts.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	b.Purge("https://idp.example.com/", "alice") // revoked while the exchange runs
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, err := src.Token(ctx); err != nil || r.CacheHit {
		t.Fatalf("token obtained across a purge was cached (hit=%v, err=%v)", r.CacheHit, err)
	}
}

// A purge of one user (a grant change, an admin purge) does not keep the
// token another user obtained meanwhile out of the cache: purge
// generations are per user shard, not broker-wide.
func TestPurgeOfOtherUserKeepsExchangeCached(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	ts := exchangeServer(t, 3600, gate)
	b := NewBroker(BrokerOptions{})
	src := mustSource(t, b, "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	done := make(chan error, 1)
	go func() { _, err := src.Token(ctx); done <- err }()
	for ts.calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	// Another user (not in alice's shard) is purged while alice's exchange runs.
	other := ""
	for i := 0; other == ""; i++ {
		if s := fmt.Sprintf("bob-%d", i); b.gen("https://idp.example.com/", s) != b.gen("https://idp.example.com/", "alice") {
			other = s
		}
	}
	b.Purge("https://idp.example.com/", other)
	b.PurgeUpstream("https://idp.example.com/", other, "crm")
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if r, err := src.Token(ctx); err != nil || !r.CacheHit {
		t.Fatalf("alice's token was not cached after another user's purge (hit=%v, err=%v)", r.CacheHit, err)
	}
}

// TestSecretFilesBounded: client_secret_file, private_key_file and
// certificate_file are read up to 64 KiB (secret.MaxFileBytes), like
// admin.token_file.
func TestSecretFilesBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), secret.MaxFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	key := writeRSAKey(t, false)
	b := NewBroker(BrokerOptions{})
	for name, cfg := range map[string]Config{
		"client_secret_file": {Flow: FlowClientCredentials, TokenURL: "https://idp.example/t", ClientID: "m", ClientSecretFile: big},
		"private_key_file":   {Flow: FlowJWTBearer, TokenURL: "https://idp.example/t", ClientID: "m", PrivateKeyFile: big},
		"certificate_file":   {Flow: FlowJWTBearer, TokenURL: "https://idp.example/t", ClientID: "m", PrivateKeyFile: key, CertificateFile: big},
	} {
		if _, err := b.Source("u", cfg); err == nil || !strings.Contains(err.Error(), "larger than 64 KiB") {
			t.Errorf("%s of 64 KiB + 1: %v, want larger than 64 KiB", name, err)
		}
	}
}
