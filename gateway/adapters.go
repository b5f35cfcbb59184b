package gateway

import (
	"fmt"
	"net/http"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	mcpup "github.com/mandate-gw/mandate/upstreams/mcp"
	"github.com/mandate-gw/mandate/upstreams/salesforce"
	"github.com/mandate-gw/mandate/upstreams/servicenow"
)

// defaultAdapter builds the adapter for one upstream: one switch on kind.
func (g *Gateway) defaultAdapter(cfg upstreams.Config, src credentials.Source) (upstreams.Adapter, error) {
	client := &http.Client{Transport: g.upTrans}
	switch cfg.Kind {
	case upstreams.KindMCP:
		return mcpup.New(cfg, mcpup.Deps{Credentials: src, HTTPClient: client, Logger: g.log, TracerProvider: g.tel.tp})
	case upstreams.KindSalesforce:
		return salesforce.New(cfg, salesforce.Deps{Credentials: src, HTTPClient: client, Logger: g.log})
	case upstreams.KindServiceNow:
		return servicenow.New(cfg, servicenow.Deps{Credentials: src, HTTPClient: client, Logger: g.log})
	}
	return nil, fmt.Errorf("kind %q is not available in this build", cfg.Kind)
}
