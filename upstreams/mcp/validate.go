package mcp

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// Listing rule for malformed upstream definitions: an entry that a go-sdk
// server would refuse (Server.AddTool / AddResource panic on them) or that
// cannot be routed is left out of the listing with a warning naming the
// upstream, the entry and the reason; the rest of the page is returned
// unchanged. Nothing here panics on upstream input.

// ValidateTool reports why t cannot be offered downstream: no name, or an
// input/output schema that is not a JSON Schema object of type "object".
func ValidateTool(t *sdk.Tool) error {
	if t == nil {
		return errors.New("null tool")
	}
	if t.Name == "" {
		return errors.New("tool without a name")
	}
	if err := objectSchema(t.InputSchema, true); err != nil {
		return fmt.Errorf("inputSchema: %w", err)
	}
	if t.OutputSchema != nil {
		if err := objectSchema(t.OutputSchema, false); err != nil {
			return fmt.Errorf("outputSchema: %w", err)
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

// ValidateResourceURI reports why uri cannot be offered downstream: empty,
// unparsable, or without a scheme.
func ValidateResourceURI(uri string) error {
	if uri == "" {
		return errors.New("empty URI")
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

func (s *session) skip(kind, name string, err error) {
	s.a.log.Warn("skipping malformed upstream definition", "kind", kind, "name", name, "reason", err.Error())
}

func (s *session) validTools(in []*sdk.Tool) []*sdk.Tool {
	out := in[:0:0]
	for _, t := range in {
		if err := ValidateTool(t); err != nil {
			name := ""
			if t != nil {
				name = t.Name
			}
			s.skip("tool", name, err)
			continue
		}
		out = append(out, t)
	}
	if len(out) == len(in) {
		return in
	}
	return out
}

func (s *session) validResources(in []*sdk.Resource) []*sdk.Resource {
	out := in[:0:0]
	for _, r := range in {
		var err error
		switch {
		case r == nil:
			err = errors.New("null resource")
		default:
			err = ValidateResourceURI(r.URI)
		}
		if err != nil {
			name := ""
			if r != nil {
				name = r.Name
			}
			s.skip("resource", name, err)
			continue
		}
		out = append(out, r)
	}
	if len(out) == len(in) {
		return in
	}
	return out
}

func (s *session) validTemplates(in []*sdk.ResourceTemplate) []*sdk.ResourceTemplate {
	out := in[:0:0]
	for _, r := range in {
		var err error
		switch {
		case r == nil:
			err = errors.New("null resource template")
		case r.URITemplate == "" || strings.ContainsAny(r.URITemplate, " \t\r\n"):
			err = fmt.Errorf("invalid uriTemplate %q", r.URITemplate)
		case !strings.Contains(r.URITemplate, ":"):
			err = fmt.Errorf("uriTemplate %q has no scheme", r.URITemplate)
		}
		if err != nil {
			name := ""
			if r != nil {
				name = r.Name
			}
			s.skip("resource template", name, err)
			continue
		}
		out = append(out, r)
	}
	if len(out) == len(in) {
		return in
	}
	return out
}

func (s *session) validPrompts(in []*sdk.Prompt) []*sdk.Prompt {
	out := in[:0:0]
	for _, p := range in {
		if p == nil || p.Name == "" {
			s.skip("prompt", "", errors.New("prompt without a name"))
			continue
		}
		out = append(out, p)
	}
	if len(out) == len(in) {
		return in
	}
	return out
}
