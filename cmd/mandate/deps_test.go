package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestProductBinaryCarriesNoDemo: the product binary links no OpenID
// Provider, no dev IdP, no demo and no platform sandbox; those belong to
// cmd/mandate-demo and to tests. Run from this directory, so "." is
// ./cmd/mandate.
func TestProductBinaryCarriesNoDemo(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list -deps .: %v\n%s", err, stderr)
	}
	pkgs := strings.Fields(string(out))
	if len(pkgs) < 10 {
		t.Fatalf("go list -deps . listed %d packages, want the whole build:\n%s", len(pkgs), out)
	}
	forbidden := map[string]bool{
		"github.com/zitadel/oidc/v3/pkg/op":                 true, // named by issue 13; also covered by the prefix below
		"github.com/mandate-gw/mandate/internal/app/devidp": true,
		"github.com/mandate-gw/mandate/internal/app/demo":   true,
	}
	for _, p := range pkgs {
		if forbidden[p] || strings.HasPrefix(p, "github.com/zitadel/") || // only the dev IdP uses zitadel
			strings.HasSuffix(p, "/sandbox") || strings.Contains(p, "/sandbox/") {
			t.Errorf("./cmd/mandate links %s", p)
		}
	}
}
