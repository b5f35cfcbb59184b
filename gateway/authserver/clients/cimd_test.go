package clients

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a settable clock.
type fakeClock struct{ ns atomic.Int64 }

func newClock() *fakeClock {
	c := &fakeClock{}
	c.ns.Store(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC).UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// docServer serves client metadata documents over TLS: handle(path, fn)
// installs fn, which gets the URL the request was made to (the client_id
// a correct document names). hits counts requests per path.
type docServer struct {
	*httptest.Server
	mu       sync.Mutex
	handlers map[string]func(w http.ResponseWriter, r *http.Request, self string)
	hits     map[string]int
}

func newDocServer(t *testing.T, tls bool) *docServer {
	d := &docServer{handlers: map[string]func(http.ResponseWriter, *http.Request, string){}, hits: map[string]int{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		fn := d.handlers[r.URL.Path]
		d.hits[r.URL.Path]++
		d.mu.Unlock()
		if fn == nil {
			http.NotFound(w, r)
			return
		}
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		fn(w, r, scheme+"://"+r.Host+r.URL.Path)
	})
	if tls {
		d.Server = httptest.NewTLSServer(h)
	} else {
		d.Server = httptest.NewServer(h)
	}
	t.Cleanup(d.Close)
	return d
}

func (d *docServer) handle(path string, fn func(w http.ResponseWriter, r *http.Request, self string)) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers[path] = fn
	return d.URL + path
}

func (d *docServer) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hits[path]
}

// serveDoc serves a valid document for its own URL, with extra fields
// merged in (a nil value deletes the field) and headers set.
func (d *docServer) serveDoc(path string, extra map[string]any, headers map[string]string) string {
	return d.handle(path, func(w http.ResponseWriter, r *http.Request, self string) {
		doc := map[string]any{
			"client_id":     self,
			"client_name":   "Example Agent",
			"client_uri":    "https://agent.example.com",
			"redirect_uris": []string{"http://127.0.0.1/callback", "https://agent.example.com/cb"},
		}
		for k, v := range extra {
			if v == nil {
				delete(doc, k)
			} else {
				doc[k] = v
			}
		}
		for k, v := range headers {
			w.Header().Set(k, v)
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc)
	})
}

