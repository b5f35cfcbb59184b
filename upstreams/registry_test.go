package upstreams

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// fakeAdapter is an Adapter of the kinds registered by these tests.
type fakeAdapter struct {
	name string
	deps Deps
}

func (a *fakeAdapter) Name() string { return a.name }
func (a *fakeAdapter) Open(context.Context, OpenOptions) (Session, error) {
	return nil, errors.New("fake")
}
func (a *fakeAdapter) Close() error { return nil }

// healthyAdapter also reports health.
type healthyAdapter struct{ fakeAdapter }

func (a *healthyAdapter) Health() Health { return Health{Upstream: a.name, ConsecutiveFailures: 2} }

// Package upstreams links no real kind; these tests register their own,
// once per process (RegisterKind refuses a second registration).
func init() {
	RegisterKind("zz-test", Kind{
		New: func(cfg Config, deps Deps) (Adapter, error) { return &fakeAdapter{name: cfg.Name, deps: deps}, nil },
		Validate: func(c *Config, path string) error {
			if c.MaxResultBytes > 1<<20 {
				return fmt.Errorf("%s.max_result_bytes: the test kind takes at most 1 MiB, got %d", path, c.MaxResultBytes)
			}
			return nil
		},
	})
	RegisterKind("aa-test", Kind{New: func(cfg Config, _ Deps) (Adapter, error) { return &healthyAdapter{fakeAdapter{name: cfg.Name}}, nil }})
}

func TestKindsAreTheRegisteredOnesSorted(t *testing.T) {
	t.Parallel()
	got := Kinds()
	if !slices.Contains(got, "zz-test") || !slices.Contains(got, "aa-test") || !slices.IsSorted(got) {
		t.Fatalf("Kinds() = %v, want the registered kinds, sorted", got)
	}
}

func TestNewAdapterUsesTheKindsConstructor(t *testing.T) {
	t.Parallel()
	deps := Deps{HTTPClient: &http.Client{}}
	a, err := NewAdapter(Config{Name: "crm", Kind: "zz-test", URL: "https://crm.example"}, deps)
	if err != nil {
		t.Fatal(err)
	}
	if fa, ok := a.(*fakeAdapter); !ok || fa.name != "crm" || fa.deps.HTTPClient != deps.HTTPClient {
		t.Fatalf("NewAdapter = %#v, want the zz-test kind's adapter for crm with the given deps", a)
	}
	_, err = NewAdapter(Config{Name: "crm", Kind: "ftp"}, deps)
	if err == nil || err.Error() != `kind "ftp" is not available in this build` {
		t.Fatalf("unknown kind: err = %v", err)
	}
}

func TestValidateKindFromRegistry(t *testing.T) {
	t.Parallel()
	base := Config{Name: "crm", URL: "https://crm.example", Credentials: noneCreds()}.WithDefaults()

	c := base
	c.Kind = "ftp"
	err := c.Validate("upstreams[crm]")
	// The kinds registered in this package's tests are aa-test and zz-test.
	want := `upstreams[crm].kind: must be aa-test or zz-test, got "ftp"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("unknown kind: err = %v, want %q", err, want)
	}

	c = base
	c.Kind = "zz-test"
	if err := c.Validate("upstreams[crm]"); err == nil || !strings.Contains(err.Error(), "upstreams[crm].max_result_bytes: the test kind takes at most 1 MiB") {
		t.Errorf("the kind's Validate hook did not run: %v", err)
	}
	c.MaxResultBytes = 4096
	if err := c.Validate("upstreams[crm]"); err != nil {
		t.Errorf("a valid config of a registered kind: %v", err)
	}
	c.Kind = "aa-test" // no hook
	c.MaxResultBytes = 1 << 30
	if err := c.ValidateKind("upstreams[crm]"); err != nil {
		t.Errorf("a kind without a hook: ValidateKind = %v", err)
	}
}

func TestRegisterKindRefusesMistakes(t *testing.T) {
	t.Parallel()
	newFake := func(Config, Deps) (Adapter, error) { return nil, nil }
	for name, tc := range map[string]struct {
		kind string
		k    Kind
		want string
	}{
		"twice":      {"zz-test", Kind{New: newFake}, "registered twice"},
		"nil New":    {"nil-new", Kind{}, "Kind.New is nil"},
		"empty name": {"", Kind{New: newFake}, "invalid kind name"},
		"bad name":   {"Bad_Kind", Kind{New: newFake}, "invalid kind name"},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tc.want) {
					t.Errorf("RegisterKind(%q) panic = %v, want one containing %q", tc.kind, r, tc.want)
				}
			}()
			RegisterKind(tc.kind, tc.k)
		})
	}
	if _, ok := LookupKind("nil-new"); ok {
		t.Error("a refused kind was registered")
	}
}

func TestHealthOf(t *testing.T) {
	t.Parallel()
	h, ok := HealthOf(&healthyAdapter{fakeAdapter{name: "crm"}})
	if !ok || h.Upstream != "crm" || h.ConsecutiveFailures != 2 || h.Healthy() {
		t.Errorf("HealthOf(a reporter) = %+v, %v", h, ok)
	}
	if h, ok := HealthOf(&fakeAdapter{name: "crm"}); ok || h != (Health{}) {
		t.Errorf("HealthOf(no reporter) = %+v, %v; want zero, false", h, ok)
	}
}

func noneCreds() credentials.Config { return credentials.Config{Flow: credentials.FlowNone} }
