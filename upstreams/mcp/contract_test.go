package mcp

import (
	"fmt"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/upstreamstest"
)

// TestContract runs the shared adapter contract suite against the mcp
// adapter and a go-sdk upstream whose whoami tool answers with the platform
// token it received (per user).
func TestContract(t *testing.T) {
	u := newUpstream(t, upstreamOptions{})
	want := func(sub string) func(*sdk.CallToolResult) error {
		return func(res *sdk.CallToolResult) error {
			if res == nil || res.IsError || len(res.Content) == 0 {
				return fmt.Errorf("no result: %+v", res)
			}
			if got := res.Content[0].(*sdk.TextContent).Text; got != "Bearer platform-"+sub {
				return fmt.Errorf("upstream saw %q, want the platform token of %s", got, sub)
			}
			return nil
		}
	}
	user := func(sub string) *identity.Identity {
		return identity.Identity{Issuer: "https://idp.test/", Subject: sub}.WithRawToken(inboundSecret + "-" + sub)
	}
	upstreamstest.Run(t, upstreamstest.Harness{
		New: func(t *testing.T) upstreams.Adapter {
			a, _ := testAdapter(t, u.URL, &fakeSource{}, nil)
			return a
		},
		Users:        [2]upstreamstest.User{{Identity: user("alice"), Want: want("alice")}, {Identity: user("bob"), Want: want("bob")}},
		Call:         sdk.CallToolParams{Name: "whoami", Arguments: map[string]any{}},
		SessionBound: true,
	})
}
