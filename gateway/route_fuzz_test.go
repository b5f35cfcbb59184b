package gateway

import (
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/upstreams"
)

// FuzzRoute: any exposed name routes to at most one upstream; the router
// and `mandate explain` route with the same code; a routed name re-exposes to itself; with a
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
		st := catalog.Routes(cfg.Upstreams, sep) // what explain routes with, too
		u, inner, ok := st.Route(name)
		if ok && name != "" { // (explain needs a name: --tool "" is no request)
			var msg strings.Builder
			if _, err := Explain(cfg, ExplainRequest{Tool: name}, &msg); err != nil {
				t.Fatalf("explain refuses %q, which the router routes to %s: %v", name, u.Name, err)
			}
		}
		if ok && u.ExposedName(inner) != name {
			t.Fatalf("%q routed to %s/%q re-exposes as %q", name, u.Name, inner, u.ExposedName(inner))
		}
		if ok && u.Prefix() != "" && !strings.HasPrefix(name, u.Prefix()) {
			t.Fatalf("%q routed to %s without its prefix", name, u.Name)
		}
		if unambiguousSeparator(sep) && name != "" {
			for _, want := range st.Ups {
				if want.Prefix() == "" {
					continue
				}
				if u, inner, ok := st.Route(want.ExposedName(name)); !ok || u != want || inner != name {
					got := "nowhere"
					if ok {
						got = u.Name + " " + inner
					}
					t.Fatalf("%s's %q, exposed as %q, routes to %s", want.Name, name, want.ExposedName(name), got)
				}
			}
		}
		_, _, _ = catalog.Page([]int{}, 0, name)
	})
}
