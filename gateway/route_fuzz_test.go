package gateway

import (
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/upstreams"
)

// FuzzRoute: any exposed name routes to at most one upstream; the router
// and `mandate explain` agree; a routed name re-exposes to itself; cursors
// never panic.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"crm_get", "crm-eu_get", "crm_", "_x", "whoami", "crm-eu", "x\x00y", "crm_crm_a"} {
		f.Add(s, "_")
	}
	f.Add("crm.get", ".")
	f.Fuzz(func(t *testing.T, name, sep string) {
		if sep == "" || len(sep) > 3 {
			return
		}
		cfg := &Config{Catalog: CatalogConfig{Separator: sep}, Upstreams: []upstreams.Config{
			{Name: "crm", Prefix: upstreams.PrefixAlways}, {Name: "crm-eu", Prefix: upstreams.PrefixAlways}, {Name: "kb", Prefix: upstreams.PrefixNever}}}
		st := &state{cfg: cfg}
		for _, uc := range cfg.Upstreams {
			u := &upstream{name: uc.Name, cfg: uc}
			if uc.Prefix != upstreams.PrefixNever {
				u.prefix = uc.Name + sep
			} else {
				st.never = u
			}
			st.ups = append(st.ups, u)
		}
		u, inner, ok := st.route(name)
		eu, einner, eok := routeName(cfg, name)
		if ok != eok || (ok && (u.name != eu || inner != einner)) {
			t.Fatalf("router (%v %q) and explain (%q %q) disagree on %q", ok, inner, eu, einner, name)
		}
		if ok && u.exposedName(inner) != name {
			t.Fatalf("%q routed to %s/%q re-exposes as %q", name, u.name, inner, u.exposedName(inner))
		}
		if ok && u.prefix != "" && !strings.HasPrefix(name, u.prefix) {
			t.Fatalf("%q routed to %s without its prefix", name, u.name)
		}
		_, _, _ = decodeCursor(name)
	})
}
