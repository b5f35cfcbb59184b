package mcp

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// An upstream that answers with a redirect is an upstream error: the
// adapter never follows it (it would carry the user's platform token and
// the call's body to wherever the Location points), on the go-sdk path
// (connecting and calling) and on the raw fast path, whatever redirect
// policy the HTTP client given to New has. The error, which the user
// sees, does not name the redirect target (it may be an internal address,
// and its query or user info may carry credentials); the operational log
// names it without query or user info.
func TestRedirectsNotFollowed(t *testing.T) {
	leakCheck(t)
	var mu sync.Mutex
	var elsewhere []string // Authorization headers that reached the second server
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhere = append(elsewhere, r.Method+" "+r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"jsonrpc":"2.0","id":1,"result":{}}`))
	}))
	defer second.Close()
	u := newUpstream(t, upstreamOptions{})
	var redirect atomic.Bool
	var loc atomic.Pointer[string]
	plain := second.URL + "/mcp?sig=s3cr3t#frag"
	loc.Store(&plain)
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if redirect.Load() {
			w.Header().Set("Location", *loc.Load())
			w.WriteHeader(http.StatusTemporaryRedirect)
			return
		}
		u.Config.Handler.ServeHTTP(w, r)
	}))
	defer front.Close()
	src := &fakeSource{}
	var logs syncBuffer
	a, err := New(upstreams.Config{Name: "crm", Kind: upstreams.KindMCP, URL: front.URL, Timeout: 10 * time.Second,
		Credentials: credentials.Config{Flow: credentials.FlowTokenExchange}},
		Deps{Credentials: src, HTTPClient: &http.Client{Transport: &http.Transport{}}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	target := second.Listener.Addr().String() + "/mcp"

	check := func(t *testing.T, err error) {
		t.Helper()
		werr := rpcErr(t, err, CodeUpstreamUnavailable, "redirect", "307", "does not follow", "url")
		for _, leak := range []string{"s3cr3t", "hunter2", "frag", second.Listener.Addr().String(), "127.0.0.1"} {
			if strings.Contains(werr.Message, leak) || strings.Contains(string(werr.Data), leak) {
				t.Errorf("error %q / %s shows %q from the Location URL", werr.Message, werr.Data, leak)
			}
		}
		if log := logs.String(); !strings.Contains(log, "redirect_to=http://"+target) {
			t.Errorf("the log does not name the redirect target %s:\n%s", target, log)
		}
	}

	t.Run("connect", func(t *testing.T) {
		redirect.Store(true)
		s := open(t, a, userCtx(context.Background(), "alice"), nil)
		defer s.Close()
		_, err := s.CallTool(userCtx(context.Background(), "alice"), &sdk.CallToolParams{Name: "echo"})
		check(t, err)
	})

	t.Run("call", func(t *testing.T) {
		redirect.Store(false)
		ctx := userCtx(context.Background(), "bob")
		s := open(t, a, ctx, nil)
		defer s.Close()
		if _, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "echo"}); err != nil {
			t.Fatal(err) // connected
		}
		redirect.Store(true)
		_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "echo"})
		check(t, err)
	})

	t.Run("raw", func(t *testing.T) {
		redirect.Store(false)
		ctx := userCtx(context.Background(), "carol")
		s := open(t, a, ctx, nil)
		defer s.Close()
		if _, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "echo"}); err != nil {
			t.Fatal(err) // connected
		}
		redirect.Store(true)
		_, err := s.(upstreams.RawCaller).CallToolRaw(ctx, "echo", []byte(`"mx-1"`), []byte(`{"jsonrpc":"2.0","id":"mx-1","method":"tools/call","params":{"name":"echo","arguments":{"x":1}}}`))
		if err == nil {
			t.Fatal("CallToolRaw through a redirect: no error")
		}
		check(t, err)
	})

	// User info in the Location is not shown either (go's client would
	// turn it into basic auth on the next hop).
	t.Run("userinfo", func(t *testing.T) {
		withUser := strings.Replace(second.URL, "http://", "http://user:hunter2@", 1) + "/mcp?sig=s3cr3t#frag"
		loc.Store(&withUser)
		redirect.Store(true)
		ctx := userCtx(context.Background(), "dave")
		s := open(t, a, ctx, nil)
		defer s.Close()
		_, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "echo"})
		check(t, err)
	})

	// The client given to New follows redirects (the default policy):
	// nothing may reach the redirect target anyway.
	mu.Lock()
	defer mu.Unlock()
	if len(elsewhere) > 0 {
		t.Errorf("the redirect target received %d requests: %q", len(elsewhere), elsewhere)
	}
	for _, leak := range []string{"s3cr3t", "hunter2", "frag"} {
		if strings.Contains(logs.String(), leak) {
			t.Errorf("the log shows %q from the Location URL", leak)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers (a log sink).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
