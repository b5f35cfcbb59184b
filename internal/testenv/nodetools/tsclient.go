package nodetools

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// tsClientScript drives the official TypeScript SDK client; see the
// comment at its top.
//
//go:embed testdata/tsclient.mjs
var tsClientScript []byte

// ListMethods are the MCP list methods RunTSClient knows, with the member of
// their result that holds the list.
var ListMethods = map[string]string{
	"tools/list":               "tools",
	"prompts/list":             "prompts",
	"resources/list":           "resources",
	"resources/templates/list": "resourceTemplates",
}

// TSClientOutput is what RunTSClient's client saw.
type TSClientOutput struct {
	// ServerCapabilities from the initialize result.
	ServerCapabilities json.RawMessage `json:"serverCapabilities"`
	// Results by method.
	Results map[string]TSClientResult `json:"results"`
}

// TSClientResult is one list method's outcome in the TypeScript SDK client:
// Result is the whole list ({"tools":[…]}, every page) when the SDK accepted
// every page, else Error is the SDK's message (for a result that does not
// match the MCP schema, its validation error).
type TSClientResult struct {
	Result json.RawMessage `json:"result"`
	Error  string          `json:"error"`
}

// RunTSClient connects the official TypeScript SDK client
// (@modelcontextprotocol/sdk, under Node 22) to the streamable-HTTP MCP
// endpoint url with "Authorization: Bearer token" (none when token is
// empty) and calls each of methods (keys of ListMethods), following
// nextCursor. A method the SDK fails is reported in its TSClientResult; the
// error is for a client that could not run or connect, and never contains
// the token (which is passed in the environment, not on the command line).
func RunTSClient(ctx context.Context, url, token string, methods ...string) (*TSClientOutput, error) {
	node, ok := Node22()
	if !ok {
		return nil, fmt.Errorf("%w: node 22 not at %s", ErrToolMissing, node)
	}
	sdk, ok := TSSDK()
	if !ok {
		return nil, fmt.Errorf("%w: @modelcontextprotocol/sdk not at %q", ErrToolMissing, sdk)
	}
	dir, err := os.MkdirTemp("", "mcp-tsclient-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "tsclient.mjs")
	if err := os.WriteFile(script, tsClientScript, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, node, append([]string{script, url}, methods...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir,
		"MANDATE_TS_SDK="+sdk,
		"MCP_BEARER_TOKEN="+token,
		"NO_COLOR=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	redact := func(s string) string {
		if token == "" {
			return s
		}
		return strings.ReplaceAll(s, token, "[REDACTED]")
	}
	if err != nil {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("typescript sdk client: %s\nstderr: %s\nstdout: %.500s", redact(err.Error()),
			redact(strings.TrimSpace(stderr.String())), redact(stdout.String()))
	}
	var out TSClientOutput
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		return nil, fmt.Errorf("decoding the typescript sdk client's output: %w (output: %.300s)", err, redact(stdout.String()))
	}
	return &out, nil
}

// ListKeys returns the key of every item of a list method's result (as
// sent, before any client-side parsing): the name of each tool and prompt,
// the uri of each resource, the uriTemplate of each resource template. It
// is an error when the result's list member is missing, null or not an
// array — MCP requires an array, even an empty one — or an item lacks its key.
func ListKeys(method string, result json.RawMessage) ([]string, error) {
	field, ok := ListMethods[method]
	if !ok {
		return nil, fmt.Errorf("%s is not a list method", method)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(result, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%s: result is not an object: %.200s", method, result)
	}
	raw, ok := obj[field]
	if !ok {
		return nil, fmt.Errorf("%s: result has no %q: %.200s", method, field, result)
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '[' {
		return nil, fmt.Errorf("%s: %q is %.100s, want an array", method, field, raw)
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, fmt.Errorf("%s: %q: %w", method, field, err)
	}
	key := map[string]string{"tools": "name", "prompts": "name", "resources": "uri", "resourceTemplates": "uriTemplate"}[field]
	keys := make([]string, 0, len(items))
	for i, it := range items {
		var k string
		if err := json.Unmarshal(it[key], &k); err != nil || k == "" {
			return nil, fmt.Errorf("%s: %s[%d] has no %s", method, field, i, key)
		}
		keys = append(keys, k)
	}
	return keys, nil
}
