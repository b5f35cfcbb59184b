package mcp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// An upstream that answers with a redirect is an upstream error: the
// adapter never follows it (it would carry the user's platform token and
// the call's body to wherever the Location points), on the go-sdk path
// (connecting and calling) and on the raw fast path, whatever redirect
// policy the HTTP client given to New has. The error names the redirect
// target without its query or user info.
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
	a, _ := testAdapter(t, front.URL, src, nil)

	check := func(t *testing.T, err error) {
		t.Helper()
		werr := rpcErr(t, err, CodeUpstreamUnavailable, "redirect", "307", second.Listener.Addr().String()+"/mcp", "does not follow")
		for _, leak := range []string{"s3cr3t", "hunter2", "frag"} {
			if strings.Contains(werr.Message, leak) || strings.Contains(string(werr.Data), leak) {
				t.Errorf("error %q / %s shows %q from the Location URL", werr.Message, werr.Data, leak)
			}
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
		resp, err := s.(*session).RawPost(ctx, []byte(`{"jsonrpc":"2.0","id":"mx-1","method":"tools/call","params":{"name":"echo","arguments":{"x":1}}}`))
		if err == nil {
			resp.Body.Close()
			t.Fatalf("RawPost through a redirect: HTTP %d, no error", resp.StatusCode)
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

	// testAdapter's client follows redirects (the default policy): nothing
	// may reach the redirect target anyway.
	mu.Lock()
	defer mu.Unlock()
	if len(elsewhere) > 0 {
		t.Errorf("the redirect target received %d requests: %q", len(elsewhere), elsewhere)
	}
}
