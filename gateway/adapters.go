package gateway

import (
	"fmt"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// defaultAdapter builds the adapter for one upstream: one switch on kind.
func (g *Gateway) defaultAdapter(cfg upstreams.Config, src credentials.Source) (upstreams.Adapter, error) {
	switch cfg.Kind {
	}
	return nil, fmt.Errorf("kind %q is not available in this build", cfg.Kind)
}
