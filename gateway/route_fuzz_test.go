package gateway

import (
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/upstreams"
)

// FuzzRoute: any exposed name routes to at most one upstream; the router
// and `mandate explain` agree; a routed name re-exposes to itself; with a
// separator validate accepts, every name a prefixed upstream exposes routes
// back to that upstream (never to one whose name extends it, as crm-eu
// extends crm); cursors never panic.
func FuzzRoute(f *testing.F) {
	for _, s := range []string{"crm_get", "crm-eu_get", "crm_", "_x", "whoami", "crm-eu", "x\x00y", "crm_crm_a"} {
		f.Add(s, "_")
	}
	f.Add("crm.get", ".")
	f.Add("eu-delete_all", "-")
	f.Add("eu_x", "_")
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
		if unambiguousSeparator(sep) && name != "" {
			for _, want := range st.ups {
				if want.prefix == "" {
					continue
				}
				if u, inner, ok := st.route(want.exposedName(name)); !ok || u != want || inner != name {
					got := "nowhere"
					if ok {
						got = u.name + " " + inner
					}
					t.Fatalf("%s's %q, exposed as %q, routes to %s", want.name, name, want.exposedName(name), got)
				}
			}
		}
		_, _, _ = decodeCursor(name)
	})
}
