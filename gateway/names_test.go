package gateway

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// listingAdapter is an upstream (not an MCP server: a native adapter)
// that lists well-formed and malformed definitions of every kind.
type listingAdapter struct{}

func (listingAdapter) Name() string { return "crm" }
func (listingAdapter) Close() error { return nil }
func (listingAdapter) Open(context.Context, upstreams.OpenOptions) (upstreams.Session, error) {
	return listingSession{}, nil
}

type listingSession struct {
	upstreams.Session // other methods are not used
}

func (listingSession) ListTools(context.Context, *mcp.ListToolsParams) (*mcp.ListToolsResult, error) {
	obj := map[string]any{"type": "object"}
	return &mcp.ListToolsResult{Tools: []*mcp.Tool{
		{Name: "good", InputSchema: obj},
		{Name: "two words", InputSchema: obj},
		{Name: "nbsp\u00a0name", InputSchema: obj},
		{Name: "c1\u0085", InputSchema: obj},
		{Name: strings.Repeat("a", 129), InputSchema: obj},
		{Name: "noschema"},
	}}, nil
}

func (listingSession) ListResources(context.Context, *mcp.ListResourcesParams) (*mcp.ListResourcesResult, error) {
	return &mcp.ListResourcesResult{Resources: []*mcp.Resource{
		{Name: "good", URI: "file:///a"},
		{Name: "relative", URI: "relative/path"},
		{Name: "empty"},
		nil,
	}}, nil
}

func (listingSession) ListResourceTemplates(context.Context, *mcp.ListResourceTemplatesParams) (*mcp.ListResourceTemplatesResult, error) {
	return &mcp.ListResourceTemplatesResult{ResourceTemplates: []*mcp.ResourceTemplate{
		{Name: "good", URITemplate: "file:///{path}"},
		{Name: "space", URITemplate: "file:///{a b}"},
		{Name: "noscheme", URITemplate: "/accounts/{id}"},
		{Name: "empty"},
	}}, nil
}

func (listingSession) ListPrompts(context.Context, *mcp.ListPromptsParams) (*mcp.ListPromptsResult, error) {
	return &mcp.ListPromptsResult{Prompts: []*mcp.Prompt{
		{Name: "good"},
		{Name: "tab\tname"},
		{Name: ""},
	}}, nil
}

func (listingSession) Close() error { return nil }

// TestCatalogSkipsMalformedDefinitions: the catalog applies the same
// checks as the mcp adapter (upstreams.Validate*) to every adapter's
// listings; only the well-formed entries reach the client.
func TestCatalogSkipsMalformedDefinitions(t *testing.T) {
	env := startMuxOpts(t, func(c *Config) {
		c.Upstreams = c.Upstreams[:1]
		c.Upstreams[0].Credentials = credentials.Config{Flow: credentials.FlowNone}
	}, Options{NewAdapter: func(upstreams.Config, credentials.Source) (upstreams.Adapter, error) { return listingAdapter{}, nil }})
	cs := connect(t, env.gw.mcpURL, env.aliceTk)
	ctx := context.Background()

	var got []string
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range tools.Tools {
		if x.Name != "whoami" {
			got = append(got, "tool "+x.Name)
		}
	}
	rs, err := cs.ListResources(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range rs.Resources {
		got = append(got, "resource "+x.Name)
	}
	ts, err := cs.ListResourceTemplates(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ts.ResourceTemplates {
		got = append(got, "template "+x.Name)
	}
	ps, err := cs.ListPrompts(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ps.Prompts {
		got = append(got, "prompt "+x.Name)
	}
	slices.Sort(got)
	want := []string{"prompt crm_good", "resource good", "template good", "tool crm_good"}
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
}
