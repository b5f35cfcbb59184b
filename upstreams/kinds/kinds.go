// Package kinds links every built-in upstream kind into a binary: each
// blank import below runs that kind's init, which registers it with
// upstreams.RegisterKind. Import it for its side effect wherever upstreams
// are configured or built (the gateway, `mandate validate`):
//
//	import _ "github.com/mandate-gw/mandate/upstreams/kinds"
//
// then build adapters with upstreams.NewAdapter(cfg, deps); `kind:` is
// validated against upstreams.Kinds().
//
// Adding a kind: write its package under upstreams/ (an upstreams.Adapter
// plus an init that calls upstreams.RegisterKind, with a Validate hook
// when it has kind-specific settings), add its import line here, and its
// case to the contract table in contract_test.go (TestEveryKindHasAContract
// fails until it has one).
package kinds

import (
	_ "github.com/mandate-gw/mandate/upstreams/mcp"        // kind mcp
	_ "github.com/mandate-gw/mandate/upstreams/salesforce" // kind salesforce
	_ "github.com/mandate-gw/mandate/upstreams/servicenow" // kind servicenow
)
