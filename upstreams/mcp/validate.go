package mcp

import (
	"errors"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
)

// Listing rule for malformed upstream definitions (the checks are
// upstreams.Validate*, shared with the gateway's catalog): an entry that a
// go-sdk server would refuse (Server.AddTool / AddResource panic on them)
// or that cannot be routed is left out of the listing with a warning
// naming the upstream, the entry and the reason; the rest of the page is
// returned unchanged. Nothing here panics on upstream input.

func (s *session) skip(kind, name string, err error) {
	s.a.log.Warn("skipping malformed upstream definition", "kind", kind, "name", name, "reason", err.Error())
}

func (s *session) validTools(in []*sdk.Tool) []*sdk.Tool {
	out := in[:0:0]
	for _, t := range in {
		if err := upstreams.ValidateTool(t); err != nil {
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
			err = upstreams.ValidateResourceURI(r.URI)
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
		default:
			err = upstreams.ValidateURITemplate(r.URITemplate)
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
		if p == nil {
			s.skip("prompt", "", errors.New("null prompt"))
			continue
		}
		if err := upstreams.ValidateName(p.Name); err != nil {
			s.skip("prompt", p.Name, err)
			continue
		}
		out = append(out, p)
	}
	if len(out) == len(in) {
		return in
	}
	return out
}
