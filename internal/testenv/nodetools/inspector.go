package nodetools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Exit codes of the Inspector CLI (2.12.0) seen in practice.
const (
	InspectorExitAuthRequired = 3 // no or rejected credentials ("auth_required")
	InspectorExitUnreachable  = 4 // connection failed ("unreachable")
	InspectorExitToolNotFound = 5 // "tool_not_found"
)

// ErrToolMissing is returned by RunInspector when Node 22 or the Inspector
// CLI is not installed.
var ErrToolMissing = errors.New("nodetools: tool not installed (run `" + SetupCommand + "`)")

// InspectorError is a failed Inspector CLI run. Its text never contains the
// bearer token.
type InspectorError struct {
	Method   string
	ExitCode int    // -1 when the process did not exit normally
	Code     string // the CLI's error code from its stderr envelope, e.g. "auth_required"
	Message  string // the CLI's error message, token redacted
	Stderr   string // the whole stderr, token redacted
	Stdout   string // the whole stdout, token redacted
	Err      error  // the exec error, if any
}

func (e *InspectorError) Error() string {
	msg := fmt.Sprintf("mcp-inspector --method %s: exit %d", e.Method, e.ExitCode)
	if e.Code != "" || e.Message != "" {
		msg += fmt.Sprintf(": %s: %s", e.Code, e.Message)
	}
	if e.Err != nil && e.ExitCode < 0 {
		msg += ": " + e.Err.Error()
	}
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += "\nstderr: " + s
	}
	return msg
}

func (e *InspectorError) Unwrap() error { return e.Err }

// RunInspector runs the MCP Inspector CLI under Node 22 against the
// streamable-HTTP MCP endpoint url:
//
//	mcp-inspector --cli URL --transport http --method METHOD
//	    [--header "Authorization: Bearer TOKEN"] --format json --stored-auth-only -q EXTRA...
//
// (no header when token is empty), with HOME and the CLI's state files in a
// fresh temporary directory, and returns its stdout: one JSON object
// {"result": <the MCP result>} (see InspectorResult). A non-zero exit is an
// *InspectorError carrying the CLI's error envelope ({"error":{"code",
// "message"}} on stderr); the token is replaced by [REDACTED] in every
// error. Examples of extra: "--tool-name", "whoami"; "--tool-arg", "k=v".
func RunInspector(ctx context.Context, url, token, method string, extra ...string) ([]byte, error) {
	node, ok := Node22()
	if !ok {
		return nil, fmt.Errorf("%w: node 22 not at %s", ErrToolMissing, node)
	}
	cli, ok := Inspector()
	if !ok {
		return nil, fmt.Errorf("%w: mcp-inspector not at %q", ErrToolMissing, cli)
	}
	home, err := os.MkdirTemp("", "mcp-inspector-home-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)

	args := []string{cli, "--cli", url, "--transport", "http", "--method", method}
	if token != "" {
		args = append(args, "--header", "Authorization: Bearer "+token)
	}
	args = append(args, "--format", "json", "--stored-auth-only", "-q")
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+home,
		"MCP_CATALOG_PATH="+filepath.Join(home, "mcp.json"),
		"MCP_CLIENT_CONFIG_PATH="+filepath.Join(home, "client.json"),
		"NO_COLOR=1",
		"CI=1",
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err == nil {
		return stdout.Bytes(), nil
	}
	redact := func(s string) string {
		if token == "" {
			return s
		}
		return strings.ReplaceAll(s, token, "[REDACTED]")
	}
	ie := &InspectorError{Method: method, ExitCode: -1, Stderr: redact(stderr.String()), Stdout: redact(stdout.String())}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		ie.ExitCode = ee.ExitCode()
	} else {
		ie.Err = errors.New(redact(err.Error()))
	}
	if ctx.Err() != nil {
		ie.Err = ctx.Err()
	}
	ie.Code, ie.Message = envelope(stderr.Bytes())
	ie.Message = redact(ie.Message)
	return stdout.Bytes(), ie
}

// envelope finds the CLI's {"error":{"code":…,"message":…}} line in stderr.
func envelope(stderr []byte) (code, message string) {
	for _, line := range bytes.Split(stderr, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var env struct {
			Error *struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(line, &env) == nil && env.Error != nil {
			return env.Error.Code, env.Error.Message
		}
	}
	return "", ""
}

// InspectorResult decodes the "result" member of RunInspector's output
// into v (for tools/list: {"tools":[…]}; for tools/call: {"content":[…],
// "structuredContent":{…},"isError":…}).
func InspectorResult(out []byte, v any) error {
	var env struct {
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(out, &env); err != nil {
		return fmt.Errorf("decoding mcp-inspector output: %w (output: %.300s)", err, out)
	}
	if len(env.Result) == 0 {
		return fmt.Errorf("mcp-inspector output has no result: %.300s", out)
	}
	if err := json.Unmarshal(env.Result, v); err != nil {
		return fmt.Errorf("decoding mcp-inspector result: %w", err)
	}
	return nil
}
