package gateway

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// listingFaults makes crm's tools/list fail or stall on demand, and counts
// the tool calls that reached crm.
type listingFaults struct {
	fail  atomic.Bool
	delay atomic.Int64 // nanoseconds tools/list waits
	calls atomic.Int32
}

func (f *listingFaults) build(s *mcp.Server, u *testUpstream) {
	addSubjectTools(s, u)
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			switch method {
			case "tools/list":
				time.Sleep(time.Duration(f.delay.Load()))
				if f.fail.Load() {
					return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "listing is broken"}
				}
			case "tools/call":
				f.calls.Add(1)
			}
			return next(ctx, method, req)
		}
	})
}

// TestToolCheckFailsClosed: when the user's listing of an upstream cannot
// be fetched and none is cached, a call is refused with an upstream error
// and never reaches the upstream; a stale listing of the same
// configuration still serves.
func TestToolCheckFailsClosed(t *testing.T) {
	f := &listingFaults{}
	env := startMuxBuild(t, f.build, func(c *Config) {
		c.Upstreams[0].CatalogTTL = 50 * time.Millisecond
	}, Options{})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)

	f.fail.Store(true)
	_, err := callJSON(t, alice, "crm_who", map[string]any{})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != CodeUpstream {
		t.Fatalf("call without a listing: %v, want upstream error %d", err, CodeUpstream)
	}
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("the upstream ran %d calls of a tool that could not be checked", n)
	}

	f.fail.Store(false)
	if res, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("after the listing recovered: %v", err)
	}
	// The listing is cached now; let it go stale and break the upstream's
	// listing again: the stale listing still decides.
	time.Sleep(60 * time.Millisecond)
	f.fail.Store(true)
	if res, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil || res.IsError {
		t.Fatalf("with a stale listing: %v", err)
	}
	if _, err := callJSON(t, alice, "crm_nope", map[string]any{}); err == nil {
		t.Fatal("a tool missing from the stale listing was called")
	}
}

// TestSharedListingFetchOutlivesFirstCaller: two sessions of one user wait
// for the same listing fetch; the first caller giving up does not fail the
// second (the fetch runs detached from the first caller's context).
func TestSharedListingFetchOutlivesFirstCaller(t *testing.T) {
	f := &listingFaults{}
	f.delay.Store(int64(400 * time.Millisecond))
	env := startMuxBuild(t, f.build, nil, Options{})
	a := connect(t, env.gw.mcpURL, env.aliceTk)
	b := connect(t, env.gw.mcpURL, env.aliceTk)

	first := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := a.ListTools(ctx, nil)
		first <- err
	}()
	time.Sleep(30 * time.Millisecond) // a's request has started the fetch
	res, err := b.ListTools(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range res.Tools {
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "crm_who") {
		t.Fatalf("second caller's listing %v lacks crm's tools: the shared fetch died with the first caller", names)
	}
	if err := <-first; err == nil {
		t.Log("the first caller finished in time (slow machine?)")
	}
}
