// Package webtest has the small HTTP helpers tests share: reading a JSON
// document, and a browser (a cookie jar that does not follow redirects, so
// a test sees each hop of a sign-in).
package webtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"
)

// GetJSON GETs u, requires 200 and decodes the body into v.
func GetJSON(t testing.TB, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d %.500s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %.500s", u, err, b)
	}
}

// NewBrowser returns a client with a cookie jar that does not follow
// redirects.
func NewBrowser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Response is one answer: status, headers, body and the Location.
type Response struct {
	Status int
	Header http.Header
	Body   string
	Loc    *url.URL
}

// Do sends method to target with c: form (when not nil) as an urlencoded
// body, and the headers hdr.
func Do(t testing.TB, c *http.Client, method, target string, form url.Values, hdr map[string]string) Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := Response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
	if l, err := resp.Location(); err == nil {
		r.Loc = l
	}
	return r
}

// WantPage checks that r is a page at Mandate (no redirect) with status,
// saying contains, with the pages' security headers (no framing, no
// caching, no referrer, a CSP of default-src 'none') and no script.
func WantPage(t testing.TB, r Response, status int, contains string) {
	t.Helper()
	if r.Status != status || r.Loc != nil {
		body := r.Body
		if len(body) > 400 {
			body = body[:400]
		}
		t.Fatalf("got %d (location %v) %s, want a page %d", r.Status, r.Loc, body, status)
	}
	if !strings.Contains(r.Body, contains) {
		t.Errorf("page does not say %q: %s", contains, r.Body)
	}
	for k, v := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "no-referrer"} {
		if r.Header.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, r.Header.Get(k), v)
		}
	}
	if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("CSP = %q", csp)
	}
	if strings.Contains(r.Body, "<script") {
		t.Error("page has a script")
	}
}
