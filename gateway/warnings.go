package gateway

import (
	"fmt"
	"strings"

	"github.com/mandate-gw/mandate/upstreams"
)

// Warnings lists choices in c that are valid but risky or probably not
// what the operator meant. `mandate validate` prints them, `mandate serve`
// logs them at start and a reload returns them; none stops the gateway.
// No side effects.
func (c *Config) Warnings() []string {
	var w []string
	id := c.Identity
	trust := id.TrustUnverifiedEmail
	used := false
	const immutable = "prefer an immutable id (sub; oid on Entra ID)"
	if id.SubjectIsEmailLike() {
		used = true
		if trust {
			w = append(w, fmt.Sprintf("identity.claims.subject: %q is an email-like claim users may be able to change, and identity.trust_unverified_email accepts it without email_verified: whoever sets theirs to another user's value at the IdP becomes that user; %s", id.Claims.Subject, immutable))
		} else {
			w = append(w, fmt.Sprintf("identity.claims.subject: %q is an email-like claim; tokens without email_verified: true are refused (401); %s", id.Claims.Subject, immutable))
		}
	}
	const mapping = "prefer an immutable id ({{ .Subject }} with a subject_map_file, or an employee-id claim)"
	for _, u := range c.Upstreams {
		refs := u.Credentials.EmailRefs()
		if len(refs) == 0 {
			continue
		}
		used = true
		what := strings.Join(refs, ", ")
		if trust {
			w = append(w, fmt.Sprintf("upstreams[%s].credentials.subject reads %s, and identity.trust_unverified_email accepts it without email_verified: whoever sets their email at the IdP to another user's can act as that user on %s; %s", u.Name, what, u.Name, mapping))
		} else {
			w = append(w, fmt.Sprintf("upstreams[%s].credentials.subject reads %s: calls of users whose token lacks email_verified: true are refused on %s; %s", u.Name, what, u.Name, mapping))
		}
	}
	if trust && !used {
		w = append(w, "identity.trust_unverified_email: set, but neither identity.claims.subject nor any subject template reads an email-like claim; remove it")
	}
	if wa := c.Catalog.WhoAmI; !wa.Disabled {
		for _, u := range c.Upstreams {
			if u.Prefix == upstreams.PrefixNever {
				w = append(w, fmt.Sprintf("catalog.whoami.name: the built-in tool %q shares the unprefixed namespace of upstream %s (prefix: never); "+
					"a tool of that name there is hidden (set catalog.whoami.name or catalog.whoami.disabled)", wa.Name, u.Name))
			}
		}
	}
	return w
}
