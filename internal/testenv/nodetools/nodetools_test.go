package nodetools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// fakeTB records Skipf and Fatalf instead of stopping the test.
type fakeTB struct{ skipped, fatal string }

func (f *fakeTB) Helper()                           {}
func (f *fakeTB) Skipf(format string, args ...any)  { f.skipped = fmt.Sprintf(format, args...) }
func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal = fmt.Sprintf(format, args...) }

func writeExec(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestRequire(t *testing.T) {
	dir := t.TempDir()
	present := filepath.Join(dir, "tool")
	writeExec(t, present, "#!/bin/sh\n")
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	nodeDir := filepath.Join(dir, "node22")
	writeExec(t, filepath.Join(nodeDir, "node"), "#!/bin/sh\n")
	missing := filepath.Join(dir, "nope")

	tests := []struct {
		name      string
		env       map[string]string
		tool      Tool
		e2e       bool
		wantSkip  bool
		wantFatal bool
	}{
		{"everything-server present", map[string]string{EnvEverythingServer: present}, ToolEverythingServer, false, false, false},
		{"everything-server missing skips", map[string]string{EnvEverythingServer: missing}, ToolEverythingServer, false, true, false},
		{"everything-server missing fails under e2e", map[string]string{EnvEverythingServer: missing}, ToolEverythingServer, true, false, true},
		{"binary not executable", map[string]string{EnvHydra: notExec}, ToolHydra, false, true, false},
		{"inspector present", map[string]string{EnvNode22Bin: nodeDir, EnvInspector: notExec}, ToolInspector, true, false, false},
		{"inspector without node 22", map[string]string{EnvNode22Bin: missing, EnvInspector: notExec}, ToolInspector, true, false, true},
		{"conformance missing", map[string]string{EnvNode22Bin: nodeDir, EnvConformance: missing}, ToolConformance, false, true, false},
		{"typescript sdk missing", map[string]string{EnvNode22Bin: nodeDir, EnvTSSDK: missing}, ToolTSSDK, true, false, true},
		{"typescript sdk without its client", map[string]string{EnvNode22Bin: nodeDir, EnvTSSDK: dir}, ToolTSSDK, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			if tt.e2e {
				t.Setenv(EnvE2E, "1")
			} else {
				t.Setenv(EnvE2E, "")
			}
			var f fakeTB
			Require(&f, tt.tool)
			if (f.skipped != "") != tt.wantSkip || (f.fatal != "") != tt.wantFatal {
				t.Fatalf("skipped=%q fatal=%q; want skip=%v fatal=%v", f.skipped, f.fatal, tt.wantSkip, tt.wantFatal)
			}
			if f.skipped != "" && !strings.Contains(f.skipped, "bash .ci/test.sh") {
				t.Errorf("skip message %q does not name bash .ci/test.sh", f.skipped)
			}
			if msg := f.skipped + f.fatal; msg != "" && !strings.Contains(msg, string(tt.tool)) && !strings.Contains(msg, "node22") {
				t.Errorf("message %q does not name the tool", msg)
			}
		})
	}
}

func TestRepoRootDefaults(t *testing.T) {
	t.Setenv(EnvInspector, "")
	root := RepoRoot()
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot() = %q: %v", root, err)
	}
	p, _ := Inspector()
	if want := filepath.Join(root, defaultInspector); p != want {
		t.Errorf("Inspector() = %q, want the default %q", p, want)
	}
}

// TestRunInspectorRedacts runs a fake node that echoes its arguments, the
// token included, to stderr and fails like the CLI does.
func TestRunInspectorRedacts(t *testing.T) {
	dir := t.TempDir()
	argsFile := filepath.Join(dir, "args")
	writeExec(t, filepath.Join(dir, "bin", "node"), `#!/bin/sh
printf '%s\n' "$@" > `+argsFile+`
echo "HOME=$HOME" >> `+argsFile+`
echo "called with: $*" >&2
echo '{"error":{"code":"auth_required","message":"rejected Authorization: Bearer s3cr3t-token"}}' >&2
exit 3
`)
	cli := filepath.Join(dir, "cli.js")
	if err := os.WriteFile(cli, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvNode22Bin, filepath.Join(dir, "bin"))
	t.Setenv(EnvInspector, cli)

	out, err := RunInspector(context.Background(), "http://127.0.0.1:1/mcp", "s3cr3t-token", "tools/call", "--tool-name", "whoami")
	var ie *InspectorError
	if !errors.As(err, &ie) {
		t.Fatalf("err = %v (output %q), want *InspectorError", err, out)
	}
	if ie.ExitCode != 3 || ie.Code != "auth_required" {
		t.Errorf("exit %d code %q, want 3 auth_required", ie.ExitCode, ie.Code)
	}
	if strings.Contains(err.Error(), "s3cr3t-token") || strings.Contains(ie.Message, "s3cr3t-token") || strings.Contains(ie.Stderr, "s3cr3t-token") {
		t.Errorf("the token leaked into the error: %v", err)
	}
	if !strings.Contains(err.Error(), "[REDACTED]") {
		t.Errorf("error %q does not show the redaction", err)
	}
	b, err := os.ReadFile(argsFile)
	if err != nil {
		t.Fatal(err)
	}
	args := string(b)
	for _, want := range []string{cli + "\n--cli\nhttp://127.0.0.1:1/mcp\n--transport\nhttp\n--method\ntools/call\n",
		"--header\nAuthorization: Bearer s3cr3t-token\n", "--format\njson\n", "--stored-auth-only\n", "--tool-name\nwhoami\n"} {
		if !strings.Contains(args, want) {
			t.Errorf("node was run with\n%s\nwant it to contain %q", args, want)
		}
	}
	if home, _ := os.UserHomeDir(); strings.Contains(args, "HOME="+home+"\n") {
		t.Errorf("the CLI ran with the real HOME")
	}
}

