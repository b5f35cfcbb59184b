package clients

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A secret with characters that must be form-urlencoded in Basic
// credentials (RFC 6749 §2.3.1).
const confSecret = "s3cret:with+special/chars%"

func newPreregRegistry(t *testing.T) *Registry {
	t.Helper()
	dir := t.TempDir()
	f := filepath.Join(dir, "secret")
	if err := os.WriteFile(f, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New(Options{
		Registration: RegistrationConfig{Policy: PolicyOff},
		Preregistered: []ClientConfig{
			{ClientID: "cli", ClientName: "The CLI", RedirectURIs: []string{"http://127.0.0.1/cb"}, SkipConsent: true},
			{ClientID: "conf", RedirectURIs: []string{"https://app.example.com/cb"}, ClientSecret: confSecret},
			{ClientID: "filed", RedirectURIs: []string{"https://app.example.com/cb"}, ClientSecretFile: f},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func basic(id, secret string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
}

func tokenRequest(form url.Values, authz string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, "/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	return req
}

func TestPreregisteredResolve(t *testing.T) {
	t.Parallel()
	r := newPreregRegistry(t)
	c, e := r.Resolve(context.Background(), "cli")
	if e != nil {
		t.Fatal(e)
	}
	if c.Name != "The CLI" || c.Kind != KindPreregistered || !c.Public || !c.SkipConsent || !c.RedirectAllowed("http://127.0.0.1:5555/cb") {
		t.Fatalf("cli = %+v", c)
	}
	c, e = r.Resolve(context.Background(), "conf")
	if e != nil {
		t.Fatal(e)
	}
	if c.Public || c.Name != "conf" || c.SkipConsent {
		t.Fatalf("conf = %+v", c)
	}
	for _, id := range []string{"nobody", "", strings.Repeat("x", 3000)} {
		if _, e := r.Resolve(context.Background(), id); e == nil || e.Code != "invalid_client" {
			t.Errorf("Resolve(%.20q) = %v, want invalid_client", id, e)
		}
	}
	if _, e := r.Resolve(context.Background(), "nobody"); !strings.Contains(e.Description, `unknown client_id "nobody"`) {
		t.Errorf("unknown client: %q", e.Description)
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	r := newPreregRegistry(t)
	form := func(kv ...string) url.Values {
		v := url.Values{"grant_type": {"authorization_code"}}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name      string
		form      url.Values
		authz     string
		wantID    string // success
		status    int    // failure
		code      string
		desc      string
		challenge bool
	}{
		{name: "basic", authz: basic("conf", confSecret), form: form(), wantID: "conf"},
		{name: "basic with matching client_id in form", authz: basic("conf", confSecret), form: form("client_id", "conf"), wantID: "conf"},
		{name: "post", form: form("client_id", "conf", "client_secret", confSecret), wantID: "conf"},
		{name: "secret from file", form: form("client_id", "filed", "client_secret", "file-secret"), wantID: "filed"},
		{name: "public", form: form("client_id", "cli"), wantID: "cli"},
		{name: "public with empty Basic password", authz: basic("cli", ""), form: form(), wantID: "cli"},
		{name: "basic wrong secret", authz: basic("conf", "wrong"), form: form(), status: 401, code: "invalid_client", desc: "wrong client secret", challenge: true},
		{name: "basic not url-encoded", authz: "Basic " + base64.StdEncoding.EncodeToString([]byte("conf:"+confSecret)), form: form(), status: 401, code: "invalid_client", challenge: true},
		{name: "post wrong secret", form: form("client_id", "conf", "client_secret", "wrong"), status: 401, code: "invalid_client", desc: "wrong client secret"},
		{name: "confidential without secret", form: form("client_id", "conf"), status: 401, code: "invalid_client", desc: "is confidential and must authenticate"},
		{name: "confidential with empty secret", form: form("client_id", "conf", "client_secret", ""), status: 401, code: "invalid_client", desc: "is confidential"},
		{name: "public sending a secret", form: form("client_id", "cli", "client_secret", "guess"), status: 401, code: "invalid_client", desc: "is public"},
		{name: "public sending a Basic secret", authz: basic("cli", "guess"), form: form(), status: 401, code: "invalid_client", desc: "is public", challenge: true},
		{name: "two methods", authz: basic("conf", confSecret), form: form("client_secret", confSecret), status: 400, code: "invalid_request", desc: "two authentication methods"},
		{name: "client_id differs from Basic", authz: basic("conf", confSecret), form: form("client_id", "cli"), status: 400, code: "invalid_request", desc: "differs"},
		{name: "client_id repeated", form: form("client_id", "cli", "client_id", "conf"), status: 400, code: "invalid_request", desc: "client_id is repeated"},
		{name: "unknown client", form: form("client_id", "nobody"), status: 401, code: "invalid_client", desc: "unknown client_id"},
		{name: "unknown client via Basic", authz: basic("nobody", "x"), form: form(), status: 401, code: "invalid_client", challenge: true},
		{name: "no client at all", form: form(), status: 401, code: "invalid_client", desc: "client authentication is missing"},
		{name: "malformed Basic", authz: "Basic !!!", form: form(), status: 401, code: "invalid_client", desc: "not valid Basic credentials", challenge: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, e := r.Authenticate(tokenRequest(tc.form, tc.authz))
			if tc.wantID != "" {
				if e != nil || c.ID != tc.wantID {
					t.Fatalf("Authenticate = %+v, %v; want client %s", c, e, tc.wantID)
				}
				return
			}
			if e == nil {
				t.Fatalf("Authenticate = %+v, want %d %s", c, tc.status, tc.code)
			}
			if e.Status != tc.status || e.Code != tc.code || !strings.Contains(e.Description, tc.desc) {
				t.Fatalf("Authenticate = %d %s %q; want %d %s %q", e.Status, e.Code, e.Description, tc.status, tc.code, tc.desc)
			}
			if got := e.WWWAuthenticate != ""; got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q; want a Basic challenge: %v", e.WWWAuthenticate, tc.challenge)
			}
			if strings.Contains(e.Description, confSecret) || strings.Contains(e.Description, "guess") {
				t.Fatalf("description leaks a secret: %q", e.Description)
			}
			// The error writes as an OAuth error response.
			w := httptest.NewRecorder()
			e.Write(w)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), `"error":"`+tc.code+`"`) || (tc.challenge && !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Basic")) {
				t.Fatalf("written: %d %s %v", w.Code, w.Body, w.Header())
			}
		})
	}
}

// TestAuthenticateSecretInURL: a client secret in the query string is
// refused (RFC 6749 §2.3.1: MUST NOT).
func TestAuthenticateSecretInURL(t *testing.T) {
	t.Parallel()
	r := newPreregRegistry(t)
	req := tokenRequest(url.Values{"client_id": {"conf"}}, "")
	req.URL.RawQuery = "client_secret=" + url.QueryEscape(confSecret)
	if _, e := r.Authenticate(req); e == nil || e.Code != "invalid_request" {
		t.Fatalf("secret in URL: %v", e)
	}
}

// TestAuthenticateMetadataDocumentClient: a CIMD client is public: it names
// itself and sends no secret.
func TestAuthenticateMetadataDocumentClient(t *testing.T) {
	t.Parallel()
	srv := newDocServer(t, true)
	id := srv.serveDoc("/c.json", nil, nil)
	r := newCIMDRegistry(t, srv.Server, newClock())
	c, e := r.Authenticate(tokenRequest(url.Values{"client_id": {id}}, ""))
	if e != nil || c.ID != id || c.Kind != KindMetadataDocument {
		t.Fatalf("Authenticate = %+v, %v", c, e)
	}
	if _, e := r.Authenticate(tokenRequest(url.Values{"client_id": {id}, "client_secret": {"x"}}, "")); e == nil || e.Status != 401 {
		t.Fatalf("CIMD client with a secret: %v", e)
	}
	// A document that cannot be fetched: 401 invalid_client saying why.
	bad := srv.serveDoc("/bad.json", map[string]any{"client_id": "https://x.example/c.json"}, nil)
	if _, e := r.Authenticate(tokenRequest(url.Values{"client_id": {bad}}, "")); e == nil || e.Status != 401 || !strings.Contains(e.Description, "differs from the URL") {
		t.Fatalf("bad document: %v", e)
	}
}
