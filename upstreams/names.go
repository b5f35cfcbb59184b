package upstreams

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// What an upstream may list. An entry that fails these checks would break
// clients or panic a go-sdk server (Server.AddTool, AddResource), or
// cannot be routed; it is left out of the listing with a warning, and the
// rest of the page is kept. The mcp adapter and the gateway's catalog use
// the same functions, so a definition one of them accepts the other does
// too. None of them panics on upstream input.

// Bounds on listed definitions.
const (
	// MaxNameLen is the longest tool or prompt name, in bytes (the MCP
	// specification's limit for tool names).
	MaxNameLen = 128
	// MaxURILen is the longest resource URI or URI template, in bytes.
	MaxURILen = 4096
)

// ValidateName reports why a tool or prompt name (as the upstream knows
// it) cannot be offered: empty, longer than MaxNameLen bytes, not UTF-8,
// or containing white space or a control character. Letters beyond
// ASCII are accepted.
func ValidateName(name string) error {
	switch {
	case name == "":
		return errors.New("empty name")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name is %d bytes long, more than %d", len(name), MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("name %q is not valid UTF-8", name)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("name %q contains white space or a control character (%U)", name, r)
		}
	}
	return nil
}

// ValidateTool reports why t cannot be offered: no valid name (see
// ValidateName), or an input schema (required) or output schema
// (optional) that is not a JSON Schema object of type "object".
func ValidateTool(t *mcp.Tool) error {
	if t == nil {
		return errors.New("null tool")
	}
	if err := ValidateName(t.Name); err != nil {
		return fmt.Errorf("tool: %w", err)
	}
	if err := objectSchema(t.InputSchema, true); err != nil {
		return fmt.Errorf("tool %q: inputSchema: %w", t.Name, err)
	}
	if t.OutputSchema != nil {
		if err := objectSchema(t.OutputSchema, false); err != nil {
			return fmt.Errorf("tool %q: outputSchema: %w", t.Name, err)
		}
	}
	return nil
}

func objectSchema(s any, required bool) error {
	if s == nil {
		if required {
			return errors.New("missing")
		}
		return nil
	}
	m, ok := s.(map[string]any)
	if !ok {
		return fmt.Errorf("must be a JSON object, got %T", s)
	}
	if typ, ok := m["type"].(string); !ok || typ != "object" {
		return fmt.Errorf(`type must be "object", got %v`, m["type"])
	}
	return nil
}

// ValidateResourceURI reports why a resource URI cannot be offered:
// empty, longer than MaxURILen bytes, unparsable, or without a scheme.
func ValidateResourceURI(uri string) error {
	switch {
	case uri == "":
		return errors.New("empty URI")
	case len(uri) > MaxURILen:
		return fmt.Errorf("URI is %d bytes long, more than %d", len(uri), MaxURILen)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return fmt.Errorf("invalid URI: %w", err)
	}
	if u.Scheme == "" {
		return fmt.Errorf("URI %q has no scheme", uri)
	}
	return nil
}

// ValidateURITemplate reports why a resource URI template (RFC 6570)
// cannot be offered: empty, longer than MaxURILen bytes, containing white
// space, or without a scheme.
func ValidateURITemplate(tmpl string) error {
	switch {
	case tmpl == "":
		return errors.New("empty uriTemplate")
	case len(tmpl) > MaxURILen:
		return fmt.Errorf("uriTemplate is %d bytes long, more than %d", len(tmpl), MaxURILen)
	case strings.ContainsAny(tmpl, " \t\r\n"):
		return fmt.Errorf("uriTemplate %q contains white space", tmpl)
	case !strings.Contains(tmpl, ":"):
		return fmt.Errorf("uriTemplate %q has no scheme", tmpl)
	}
	return nil
}