// TestRunInspectorRealServer runs the real Inspector CLI against a go-sdk
// server that requires a bearer token.
func TestRunInspectorRealServer(t *testing.T) {
	RequireInspector(t)
	t.Parallel()
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	type outT struct {
		Echo string `json:"echo"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, a in) (*mcp.CallToolResult, outT, error) {
		return nil, outT{Echo: a.Text}, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-token" {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	out, err := RunInspector(ctx, ts.URL+"/mcp", "good-token", "tools/call", "--tool-name", "echo", "--tool-arg", "text=hello")
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		StructuredContent outT `json:"structuredContent"`
	}
	if err := InspectorResult(out, &res); err != nil {
		t.Fatal(err)
	}
	if res.StructuredContent.Echo != "hello" {
		t.Errorf("echo = %s", out)
	}

	_, err = RunInspector(ctx, ts.URL+"/mcp", "bad-token", "tools/list")
	var ie *InspectorError
	if !errors.As(err, &ie) || ie.ExitCode != InspectorExitAuthRequired || ie.Code != "auth_required" {
		t.Fatalf("with a bad token: %v; want exit %d auth_required", err, InspectorExitAuthRequired)
	}
}

func TestNodeCommand(t *testing.T) {
	dir := t.TempDir()
	writeExec(t, filepath.Join(dir, "bin", "node"), "#!/bin/sh\necho \"$PATH\"\nprintf '%s\\n' \"$@\"\n")
	t.Setenv(EnvNode22Bin, filepath.Join(dir, "bin"))
	cmd, err := NodeCommand(context.Background(), "/x/cli.js", "server", "--url", "http://127.0.0.1:1/mcp")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(dir, "bin") + string(os.PathListSeparator)
	lines := strings.SplitN(string(out), "\n", 2)
	if !strings.HasPrefix(lines[0], want) {
		t.Errorf("PATH = %q, want it to start with %q", lines[0], want)
	}
	if lines[1] != "/x/cli.js\nserver\n--url\nhttp://127.0.0.1:1/mcp\n" {
		t.Errorf("args = %q", lines[1])
	}

	t.Setenv(EnvNode22Bin, filepath.Join(dir, "missing"))
	if _, err := NodeCommand(context.Background(), "/x/cli.js"); !errors.Is(err, ErrToolMissing) {
		t.Errorf("without node 22: err = %v, want ErrToolMissing", err)
	}
}

func TestListKeys(t *testing.T) {
	tests := []struct {
		method, result string
		want           []string
		wantErr        string
	}{
		{"tools/list", `{"tools":[{"name":"a"},{"name":"b"}]}`, []string{"a", "b"}, ""},
		{"prompts/list", `{"prompts":[]}`, []string{}, ""},
		{"resources/list", `{"resources":[{"uri":"x://1","name":"one"}]}`, []string{"x://1"}, ""},
		{"resources/templates/list", `{"resourceTemplates":[{"uriTemplate":"x://{id}","name":"t"}]}`, []string{"x://{id}"}, ""},
		{"prompts/list", `{"prompts":null}`, nil, `"prompts" is null, want an array`},
		{"resources/list", `{}`, nil, `result has no "resources"`},
		{"tools/list", `{"tools":{}}`, nil, "want an array"},
		{"tools/list", `{"tools":[{"title":"no name"}]}`, nil, "tools[0] has no name"},
		{"tools/list", `null`, nil, "not an object"},
		{"tools/call", `{}`, nil, "not a list method"},
	}
	for _, tt := range tests {
		got, err := ListKeys(tt.method, json.RawMessage(tt.result))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ListKeys(%s, %s) = %v, %v; want error containing %q", tt.method, tt.result, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tt.want) || got == nil {
			t.Errorf("ListKeys(%s, %s) = %#v, %v; want %#v", tt.method, tt.result, got, err, tt.want)
		}
	}
}

// nullListsServer is a minimal streamable-HTTP MCP server (JSON responses)
// that answers every list method with a null list, as Mandate did.
func nullListsServer(t *testing.T, token string) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost {
			http.Error(w, "no stream", http.StatusMethodNotAllowed)
			return
		}
		var req struct {
			ID     json.RawMessage `json:"id"`
			Method string          `json:"method"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if req.ID == nil {
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var result string
		switch req.Method {
		case "initialize":
			result = `{"protocolVersion":"2025-11-25","capabilities":{"tools":{},"prompts":{},"resources":{}},"serverInfo":{"name":"nulls","version":"1"}}`
		case "tools/list":
			result = `{"tools":[{"name":"t","inputSchema":{"type":"object"}}]}`
		default:
			f := ListMethods[req.Method]
			result = `{"` + f + `":null}`
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"jsonrpc":"2.0","id":%s,"result":%s}`, req.ID, result)
	}))
	t.Cleanup(ts.Close)
	return ts
}

// TestRunTSClient runs the real TypeScript SDK client against a go-sdk
// server, and against one that sends null lists: the SDK must reject
// those, or the list tests built on it could not fail.
func TestRunTSClient(t *testing.T) {
	RequireTSSDK(t)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := []string{"tools/list", "prompts/list", "resources/list", "resources/templates/list"}

	srv := mcp.NewServer(&mcp.Implementation{Name: "full", Version: "1"}, &mcp.ServerOptions{PageSize: 1})
	for _, n := range []string{"b", "a"} {
		mcp.AddTool(srv, &mcp.Tool{Name: n}, func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, any, error) {
			return nil, nil, nil
		})
	}
	srv.AddPrompt(&mcp.Prompt{Name: "greet"}, func(context.Context, *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) { return nil, nil })
	srv.AddResource(&mcp.Resource{URI: "x://r", Name: "r"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) { return nil, nil })
	srv.AddResourceTemplate(&mcp.ResourceTemplate{URITemplate: "x://{id}", Name: "t"}, func(context.Context, *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
		return nil, nil
	})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer good-token" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	}))
	defer ts.Close()

	out, err := RunTSClient(ctx, ts.URL+"/mcp", "good-token", all...)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"tools/list": {"a", "b"}, "prompts/list": {"greet"}, "resources/list": {"x://r"}, "resources/templates/list": {"x://{id}"}}
	for _, m := range all {
		r := out.Results[m]
		got, err := ListKeys(m, r.Result)
		if r.Error != "" || err != nil || !slices.Equal(got, want[m]) {
			t.Errorf("%s: got %v (error %q, %v), want %v (pages of one, followed)", m, got, r.Error, err, want[m])
		}
	}

	_, err = RunTSClient(ctx, ts.URL+"/mcp", "s3cr3t-bad-token", "tools/list")
	if err == nil || strings.Contains(err.Error(), "s3cr3t-bad-token") {
		t.Errorf("with a bad token: err = %v; want an error without the token", err)
	}

	nulls := nullListsServer(t, "good-token")
	out, err = RunTSClient(ctx, nulls.URL+"/mcp", "good-token", all...)
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Results["tools/list"]; r.Error != "" {
		t.Errorf("tools/list from the null server: %s", r.Error)
	}
	for _, m := range all[1:] {
		if r := out.Results[m]; r.Error == "" || !strings.Contains(r.Error, "expected array, received null") {
			t.Errorf("%s answered with a null list: the SDK reported %q, %s; want its schema error", m, r.Error, r.Result)
		}
	}
}

// TestListWithClientsNullLists: both real clients, through
// ListWithClients, report every null list as an error.
func TestListWithClientsNullLists(t *testing.T) {
	Require(t, ToolInspector, ToolTSSDK)
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nulls := nullListsServer(t, "good-token")
	all := []string{"tools/list", "prompts/list", "resources/list", "resources/templates/list"}
	got := ListWithClients(ctx, nulls.URL+"/mcp", "good-token", all...)
	if len(got) != 2*len(all) {
		t.Fatalf("%d listings, want %d", len(got), 2*len(all))
	}
	for i, l := range got {
		wantClient := ClientInspector
		if i >= len(all) {
			wantClient = ClientTSSDK
		}
		if l.Client != wantClient || l.Method != all[i%len(all)] {
			t.Errorf("listing %d is %s %s, want %s %s", i, l.Client, l.Method, wantClient, all[i%len(all)])
		}
		if l.Method == "tools/list" {
			if l.Err != nil || !slices.Equal(l.Keys, []string{"t"}) {
				t.Errorf("%s tools/list = %v, %v; want [t]", l.Client, l.Keys, l.Err)
			}
			continue
		}
		if l.Err == nil {
			t.Errorf("%s %s accepted a null list: %v", l.Client, l.Method, l.Keys)
		} else {
			t.Logf("%s %s: %v", l.Client, l.Method, l.Err)
		}
	}
}
