package upstreams

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Kind is one adapter kind (the `kind:` of an upstream): how to build an
// upstream of that kind and how to check its configuration. Each kind's
// package registers its Kind in an init function (RegisterKind); package
// upstreams/kinds links every built-in kind into a binary.
type Kind struct {
	// New builds the adapter of one configured upstream of this kind. cfg
	// is the upstream's configuration (its zero fields not yet defaulted);
	// deps are what the process provides. It must not contact the
	// upstream. Required.
	New func(cfg Config, deps Deps) (Adapter, error)
	// Validate, when set, reports the problems of cfg specific to this
	// kind (its URL's shape, its options block), each as an error whose
	// message starts with path + "." + the key. Config.Validate and
	// Config.ValidateKind call it; it has no side effects. Optional.
	Validate func(cfg *Config, path string) error
}

// Deps are what every adapter kind may take from the process. A kind uses
// the fields it needs and ignores the others.
type Deps struct {
	// Credentials obtains the calling user's platform token. Nil means no
	// token: kinds refuse nil when the upstream's credentials name a flow
	// other than none.
	Credentials credentials.Source
	// HTTPClient supplies the transport for calls to the upstream (the
	// adapter never follows redirects, whatever its CheckRedirect). Nil
	// means http.DefaultTransport.
	HTTPClient *http.Client
	// Logger receives the adapter's logs (never tokens). Nil discards.
	Logger *slog.Logger
	// TracerProvider, when set, lets the adapter make spans of its own
	// (the mcp kind: one client span per upstream operation, with trace
	// context propagation). Nil: no spans.
	TracerProvider trace.TracerProvider
	// MeterProvider, when set, lets the adapter report metrics of its own
	// (the salesforce kind: the org's API request usage from
	// Sforce-Limit-Info). Nil: no adapter metrics.
	MeterProvider metric.MeterProvider
}

var registry struct {
	sync.RWMutex
	kinds map[string]Kind
}

// RegisterKind makes kind name available to configurations and NewAdapter.
// Call it from the kind package's init function. It panics when name is
// not a valid kind name ([a-z0-9-]+), k.New is nil, or name is already
// registered — programming errors, found when the binary starts.
func RegisterKind(name string, k Kind) {
	if !NameRE.MatchString(name) {
		panic(fmt.Sprintf("upstreams: RegisterKind: invalid kind name %q", name))
	}
	if k.New == nil {
		panic(fmt.Sprintf("upstreams: RegisterKind(%q): Kind.New is nil", name))
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.kinds[name]; dup {
		panic(fmt.Sprintf("upstreams: RegisterKind(%q): registered twice", name))
	}
	if registry.kinds == nil {
		registry.kinds = map[string]Kind{}
	}
	registry.kinds[name] = k
}

// LookupKind returns the registered kind name.
func LookupKind(name string) (Kind, bool) {
	registry.RLock()
	defer registry.RUnlock()
	k, ok := registry.kinds[name]
	return k, ok
}

// Kinds returns the names of the registered kinds, sorted.
func Kinds() []string {
	registry.RLock()
	defer registry.RUnlock()
	names := make([]string, 0, len(registry.kinds))
	for n := range registry.kinds {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// NewAdapter builds the adapter for cfg with the constructor of its kind.
func NewAdapter(cfg Config, deps Deps) (Adapter, error) {
	k, ok := LookupKind(cfg.Kind)
	if !ok {
		return nil, fmt.Errorf("kind %q is not available in this build", cfg.Kind)
	}
	return k.New(cfg, deps)
}

// kindList renders the registered kinds for a message: "a, b or c".
func kindList() string {
	names := Kinds()
	switch len(names) {
	case 0:
		return "a registered kind (none is linked into this build)"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
