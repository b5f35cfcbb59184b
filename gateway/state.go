package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// state is everything built from one configuration. It is immutable once
// built and swapped atomically on reload; a failed build keeps the old one.
type state struct {
	cfg    *Config
	gen    uint64
	policy *policy.Engine
	ups    []*upstream // config order
	byName map[string]*upstream
	// never is the upstream with prefix: never, if any.
	never *upstream
	// usesArgs: some rule reads `arguments`, so calls decode them for policy.
	usesArgs bool
	// whoami is the built-in tool as listed (its configured name); nil
	// when disabled.
	whoami *mcp.Tool
}

// upstream is one configured upstream within a state.
type upstream struct {
	name    string
	cfg     upstreams.Config
	adapter upstreams.Adapter
	creds   credentials.Source
	prefix  string // name + separator; "" for prefix: never
}

// AdapterFactory builds the adapter of one upstream. Options.NewAdapter
// overrides the built-in kinds (tests).
type AdapterFactory func(cfg upstreams.Config, src credentials.Source) (upstreams.Adapter, error)

// buildState compiles policy and builds every upstream's credentials source
// and adapter. On error nothing built is leaked.
func (g *Gateway) buildState(cfg *Config, gen uint64) (*state, error) {
	eng, err := policy.Compile(cfg.Policy)
	if err != nil {
		return nil, err
	}
	st := &state{cfg: cfg, gen: gen, policy: eng, usesArgs: eng.ReadsArguments(), byName: map[string]*upstream{}}
	if w := cfg.Catalog.WhoAmI; !w.Disabled {
		t := *whoamiTool
		t.Name = w.Name
		st.whoami = &t
	}
	var errs []error
	for _, uc := range cfg.Upstreams {
		src, err := g.broker.Source(uc.Name, uc.Credentials)
		if err != nil {
			errs = append(errs, fmt.Errorf("upstreams[%s].credentials: %w", uc.Name, err))
			continue
		}
		ad, err := g.newAdapter(uc, src)
		if err != nil {
			errs = append(errs, fmt.Errorf("upstreams[%s]: %w", uc.Name, err))
			continue
		}
		u := &upstream{name: uc.Name, cfg: uc, adapter: ad, creds: src}
		if uc.Prefix != upstreams.PrefixNever {
			u.prefix = uc.Name + cfg.Catalog.Separator
		} else {
			st.never = u
		}
		st.ups = append(st.ups, u)
		st.byName[u.name] = u
	}
	if len(errs) > 0 {
		st.close()
		return nil, errors.Join(errs...)
	}
	return st, nil
}

func (st *state) close() {
	for _, u := range st.ups {
		_ = u.adapter.Close()
	}
}

// isWhoAmI reports whether an exposed tool name is the built-in whoami.
func (st *state) isWhoAmI(name string) bool { return st.whoami != nil && name == st.whoami.Name }

// route splits an exposed tool or prompt name into its upstream and the
// name the upstream knows. Prefixed upstreams win; the longest prefix
// matches; otherwise the unprefixed upstream, if any.
func (st *state) route(exposed string) (*upstream, string, bool) {
	var best *upstream
	for _, u := range st.ups {
		if u.prefix != "" && strings.HasPrefix(exposed, u.prefix) && len(exposed) > len(u.prefix) {
			if best == nil || len(u.prefix) > len(best.prefix) {
				best = u
			}
		}
	}
	if best != nil {
		return best, exposed[len(best.prefix):], true
	}
	if st.never != nil {
		return st.never, exposed, true
	}
	return nil, "", false
}

// exposedName is the name clients see for an upstream's tool or prompt.
func (u *upstream) exposedName(name string) string { return u.prefix + name }

// shadowed reports whether name, exposed by the unprefixed upstream, would
// be routed to a prefixed upstream instead (a collision).
func (st *state) shadowed(u *upstream, name string) *upstream {
	if u.prefix != "" {
		return nil
	}
	if r, _, _ := st.route(name); r != u {
		return r
	}
	return nil
}

var errNoUpstream = errors.New("no such upstream")

func (st *state) closeAfter(ctx context.Context) {
	go func() { <-ctx.Done(); st.close() }()
}
