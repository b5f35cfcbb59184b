package gateway

import (
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/catalog"
	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// state is one configuration in force: what the catalog serves from, and
// the configuration it was built from (reloads compare it).
type state struct {
	*catalog.State
	cfg *Config
}

// AdapterFactory builds the adapter of one upstream. Options.NewAdapter
// overrides the built-in kinds (tests).
type AdapterFactory func(cfg upstreams.Config, src credentials.Source) (upstreams.Adapter, error)

// buildState builds the catalog state of cfg: compiled policy, every
// upstream's credentials source and adapter. On error nothing built is
// leaked.
func (g *Gateway) buildState(cfg *Config, gen uint64) (*state, error) {
	var who *mcp.Tool
	if w := cfg.Catalog.WhoAmI; !w.Disabled {
		t := *dispatch.WhoAmITool
		t.Name = w.Name
		who = &t
	}
	cs, err := catalog.NewState(catalog.Build{Gen: gen, Policy: cfg.Policy, Upstreams: cfg.Upstreams,
		Separator: cfg.Catalog.Separator, WhoAmI: who,
		Open: func(uc upstreams.Config) (upstreams.Adapter, credentials.Source, error) {
			src, err := g.broker.Source(uc.Name, uc.Credentials)
			if err != nil {
				return nil, nil, fmt.Errorf("upstreams[%s].credentials: %w", uc.Name, err)
			}
			ad, err := g.newAdapter(uc, src)
			if err != nil {
				return nil, nil, fmt.Errorf("upstreams[%s]: %w", uc.Name, err)
			}
			return ad, src, nil
		}})
	if err != nil {
		return nil, err
	}
	return &state{State: cs, cfg: cfg}, nil
}
