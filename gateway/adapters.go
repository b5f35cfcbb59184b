package gateway

import (
	"net/http"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	_ "github.com/mandate-gw/mandate/upstreams/kinds" // links the built-in adapter kinds (each registers itself)
)

// defaultAdapter builds the adapter for one upstream with the constructor
// its kind registered (upstreams.RegisterKind).
func (g *Gateway) defaultAdapter(cfg upstreams.Config, src credentials.Source) (upstreams.Adapter, error) {
	return upstreams.NewAdapter(cfg, upstreams.Deps{
		Credentials:    src,
		HTTPClient:     &http.Client{Transport: g.upTrans},
		Logger:         g.log,
		TracerProvider: g.tel.tp,
		MeterProvider:  g.tel.mp,
	})
}
