package gateway

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
)

// ExplainRequest is what `mandate explain` asks about.
type ExplainRequest struct {
	// Claims are the user's token claims (as the IdP would issue them).
	Claims map[string]any
	// Exactly one of Tool (exposed, namespaced name), Prompt (exposed) or
	// Resource (URI, with Upstream) is set.
	Tool, Prompt, Resource string
	// Upstream names the upstream for a resource.
	Upstream string
	// Arguments of the call, if any.
	Arguments map[string]any
}

// Explain evaluates the policy of cfg for one request and writes the
// decision, the deciding rule and every rule's outcome to w. It returns
// whether the request would be allowed.
func Explain(cfg *Config, req ExplainRequest, w io.Writer) (bool, error) {
	eng, err := policy.Compile(cfg.Policy)
	if err != nil {
		return false, err
	}
	in := policy.Input{Arguments: req.Arguments}
	exposed := ""
	switch {
	case req.Tool != "":
		in.Method, exposed = "tools/call", req.Tool
	case req.Prompt != "":
		in.Method, exposed = "prompts/get", req.Prompt
	case req.Resource != "":
		in.Method, in.Resource, in.Upstream = "resources/read", req.Resource, req.Upstream
		if catalog.Routes(cfg.Upstreams, cfg.Catalog.Separator).Lookup(req.Upstream) == nil {
			return false, fmt.Errorf("--upstream %q is not configured", req.Upstream)
		}
	default:
		return false, fmt.Errorf("name a --tool, --prompt or --resource")
	}
	if exposed != "" {
		u, name, ok := catalog.Routes(cfg.Upstreams, cfg.Catalog.Separator).Route(exposed) // the gateway's own routing
		if !ok {
			return false, fmt.Errorf("%q does not belong to any configured upstream (names are <upstream>%s<name>)", exposed, cfg.Catalog.Separator)
		}
		in.Upstream = u.Name
		if in.Method == "tools/call" {
			in.Tool = name
		} else {
			in.Prompt = name
		}
	}
	id, refused := explainIdentity(cfg, req.Claims)
	if refused != nil {
		// The gateway answers before routing or policy: no rule runs.
		fmt.Fprintf(w, "request:   %s upstream=%s tool=%q prompt=%q resource=%q\n", in.Method, in.Upstream, in.Tool, in.Prompt, in.Resource)
		fmt.Fprintf(w, "decision:  DENY by authentication — the gateway refuses this token with %d %s: %s\n", refused.Status, refused.Code, refused.Description)
		return false, nil
	}
	in.User = policy.UserFrom(id)
	dec := eng.Evaluate(context.Background(), in)
	fmt.Fprintf(w, "user:      %s (roles: %s; groups: %s; scopes: %s)\n", id.Subject, strings.Join(id.Roles, ", "), strings.Join(id.Groups, ", "), strings.Join(id.Scopes, " "))
	fmt.Fprintf(w, "request:   %s upstream=%s tool=%q prompt=%q resource=%q\n", in.Method, in.Upstream, in.Tool, in.Prompt, in.Resource)
	verdict := "DENY"
	if dec.Allow {
		verdict = "ALLOW"
	}
	rule := dec.Rule
	if rule == "" {
		rule = "(default: " + eng.Default() + ")"
	}
	fmt.Fprintf(w, "decision:  %s by %s — %s\n", verdict, rule, dec.Reason)
	fmt.Fprintf(w, "listed:    %v\n", eng.Visible(in).Allow)
	fmt.Fprintln(w, "rules:")
	for _, t := range eng.Explain(in) {
		mark := " "
		if t.Decisive {
			mark = "*"
		}
		line := fmt.Sprintf("  %s %-30s %-5s %s", mark, t.Rule, t.Effect, t.Outcome)
		if t.Error != "" {
			line += " (" + t.Error + ")"
		}
		fmt.Fprintln(w, line)
	}
	return dec.Allow, nil
}

// explainIdentity maps claims to the user as the live gateway maps a
// verified token's claims (authn.Config.IdentityFromClaims), with the
// gateway's required-scope check; a non-nil error is how the gateway
// would refuse the token. Signature, iss, aud and expiry are not checked:
// the claims come from a file, not a token.
func explainIdentity(cfg *Config, claims map[string]any) (*identity.Identity, *authn.Error) {
	mapped, refused := cfg.Identity.IdentityFromClaims(claims)
	if refused != nil {
		return nil, refused
	}
	id := &mapped
	if refused := cfg.Identity.CheckScopes(id); refused != nil {
		return nil, refused
	}
	return id, nil
}