// newCIMDRegistry builds a Registry that trusts srv's certificate (no SSRF
// guard: the test servers are on loopback; TestSSRF tests the guard).
func newCIMDRegistry(t *testing.T, srv *httptest.Server, clock *fakeClock) *Registry {
	t.Helper()
	r, err := New(Options{
		Registration: RegistrationConfig{Policy: PolicyOff},
		HTTPClient:   srv.Client(),
		Now:          clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestMetadataDocumentResolves(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	id := srv.serveDoc("/oauth/client.json", nil, nil)
	r := newCIMDRegistry(t, srv.Server, newClock())
	c, e := r.Resolve(context.Background(), id)
	if e != nil {
		t.Fatalf("Resolve: %v", e)
	}
	if c.ID != id || c.Name != "Example Agent" || c.Kind != KindMetadataDocument || !c.Public || c.URI != "https://agent.example.com" {
		t.Fatalf("client = %+v", c)
	}
	if !c.RedirectAllowed("http://127.0.0.1:49152/callback") || !c.RedirectAllowed("https://agent.example.com/cb") || c.RedirectAllowed("https://evil.example/cb") {
		t.Fatalf("redirect URIs of the document not applied: %v", c.RedirectURIs)
	}
	if strings.Join(c.GrantTypes, ",") != "authorization_code,refresh_token" {
		t.Fatalf("grant types = %v", c.GrantTypes)
	}
}

// TestMetadataDocumentBadInput: every way a document or its URL can be
// wrong gives invalid_client saying precisely why.
func TestMetadataDocumentBadInput(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	r := newCIMDRegistry(t, srv.Server, newClock())
	r.cimd.timeout = 300 * time.Millisecond
	target := srv.serveDoc("/target.json", nil, nil)
	raw := func(path, body string) string {
		return srv.handle(path, func(w http.ResponseWriter, _ *http.Request, _ string) { fmt.Fprint(w, body) })
	}
	big := strings.Repeat("x", MaxMetadataDocumentBytes)
	for _, tc := range []struct {
		name, id, want string
	}{
		{"client_id differs from URL", srv.serveDoc("/mismatch.json", map[string]any{"client_id": "https://other.example/client.json"}, nil), `its client_id "https://other.example/client.json" differs from the URL`},
		{"client_id is another path on the same host", srv.serveDoc("/a.json", map[string]any{"client_id": srv.URL + "/b.json"}, nil), "differs from the URL"},
		{"too large", srv.serveDoc("/big.json", map[string]any{"padding": big}, nil), "too large (more than 5120 bytes)"},
		{"too large without Content-Length", srv.handle("/bigchunked.json", func(w http.ResponseWriter, _ *http.Request, _ string) {
			for range 10 {
				fmt.Fprint(w, strings.Repeat(" ", 1000))
				w.(http.Flusher).Flush()
			}
		}), "too large"},
		{"too slow", srv.handle("/slow.json", func(w http.ResponseWriter, req *http.Request, _ string) {
			select {
			case <-req.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}), "timed out: too slow"},
		{"too slow body", srv.handle("/slowbody.json", func(w http.ResponseWriter, req *http.Request, _ string) {
			fmt.Fprint(w, "{")
			w.(http.Flusher).Flush()
			select {
			case <-req.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}), "too slow"},
		{"redirect", srv.handle("/moved.json", func(w http.ResponseWriter, req *http.Request, _ string) {
			http.Redirect(w, req, target, http.StatusFound)
		}), "redirects (HTTP 302); redirects are not followed"},
		{"permanent redirect", srv.handle("/moved2.json", func(w http.ResponseWriter, req *http.Request, _ string) {
			http.Redirect(w, req, target, http.StatusPermanentRedirect)
		}), "redirects (HTTP 308)"},
		{"404", srv.URL + "/missing.json", "HTTP 404 (want 200)"},
		{"201 is not 200", srv.handle("/created.json", func(w http.ResponseWriter, _ *http.Request, self string) {
			w.WriteHeader(http.StatusCreated)
		}), "HTTP 201 (want 200)"},
		{"not JSON", raw("/html.json", "<html>hello</html>"), "the document is not JSON"},
		{"JSON but not an object", raw("/array.json", `["a"]`), "not a JSON object"},
		{"redirect_uris missing", srv.serveDoc("/nouris.json", map[string]any{"redirect_uris": nil}, nil), "redirect_uris is required"},
		{"redirect_uris wrong type", srv.serveDoc("/urisstring.json", map[string]any{"redirect_uris": "https://a.example/cb"}, nil), "redirect_uris must be an array of strings"},
		{"redirect_uri javascript", srv.serveDoc("/js.json", map[string]any{"redirect_uris": []string{"javascript:alert(1)"}}, nil), "redirect_uris[0]: \"javascript:alert(1)\": the javascript: scheme is not allowed"},
		{"client_name missing", srv.serveDoc("/noname.json", map[string]any{"client_name": nil}, nil), "client_name is required"},
		{"shared secret", srv.serveDoc("/basic.json", map[string]any{"token_endpoint_auth_method": "client_secret_basic"}, nil), "shared secrets are not allowed with client ID metadata documents"},
		{"private_key_jwt", srv.serveDoc("/pkjwt.json", map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://a.example/jwks"}, nil), "private_key_jwt is not supported"},
		{"client_secret in document", srv.serveDoc("/secret.json", map[string]any{"client_secret": "s3cret"}, nil), "client_secret must not appear"},
		{"implicit grant", srv.serveDoc("/implicit.json", map[string]any{"grant_types": []string{"implicit"}}, nil), `grant_types: "implicit" is not supported`},
		// URL rules, checked before any fetch
		{"http without allow_loopback_http", strings.Replace(srv.serveDoc("/http.json", nil, nil), "https://", "http://", 1), "must be https"},
		{"query", srv.serveDoc("/q.json", nil, nil) + "?v=1", "must not contain a query"},
		{"fragment", srv.serveDoc("/f.json", nil, nil) + "#x", "must not contain a fragment"},
		{"userinfo", strings.Replace(srv.URL, "https://", "https://user@", 1) + "/u.json", "must not contain user information"},
		{"dot segment", srv.URL + "/a/../target.json", "dot segments"},
		{"encoded dot segment", srv.URL + "/a/%2e%2E/target.json", "dot segments"},
		{"no path", srv.URL, "has no path"},
		{"backslash", srv.URL + `\@evil.example/x`, "backslash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, e := r.Resolve(context.Background(), tc.id)
			if e == nil {
				t.Fatalf("Resolve(%q) = %+v, want an error", tc.id, c)
			}
			if e.Code != "invalid_client" || e.Status != http.StatusBadRequest || !strings.Contains(e.Description, tc.want) {
				t.Fatalf("Resolve(%q) = %d %s %q, want 400 invalid_client containing %q", tc.id, e.Status, e.Code, e.Description, tc.want)
			}
			if !strings.HasPrefix(e.Description, "client metadata document "+clip(tc.id)+": ") {
				t.Errorf("description %q does not name the document", e.Description)
			}
		})
	}
	if n := srv.count("/target.json"); n != 0 {
		t.Errorf("a redirect was followed: the target was fetched %d times", n)
	}
	for _, p := range []string{"/http.json", "/q.json", "/f.json", "/u.json"} {
		if n := srv.count(p); n != 0 {
			t.Errorf("%s: fetched %d times although its URL is refused", p, n)
		}
	}
}

// TestMetadataDocumentRequest: GET with Accept: application/json.
func TestMetadataDocumentRequest(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	var accept, method atomic.Value
	id := srv.handle("/c.json", func(w http.ResponseWriter, req *http.Request, self string) {
		accept.Store(req.Header.Get("Accept"))
		method.Store(req.Method)
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"x","redirect_uris":["https://x.example/cb"]}`, self)
	})
	r := newCIMDRegistry(t, srv.Server, newClock())
	if _, e := r.Resolve(context.Background(), id); e != nil {
		t.Fatal(e)
	}
	if accept.Load() != "application/json" || method.Load() != http.MethodGet {
		t.Fatalf("request: %v Accept %v", method.Load(), accept.Load())
	}
}

func TestMetadataDocumentAllowedHosts(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	id := srv.serveDoc("/c.json", nil, nil)
	for _, tc := range []struct {
		hosts []string
		ok    bool
	}{
		{nil, true},
		{[]string{"127.0.0.1"}, true},
		{[]string{"apps.example.com", "*.example.org"}, false},
	} {
		r, err := New(Options{
			Registration:      RegistrationConfig{Policy: PolicyOff},
			MetadataDocuments: MetadataDocumentsConfig{AllowedHosts: tc.hosts},
			HTTPClient:        srv.Client(),
		})
		if err != nil {
			t.Fatal(err)
		}
		_, e := r.Resolve(context.Background(), id)
		if (e == nil) != tc.ok || (e != nil && !strings.Contains(e.Description, "host 127.0.0.1 is not in metadata_documents.allowed_hosts")) {
			t.Errorf("allowed_hosts %v: %v", tc.hosts, e)
		}
	}
	for _, tc := range []struct {
		host string
		ok   bool
	}{
		{"a.example.org", true}, {"x.a.example.org", true}, {"example.org", false}, {"evilexample.org", false}, {"apps.example.com", true}, {"x.apps.example.com", false},
	} {
		if got := hostAllowed(tc.host, []string{"apps.example.com", "*.example.org"}); got != tc.ok {
			t.Errorf("hostAllowed(%s) = %v", tc.host, got)
		}
	}
}

func TestMetadataDocumentsDisabled(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	id := srv.serveDoc("/c.json", nil, nil)
	r, err := New(Options{Registration: RegistrationConfig{Policy: PolicyOff}, MetadataDocuments: MetadataDocumentsConfig{Disabled: true}, HTTPClient: srv.Client()})
	if err != nil {
		t.Fatal(err)
	}
	if r.MetadataDocumentsEnabled() {
		t.Fatal("MetadataDocumentsEnabled with disabled: true")
	}
	_, e := r.Resolve(context.Background(), id)
	if e == nil || !strings.Contains(e.Description, "does not accept client ID metadata documents") || srv.count("/c.json") != 0 {
		t.Fatalf("Resolve = %v, %d fetches", e, srv.count("/c.json"))
	}
}

// TestMetadataDocumentCaching: cached per max-age (capped), not at all
// with no-store, the default without headers, and never a failure.
func TestMetadataDocumentCaching(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	clock := newClock()
	r := newCIMDRegistry(t, srv.Server, clock)
	ctx := context.Background()
	resolve := func(id string) {
		t.Helper()
		if _, e := r.Resolve(ctx, id); e != nil {
			t.Fatalf("Resolve(%s): %v", id, e)
		}
	}

	maxAge := srv.serveDoc("/maxage.json", nil, map[string]string{"Cache-Control": "public, max-age=60"})
	resolve(maxAge)
	clock.Advance(59 * time.Second)
	resolve(maxAge)
	if n := srv.count("/maxage.json"); n != 1 {
		t.Fatalf("max-age=60: %d fetches within 59s, want 1", n)
	}
	clock.Advance(2 * time.Second)
	resolve(maxAge)
	if n := srv.count("/maxage.json"); n != 2 {
		t.Fatalf("max-age=60: %d fetches after 61s, want 2", n)
	}

	noStore := srv.serveDoc("/nostore.json", nil, map[string]string{"Cache-Control": "no-store"})
	resolve(noStore)
	resolve(noStore)
	if n := srv.count("/nostore.json"); n != 2 {
		t.Fatalf("no-store: %d fetches for 2 resolves, want 2", n)
	}

	def := srv.serveDoc("/default.json", nil, nil)
	resolve(def)
	clock.Advance(DefaultMetadataTTL - time.Second)
	resolve(def)
	if n := srv.count("/default.json"); n != 1 {
		t.Fatalf("no caching headers: %d fetches within the default TTL, want 1", n)
	}
	clock.Advance(2 * time.Second)
	resolve(def)
	if n := srv.count("/default.json"); n != 2 {
		t.Fatalf("no caching headers: %d fetches after the default TTL, want 2", n)
	}

	long := srv.serveDoc("/long.json", nil, map[string]string{"Cache-Control": "max-age=31536000"})
	resolve(long)
	clock.Advance(MaxMetadataTTL + time.Second)
	resolve(long)
	if n := srv.count("/long.json"); n != 2 {
		t.Fatalf("max-age of a year: %d fetches after %s, want 2 (capped)", n, MaxMetadataTTL)
	}

	// A failure (500, then an invalid document) is not cached: once the
	// document is fixed, the next resolve succeeds.
	var state atomic.Int32
	flaky := srv.handle("/flaky.json", func(w http.ResponseWriter, _ *http.Request, self string) {
		w.Header().Set("Cache-Control", "max-age=3600")
		switch state.Load() {
		case 0:
			http.Error(w, "oops", http.StatusInternalServerError)
		case 1:
			fmt.Fprintf(w, `{"client_id":%q,"client_name":"x"}`, self) // no redirect_uris
		default:
			fmt.Fprintf(w, `{"client_id":%q,"client_name":"x","redirect_uris":["https://x.example/cb"]}`, self)
		}
	})
	if _, e := r.Resolve(ctx, flaky); e == nil || !strings.Contains(e.Description, "HTTP 500") {
		t.Fatalf("500: %v", e)
	}
	state.Store(1)
	if _, e := r.Resolve(ctx, flaky); e == nil || !strings.Contains(e.Description, "redirect_uris is required") {
		t.Fatalf("invalid document after a 500: %v (was the failure cached?)", e)
	}
	state.Store(2)
	resolve(flaky)
	if n := srv.count("/flaky.json"); n != 3 {
		t.Fatalf("flaky: %d fetches, want 3", n)
	}
}

func TestCacheTTL(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		h    map[string]string
		want time.Duration
	}{
		{nil, DefaultMetadataTTL},
		{map[string]string{"Cache-Control": "max-age=120"}, 120 * time.Second},
		{map[string]string{"Cache-Control": "max-age=120", "Age": "100"}, 20 * time.Second},
		{map[string]string{"Cache-Control": "max-age=0"}, 0},
		{map[string]string{"Cache-Control": "max-age=120, no-store"}, 0},
		{map[string]string{"Cache-Control": "no-cache"}, 0},
		{map[string]string{"Cache-Control": "max-age=bogus"}, 0},
		{map[string]string{"Cache-Control": "max-age=999999999"}, MaxMetadataTTL},
		{map[string]string{"Expires": now.Add(time.Hour).Format(http.TimeFormat), "Date": now.Format(http.TimeFormat)}, time.Hour},
		{map[string]string{"Expires": "0"}, 0},
		{map[string]string{"Expires": now.Add(-time.Hour).Format(http.TimeFormat)}, 0},
	} {
		h := http.Header{}
		for k, v := range tc.h {
			h.Set(k, v)
		}
		if got := cacheTTL(h, now); got != tc.want {
			t.Errorf("cacheTTL(%v) = %s, want %s", tc.h, got, tc.want)
		}
	}
}

// TestMetadataDocumentSingleFlight: concurrent resolves of one URL make
// one request.
func TestMetadataDocumentSingleFlight(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	release := make(chan struct{})
	id := srv.handle("/c.json", func(w http.ResponseWriter, _ *http.Request, self string) {
		<-release
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, `{"client_id":%q,"client_name":"x","redirect_uris":["https://x.example/cb"]}`, self)
	})
	r := newCIMDRegistry(t, srv.Server, newClock())
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan *Error, n)
	for range n {
		wg.Go(func() {
			_, e := r.Resolve(context.Background(), id)
			errs <- e
		})
	}
	// Let every goroutine join the flight, then answer.
	deadline := time.Now().Add(5 * time.Second)
	for srv.count("/c.json") == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for e := range errs {
		if e != nil {
			t.Fatal(e)
		}
	}
	if got := srv.count("/c.json"); got != 1 {
		t.Fatalf("%d concurrent resolves made %d requests, want 1", n, got)
	}
}
