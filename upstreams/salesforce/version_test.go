package salesforce

import (
	"net/http"
	"strings"
	"sync"
	"testing"
)

// Without salesforce.api_version, calls go to /services/data/v66.0/ and
// the sandbox (an org on Spring '26) answers them.
func TestDefaultAPIVersionV66(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var paths []string
	e := newEnv(t, envOptions{intercept: func(_ http.ResponseWriter, r *http.Request) bool {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		return false
	}})
	cfg := e.config(e.jwtBearer()) // no salesforce.api_version
	a := e.adapter(t, cfg)
	mustTool(t, a, rita, ToolSOQLQuery, map[string]any{"query": "SELECT Id FROM Account"})
	mustTool(t, a, rita, ToolGetRecord, map[string]any{"sobject": "Account", "id": "001000000000001AAA"})
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 2 {
		t.Fatalf("REST paths %v", paths)
	}
	for _, p := range paths {
		if !strings.HasPrefix(p, "/services/data/v66.0/") {
			t.Errorf("path %s, want /services/data/v66.0/…", p)
		}
	}
}

// An api_version the org does not serve answers 404 NOT_FOUND on every
// resource; the user is told that, not that a record is not shared.
func TestUnservedAPIVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	cfg := e.config(e.jwtBearer())
	cfg.Salesforce.APIVersion = "v67.0" // newer than the sandbox org (v66.0)
	a := e.adapter(t, cfg)
	for _, c := range []struct {
		tool string
		args map[string]any
	}{
		{ToolSOQLQuery, map[string]any{"query": "SELECT Id FROM Account"}},
		{ToolSearch, map[string]any{"term": "Acme"}},
	} {
		res, _, err := callTool(t, a, rita, c.tool, c.args)
		if err != nil || !res.IsError {
			t.Fatalf("%s: want a tool error, got err=%v", c.tool, err)
		}
		for _, w := range []string{"API version v67.0", "salesforce.api_version", "/services/data/"} {
			if !strings.Contains(text(res), w) {
				t.Errorf("%s: message %q lacks %q", c.tool, text(res), w)
			}
		}
		if strings.Contains(text(res), "sharing") {
			t.Errorf("%s: message blames sharing: %q", c.tool, text(res))
		}
	}
	// A record that is not shared keeps its message under a served version.
	res, _, _ := callTool(t, e.adapter(t, e.config(e.jwtBearer())), rita, ToolGetRecord, map[string]any{"sobject": "Opportunity", "id": "006000000000099AAA"})
	if !strings.Contains(text(res), "sharing rules") {
		t.Errorf("unshared record: %q", text(res))
	}
}
