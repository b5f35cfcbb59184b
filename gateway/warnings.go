package gateway

import (
	"fmt"
	"strings"
)

// Warnings lists choices in c that are valid but risky. `mandate validate`
// prints them and `mandate serve` logs them; none stops the gateway.
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
	return w
}
