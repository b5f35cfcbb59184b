package rest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

// DecodeArgs decodes tool arguments strictly into v. raw is what
// CallToolParams.Arguments holds (nil, json.RawMessage, []byte or a
// decoded value); nil and JSON null mean {}. A non-object, invalid JSON, a
// wrong type, an unknown property or trailing data is a protocol error
// (*jsonrpc.Error, -32602) naming the tool.
func DecodeArgs(tool string, raw any, v any) error {
	var data []byte
	switch r := raw.(type) {
	case nil:
		data = []byte("{}")
	case json.RawMessage:
		data = r
	case []byte:
		data = r
	default:
		var err error
		if data, err = json.Marshal(raw); err != nil {
			return invalidArgs(tool, "%v", err)
		}
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 || string(data) == "null" {
		data = []byte("{}")
	}
	if data[0] != '{' {
		return invalidArgs(tool, "arguments must be a JSON object")
	}
	// encoding/json matches fields ignoring case, the last key winning:
	// refuse what the gateway's policy would have read differently (the
	// gateway refuses it first; this holds for any other caller).
	if err := upstreams.CheckArguments(data); err != nil {
		return invalidArgs(tool, "%v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return invalidArgs(tool, "%v", err)
	}
	if dec.More() {
		return invalidArgs(tool, "trailing data after the JSON object")
	}
	return nil
}

func invalidArgs(tool, format string, args ...any) *jsonrpc.Error {
	return &jsonrpc.Error{Code: jsonrpc.CodeInvalidParams, Message: fmt.Sprintf("invalid arguments for tool %q: ", tool) + fmt.Sprintf(format, args...)}
}

// LimitArg checks an optional count argument against [1, hi]; nil means
// min(def, hi). A value out of range returns a message for a tool error.
func LimitArg(name string, v *int, hi, def int) (int, string) {
	if v == nil {
		return min(def, hi), ""
	}
	if *v < 1 || *v > hi {
		return 0, fmt.Sprintf("%s must be between 1 and %d, got %d", name, hi, *v)
	}
	return *v, ""
}

// ToolError is a tool result with IsError set and msg as its text.
func ToolError(msg string) *mcp.CallToolResult {
	return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}
}

// Result is a successful tool result: text for people, structured for
// programs (matching the tool's output schema).
func Result(text string, structured any) *mcp.CallToolResult {
	return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}, StructuredContent: structured}
}

// Object is a JSON Schema of an object with props, no other properties,
// and the required ones listed.
func Object(props map[string]any, required ...string) map[string]any {
	m := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		m["required"] = required
	}
	return m
}

// BoolPtr returns &b (for mcp.ToolAnnotations).
func BoolPtr(b bool) *bool { return &b }

// Clip shortens s to at most n bytes (at a rune boundary) plus "…", for
// messages.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// Sanitize makes one printable line of a string from the platform
// (control characters become spaces, trimmed), clipped to n bytes.
func Sanitize(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return Clip(strings.TrimSpace(s), n)
}

// RetryAfter parses a Retry-After header (seconds or an HTTP date); 0 when
// absent or unparsable.
func RetryAfter(h http.Header) time.Duration {
	s := strings.TrimSpace(h.Get("Retry-After"))
	if s == "" {
		return 0
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(s); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}
