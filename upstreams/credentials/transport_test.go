package credentials

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstream records every request's Authorization and body, and answers 401
// to tokens listed in reject.
type upstream struct {
	*httptest.Server
	mu     sync.Mutex
	auths  []string
	bodies []string
	reject map[string]bool
	raw    []string // every header and body, to search for leaked tokens
}

func newUpstream(t *testing.T, reject ...string) *upstream {
	u := &upstream{reject: map[string]bool{}}
	for _, r := range reject {
		u.reject["Bearer "+r] = true
	}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var dump strings.Builder
		_ = r.Header.Write(&dump)
		dump.WriteString(r.URL.String())
		dump.Write(body)
		u.mu.Lock()
		a := r.Header.Get("Authorization")
		u.auths = append(u.auths, a)
		u.bodies = append(u.bodies, string(body))
		u.raw = append(u.raw, dump.String())
		rej := u.reject[a]
		u.mu.Unlock()
		if rej {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			w.WriteHeader(401)
			return
		}
		_, _ = w.Write([]byte("ok"))
	}))
	t.Cleanup(u.Close)
	return u
}

func TestTransportAttachesPlatformToken(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	up := newUpstream(t)
	client := &http.Client{Transport: Transport(src, nil)}
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	for range 3 {
		req, _ := http.NewRequestWithContext(ctx, "POST", up.URL+"/api?q=1", strings.NewReader(`{"a":1}`))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	up.mu.Lock()
	defer up.mu.Unlock()
	for i, a := range up.auths {
		if a != "Bearer platform-alice-1" {
			t.Errorf("request %d Authorization = %q", i, a)
		}
	}
	for _, raw := range up.raw {
		if strings.Contains(raw, "inbound-token-of-alice") {
			t.Fatalf("the user's inbound token reached the upstream:\n%s", raw)
		}
	}
}

func TestTransportRetriesOnceOn401(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	up := newUpstream(t, "platform-alice-1") // the first token is refused (revoked upstream)
	client := &http.Client{Transport: Transport(src, nil)}
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	req, _ := http.NewRequestWithContext(ctx, "POST", up.URL, bytes.NewReader([]byte("payload")))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 after one retry", resp.StatusCode)
	}
	up.mu.Lock()
	auths, bodies := up.auths, up.bodies
	up.mu.Unlock()
	want := []string{"Bearer platform-alice-1", "Bearer platform-alice-2"}
	if strings.Join(auths, ",") != strings.Join(want, ",") {
		t.Errorf("upstream saw %v, want %v", auths, want)
	}
	if len(bodies) != 2 || bodies[0] != "payload" || bodies[1] != "payload" {
		t.Errorf("bodies = %q, want the body replayed", bodies)
	}
	if n := ts.calls.Load(); n != 2 {
		t.Errorf("%d exchanges, want 2 (one re-exchange)", n)
	}
}

func TestTransportRetriesOnlyOnce(t *testing.T) {
	t.Parallel()
	ts := exchangeServer(t, 3600, nil)
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	up := newUpstream(t, "platform-alice-1", "platform-alice-2", "platform-alice-3")
	client := &http.Client{Transport: Transport(src, nil)}
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	req, _ := http.NewRequestWithContext(ctx, "GET", up.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || len(up.auths) != 2 {
		t.Errorf("status %d after %d upstream requests, want 401 after 2", resp.StatusCode, len(up.auths))
	}
}

func TestTransportFlowNoneAddsNothing(t *testing.T) {
	t.Parallel()
	src := mustSource(t, NewBroker(BrokerOptions{}), "public", Config{Flow: FlowNone})
	up := newUpstream(t)
	client := &http.Client{Transport: Transport(src, nil)}
	req, _ := http.NewRequestWithContext(user(context.Background(), "alice", time.Now().Add(time.Hour)), "GET", up.URL, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(up.auths) != 1 || up.auths[0] != "" {
		t.Errorf("Authorization = %q, want none", up.auths)
	}
	if strings.Contains(up.raw[0], "inbound-token-of-alice") {
		t.Error("inbound token leaked")
	}
}

func TestTransportRefusesPresetAuthorization(t *testing.T) {
	t.Parallel()
	for _, flow := range []string{FlowNone, FlowTokenExchange} {
		ts := exchangeServer(t, 3600, nil)
		cfg := exchangeConfig(ts)
		if flow == FlowNone {
			cfg = Config{Flow: FlowNone}
		}
		src := mustSource(t, NewBroker(BrokerOptions{}), "crm", cfg)
		up := newUpstream(t)
		client := &http.Client{Transport: Transport(src, nil)}
		req, _ := http.NewRequestWithContext(user(context.Background(), "alice", time.Now().Add(time.Hour)), "GET", up.URL, nil)
		req.Header.Set("Authorization", "Bearer inbound-token-of-alice")
		_, err := client.Do(req)
		if !errors.Is(err, ErrAuthorizationPresent) {
			t.Errorf("%s: err = %v, want ErrAuthorizationPresent", flow, err)
		}
		if len(up.auths) != 0 {
			t.Errorf("%s: request reached the upstream", flow)
		}
	}
}

func TestTransportSurfacesCredentialErrors(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		_, _ = w.Write([]byte(entraInteractionRequired))
	})
	src := mustSource(t, NewBroker(BrokerOptions{}), "crm", Config{Flow: FlowEntraOBO, TokenURL: ts.TokenURL(), ClientID: "c", ClientSecret: "s", Scopes: []string{"api://crm/.default"}})
	up := newUpstream(t)
	client := &http.Client{Transport: Transport(src, nil)}
	req, _ := http.NewRequestWithContext(user(context.Background(), "alice", time.Now().Add(time.Hour)), "GET", up.URL, nil)
	_, err := client.Do(req)
	var oe *Error
	if !errors.As(err, &oe) || !oe.Interaction || oe.Claims == "" {
		t.Fatalf("err = %v, want *Error with Interaction and Claims", err)
	}
	if len(up.auths) != 0 {
		t.Error("request reached the upstream without a token")
	}
}
