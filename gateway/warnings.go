package gateway

import (
	"fmt"

	"github.com/mandate-gw/mandate/upstreams"
)

// Warnings lists what is valid but probably not what the operator meant;
// `mandate validate` prints them, and the gateway logs them at start and
// on reload. No side effects.
func (c *Config) Warnings() []string {
	var out []string
	if w := c.Catalog.WhoAmI; !w.Disabled {
		for _, u := range c.Upstreams {
			if u.Prefix == upstreams.PrefixNever {
				out = append(out, fmt.Sprintf("catalog.whoami.name: the built-in tool %q shares the unprefixed namespace of upstream %s (prefix: never); "+
					"a tool of that name there is hidden (set catalog.whoami.name or catalog.whoami.disabled)", w.Name, u.Name))
			}
		}
	}
	return out
}
