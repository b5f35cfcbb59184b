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
