package sandbox

import (
	"io"
	"net/http"
	"net/url"
	"testing"
)

func (e *env) getHeader(t *testing.T, tok, path string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.ts.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// Salesforce returns Sforce-Limit-Info on every REST API response except
// the versions resource; an org always has a daily allowance.
func TestLimitInfoOnEveryResponse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok, _ := e.sb.IssueToken("rep@acme.example")
	q := "/services/data/v" + LatestVersion + "/query?q=" + url.QueryEscape("SELECT Id FROM Account")
	steps := []struct {
		path       string
		wantStatus int
		want       string
	}{
		{q, 200, "api-usage=1/100000"},
		{"/services/data/v" + LatestVersion + "/sobjects/Opportunity/006000000000099AAA", 404, "api-usage=2/100000"},
		{"/services/data/v" + LatestVersion + "/query?q=" + url.QueryEscape("SELECT Nope FROM Account"), 400, "api-usage=3/100000"},
		{"/services/data/", 200, ""}, // the versions resource does not count and carries no header
	}
	for _, s := range steps {
		status, h, b := e.getHeader(t, tok, s.path)
		if status != s.wantStatus || h.Get("Sforce-Limit-Info") != s.want {
			t.Errorf("GET %s: %d %q (%s); want %d %q", s.path, status, h.Get("Sforce-Limit-Info"), b, s.wantStatus, s.want)
		}
	}

	// A configured allowance is what the header reports, and the refusal
	// past it carries it too.
	e2 := newEnv(t, &Options{DailyRequestLimit: 2})
	tok2, _ := e2.sb.IssueToken("rep@acme.example")
	for i, want := range []string{"api-usage=1/2", "api-usage=2/2", "api-usage=2/2"} {
		_, h, _ := e2.getHeader(t, tok2, q)
		if got := h.Get("Sforce-Limit-Info"); got != want {
			t.Errorf("request %d: Sforce-Limit-Info %q, want %q", i, got, want)
		}
	}
	// A negative allowance is unlimited: no header (load tests).
	e3 := newEnv(t, &Options{DailyRequestLimit: -1})
	tok3, _ := e3.sb.IssueToken("rep@acme.example")
	if status, h, _ := e3.getHeader(t, tok3, q); status != 200 || h.Get("Sforce-Limit-Info") != "" {
		t.Errorf("unlimited: %d %q", status, h.Get("Sforce-Limit-Info"))
	}
}

// The sandbox serves v66.0 (Spring '26) and answers a version it does not
// serve as Salesforce does: 404 with the documented error body.
func TestVersionsServedAndUnknown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	tok, _ := e.sb.IssueToken("rep@acme.example")
	if status, b := e.get(t, tok, "/services/data/v66.0/query?q="+url.QueryEscape("SELECT Id FROM Account")); status != 200 {
		t.Errorf("v66.0: %d %s", status, b)
	}
	const notFound = `[{"message":"The requested resource does not exist","errorCode":"NOT_FOUND"}]` + "\n"
	for _, v := range []string{"v67.0", "v30.0", "v66.1", "v66", "vX"} {
		status, h, b := e.getHeader(t, tok, "/services/data/"+v+"/query?q=x")
		if status != 404 || string(b) != notFound || h.Get("Content-Type") != "application/json;charset=UTF-8" {
			t.Errorf("%s: %d %q %s", v, status, h.Get("Content-Type"), b)
		}
	}
}
