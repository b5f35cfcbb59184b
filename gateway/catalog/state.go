package catalog

import (
	"context"
	"errors"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// State is everything built from one configuration that serves calls:
// the compiled policy and the upstreams with their adapters and credential
// sources, and how names are routed between them. It is immutable once
// built and swapped atomically on reload; a failed build keeps the old one.
type State struct {
	Gen    uint64
	Policy *policy.Engine
	Ups    []*Upstream // config order
	byName map[string]*Upstream
	// never is the upstream with prefix: never, if any.
	never *Upstream
	// UsesArgs: some rule reads `arguments`, so calls decode them for policy.
	UsesArgs bool
	// WhoAmI is the built-in tool as listed (its configured name); nil
	// when disabled.
	WhoAmI *mcp.Tool
}

// Upstream is one configured upstream within a State.
type Upstream struct {
	Name    string
	Cfg     upstreams.Config
	Adapter upstreams.Adapter
	Creds   credentials.Source
	// Raw: the adapter's sessions forward tools/call as bytes
	// (upstreams.RawForwarder), so the forwarding path may take its calls.
	Raw    bool
	prefix string // name + separator; "" for prefix: never
}

// Build is what a State is built from.
type Build struct {
	Gen       uint64
	Policy    policy.Config
	Upstreams []upstreams.Config
	Separator string    // between an upstream's name and its items' names
	WhoAmI    *mcp.Tool // the built-in tool as listed, or nil
	// Open builds one upstream's credentials source and adapter.
	Open func(upstreams.Config) (upstreams.Adapter, credentials.Source, error)
}

// NewState compiles policy and builds every upstream's credentials source
// and adapter. On error nothing built is leaked.
func NewState(b Build) (*State, error) {
	eng, err := policy.Compile(b.Policy)
	if err != nil {
		return nil, err
	}
	st := &State{Gen: b.Gen, Policy: eng, UsesArgs: eng.ReadsArguments(), byName: map[string]*Upstream{}, WhoAmI: b.WhoAmI}
	var errs []error
	for _, uc := range b.Upstreams {
		ad, src, err := b.Open(uc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		u := st.add(uc, b.Separator)
		u.Adapter, u.Creds = ad, src
		if rf, ok := ad.(upstreams.RawForwarder); ok {
			u.Raw = rf.ForwardsRaw()
		}
	}
	if len(errs) > 0 {
		st.Close()
		return nil, errors.Join(errs...)
	}
	return st, nil
}

// Lookup returns the upstream named name, or nil.
func (st *State) Lookup(name string) *Upstream { return st.byName[name] }

// Close closes every upstream's adapter.
func (st *State) Close() {
	for _, u := range st.Ups {
		_ = u.Adapter.Close()
	}
}

// IsWhoAmI reports whether an exposed tool name is the built-in whoami.
func (st *State) IsWhoAmI(name string) bool { return st.WhoAmI != nil && name == st.WhoAmI.Name }

// Route splits an exposed tool or prompt name into its upstream and the
// name the upstream knows. Prefixed upstreams win; the longest prefix
// matches; otherwise the unprefixed upstream, if any.
func (st *State) Route(exposed string) (*Upstream, string, bool) {
	var best *Upstream
	for _, u := range st.Ups {
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

// ExposedName is the name clients see for an upstream's tool or prompt.
func (u *Upstream) ExposedName(name string) string { return u.prefix + name }

// Shadowed reports whether name, exposed by the unprefixed upstream, would
// be routed to a prefixed upstream instead (a collision).
func (st *State) Shadowed(u *Upstream, name string) *Upstream {
	if u.prefix != "" {
		return nil
	}
	if r, _, _ := st.Route(name); r != u {
		return r
	}
	return nil
}

// CloseAfter closes the state's adapters when ctx is done.
func (st *State) CloseAfter(ctx context.Context) {
	go func() { <-ctx.Done(); st.Close() }()
}

// Routes is a State that only routes names (no policy, no adapters): what
// `mandate explain` uses, so that it routes exactly as the gateway does.
func Routes(ups []upstreams.Config, separator string) *State {
	st := &State{byName: map[string]*Upstream{}}
	for _, uc := range ups {
		st.add(uc, separator)
	}
	return st
}

// add appends the upstream of uc with its namespace: the name and the
// separator, or none for prefix: never.
func (st *State) add(uc upstreams.Config, separator string) *Upstream {
	u := &Upstream{Name: uc.Name, Cfg: uc}
	if uc.Prefix != upstreams.PrefixNever {
		u.prefix = uc.Name + separator
	} else {
		st.never = u
	}
	st.Ups = append(st.Ups, u)
	st.byName[u.Name] = u
	return u
}

// Prefix is what the upstream's exposed names start with ("" for prefix: never).
func (u *Upstream) Prefix() string { return u.prefix }
