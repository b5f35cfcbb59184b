package catalog

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

// fakeOpener lists tools from a fixed session and counts the fetches.
type fakeOpener struct {
	user  string
	tools []*mcp.Tool
	fail  error
	lists atomic.Int32
}

func (o *fakeOpener) User() string { return o.user }
func (o *fakeOpener) Upstream(context.Context, *State, *Upstream) (upstreams.Session, error) {
	return fakeSession{o}, nil
}

type fakeSession struct{ o *fakeOpener }

func (s fakeSession) ListTools(context.Context, *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	s.o.lists.Add(1)
	if s.o.fail != nil {
		return nil, s.o.fail
	}
	return &mcp.ListToolsResult{Tools: s.o.tools}, nil
}

// The rest of upstreams.Session is not used by a tools listing.
func (fakeSession) CallTool(context.Context, *mcp.CallToolParams) (*mcp.CallToolResult, error) {
	panic("unused")
}
func (fakeSession) ListResources(context.Context, *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error) {
	panic("unused")
}
func (fakeSession) ListResourceTemplates(context.Context, *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error) {
	panic("unused")
}
func (fakeSession) ReadResource(context.Context, *mcp.ReadResourceParams) (*mcp.ReadResourceResult, error) {
	panic("unused")
}
func (fakeSession) ListPrompts(context.Context, *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error) {
	panic("unused")
}
func (fakeSession) GetPrompt(context.Context, *mcp.GetPromptParams) (*mcp.GetPromptResult, error) {
	panic("unused")
}
func (fakeSession) Complete(context.Context, *mcp.CompleteParams) (*mcp.CompleteResult, error) {
	panic("unused")
}
func (fakeSession) Subscribe(context.Context, *mcp.SubscribeParams) error     { panic("unused") }
func (fakeSession) Unsubscribe(context.Context, *mcp.UnsubscribeParams) error { panic("unused") }
func (fakeSession) SetLoggingLevel(context.Context, *mcp.SetLoggingLevelParams) error {
	panic("unused")
}
func (fakeSession) Close() error { return nil }

func testState(t *testing.T) (*State, *Upstream) {
	t.Helper()
	st := Routes([]upstreams.Config{{Name: "crm", Prefix: upstreams.PrefixAlways, CatalogTTL: 1 << 40}}, "_")
	return st, st.Lookup("crm")
}

// TestHasToolCachesPerUserAndFailsClosed: a listing is fetched once per
// user and kept; a user whose listing cannot be fetched has no tools.
func TestHasToolCachesPerUserAndFailsClosed(t *testing.T) {
	st, u := testState(t)
	c := NewCache(slog.New(slog.DiscardHandler))
	alice := &fakeOpener{user: "alice", tools: []*mcp.Tool{{Name: "echo", InputSchema: map[string]any{"type": "object"}}}}
	for range 3 {
		if has, err := c.HasTool(context.Background(), alice, st, u, "echo"); !has || err != nil {
			t.Fatalf("alice's echo: %v %v", has, err)
		}
	}
	if n := alice.lists.Load(); n != 1 {
		t.Errorf("alice's listing fetched %d times, want once", n)
	}
	if has, _ := c.HasTool(context.Background(), alice, st, u, "other"); has {
		t.Error("a tool not in the listing was found")
	}
	bob := &fakeOpener{user: "bob", fail: errors.New("upstream down")}
	if has, err := c.HasTool(context.Background(), bob, st, u, "echo"); has || err == nil {
		t.Errorf("bob's listing failed, yet HasTool = %v, %v (want false and the error)", has, err)
	}
}

// TestPurgeWinsOverAFetchInFlight: a listing fetched across a purge is not
// cached, so a purged user's listing is fetched again.
func TestPurgeWinsOverAFetchInFlight(t *testing.T) {
	st, u := testState(t)
	c := NewCache(slog.New(slog.DiscardHandler))
	alice := &fakeOpener{user: "alice", tools: []*mcp.Tool{{Name: "echo", InputSchema: map[string]any{"type": "object"}}}}
	gen := c.purgeGeneration()
	e, err := c.fetch(context.Background(), alice, st, u, Tools)
	if err != nil {
		t.Fatal(err)
	}
	c.Purge("alice")
	c.store(key{"alice", "crm", Tools}, e, gen)
	if users := c.Users(); len(users) != 0 {
		t.Fatalf("a listing fetched before the purge was cached: %v", users)
	}
	if _, cached := c.CachedTool(alice, st, u, "echo"); cached {
		t.Error("CachedTool found a listing after the purge")
	}
}
