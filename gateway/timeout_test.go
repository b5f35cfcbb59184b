package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

// TestTimeoutsAreTheUpstreams: a resources/read or prompts/get that runs
// past the upstream's timeout is reported as the upstream's timeout
// (-32011, "timed out after") and counted against its health on /readyz,
// like tools/call — not as a deadline of the gateway's own (the gateway's
// deadline equals the upstream timeout and used to fire first).
func TestTimeoutsAreTheUpstreams(t *testing.T) {
	slow := func(s *mcp.Server, u *testUpstream) {
		addSubjectTools(s, u)
		s.AddResource(&mcp.Resource{URI: "crm://slow", Name: "slow"}, func(ctx context.Context, _ *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
		s.AddPrompt(&mcp.Prompt{Name: "slow"}, func(ctx context.Context, _ *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
	}
	env := startMuxBuild(t, slow, func(c *Config) { c.Upstreams[0].Timeout = 500 * time.Millisecond }, Options{})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"resources/read": func() error {
			_, err := alice.ReadResource(ctx, &mcp.ReadResourceParams{URI: "crm://slow"})
			return err
		},
		"prompts/get": func() error {
			_, err := alice.GetPrompt(ctx, &mcp.GetPromptParams{Name: "crm_slow"})
			return err
		},
	} {
		err := call()
		var je *jsonrpc.Error
		if !errors.As(err, &je) || je.Code != upstreams.CodeUpstreamTimeout || !strings.Contains(je.Message, "timed out after") {
			t.Errorf("%s past the timeout: %v, want %d timed out after", name, err, upstreams.CodeUpstreamTimeout)
		}
	}
	resp, err := http.Get(env.gw.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rz map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&rz)
	if s := fmt.Sprint(rz); !strings.Contains(s, "timed out") {
		t.Errorf("/readyz after two upstream timeouts does not show them: %s", s)
	}
}
