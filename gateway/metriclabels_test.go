package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// An upstream chooses its JSON-RPC error codes: a hostile one must not
// create a metrics series per code. The error_type label buckets them
// (known codes by name, the rest of the server range as server_error,
// anything else as other); the audit record keeps the exact code.
func TestUpstreamErrorCodesBucketedInMetrics(t *testing.T) {
	srv := mcp.NewServer(&mcp.Implementation{Name: "hostile", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "fail"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
		Code int64 `json:"code"`
	}) (*mcp.CallToolResult, any, error) {
		return nil, nil, &jsonrpc.Error{Code: in.Code, Message: "hostile"}
	})
	hostile := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil))
	t.Cleanup(hostile.Close)
	env := startMux(t, func(c *Config) {
		// audit_arguments keeps the call on the go-sdk path, which
		// classifies upstream JSON-RPC errors by code.
		c.Upstreams = append(c.Upstreams, upstreams.Config{Name: "hostile", Kind: upstreams.KindMCP, URL: hostile.URL,
			AuditArguments: true, Credentials: credentials.Config{Flow: credentials.FlowNone}})
	})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	codes := []int64{-32700, -32601, -32050, -32099, -31999, 1, 7, 12345, -99999}
	for _, code := range codes {
		if _, err := callJSON(t, alice, "hostile_fail", map[string]any{"code": code}); err == nil {
			t.Fatalf("code %d: no error", code)
		}
	}
	resp, err := http.Get(env.gw.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	re := regexp.MustCompile(`mcp_server_operation_duration_seconds_count\{([^}]*)\}`)
	var got []string
	for _, m := range re.FindAllStringSubmatch(string(body), -1) {
		if !strings.Contains(m[1], `mandate_upstream="hostile"`) || !strings.Contains(m[1], `mcp_method_name="tools/call"`) {
			continue
		}
		if et := regexp.MustCompile(`error_type="([^"]*)"`).FindStringSubmatch(m[1]); et != nil {
			got = append(got, et[1])
		}
	}
	slices.Sort(got)
	want := []string{"jsonrpc_method_not_found", "jsonrpc_other", "jsonrpc_parse_error", "jsonrpc_server_error"}
	if !slices.Equal(got, want) {
		t.Errorf("error_type values for the hostile upstream: %q, want %q", got, want)
	}
	// The audit record keeps the code the upstream sent.
	if a := env.audit.String(); !strings.Contains(a, `"error_class":"jsonrpc_12345"`) {
		t.Errorf("audit log lacks error_class jsonrpc_12345:\n%s", a)
	}
}
