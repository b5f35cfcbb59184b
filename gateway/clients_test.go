package gateway

import (
	"context"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

// listMethods are the MCP list methods real clients call.
var listMethods = []string{"tools/list", "prompts/list", "resources/list", "resources/templates/list"}

// checkListings lists every method of listMethods at url with the Inspector
// CLI and the TypeScript SDK client and compares each client's listing with
// want (names or URIs; an empty want means an empty array, which null is not).
func checkListings(t *testing.T, url, token string, want map[string][]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, p := range nodetools.CheckListings(nodetools.ListWithClients(ctx, url, token, listMethods...), want) {
		t.Error(p)
	}
}

// TestRealClientsListEmptyCatalogs lists through a gateway whose only
// upstream has tools and no prompts, resources or resource templates, with
// the MCP Inspector CLI and the official TypeScript SDK client, in both
// session modes: the empty lists must be arrays ("expected array, received
// null" otherwise, in both clients).
func TestRealClientsListEmptyCatalogs(t *testing.T) {
	nodetools.Require(t, nodetools.ToolInspector, nodetools.ToolTSSDK)
	for _, mode := range []string{SessionStateful, SessionStateless} {
		t.Run(mode, func(t *testing.T) {
			env := startMux(t, func(c *Config) {
				c.Server.Session.Mode = mode
				c.Upstreams = c.Upstreams[:1] // crm: tools only
			})
			checkListings(t, env.gw.mcpURL, env.aliceTk, map[string][]string{
				"tools/list":               {"crm_echo", "crm_t0", "crm_t1", "crm_t2", "crm_t3", "crm_t4", "crm_who", "whoami"},
				"prompts/list":             {},
				"resources/list":           {},
				"resources/templates/list": {},
			})
		})
	}
}
