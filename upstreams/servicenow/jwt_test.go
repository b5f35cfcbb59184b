package servicenow

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
)

// tokenRequest is what one request to the token endpoint carried.
type tokenRequest struct {
	basic        bool   // client credentials in an Authorization: Basic header
	clientSecret string // client_secret form field
	aud          []string
}

// spy fronts the sandbox and records the token requests.
type spy struct {
	mu   sync.Mutex
	reqs []tokenRequest
}

func (s *spy) handler(t *testing.T, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/oauth_token.do" {
			if err := r.ParseForm(); err != nil {
				t.Error(err)
			}
			_, _, basic := r.BasicAuth()
			tr := tokenRequest{basic: basic, clientSecret: r.PostForm.Get("client_secret")}
			if a := r.PostForm.Get("assertion"); a != "" {
				var c jwt.Claims
				tok, err := jwt.ParseSigned(a, []jose.SignatureAlgorithm{jose.RS256})
				if err == nil && tok.UnsafeClaimsWithoutVerification(&c) == nil {
					tr.aud = c.Audience
				}
			}
			s.mu.Lock()
			s.reqs = append(s.reqs, tr)
			s.mu.Unlock()
		}
		next.ServeHTTP(w, r)
	})
}

// The JWT bearer grant as ServiceNow documents it ("Create an OAuth JWT API
// endpoint for external clients"): aud is the OAuth client id, and the
// client secret travels in the form body. The sandbox refuses any other
// aud, so Mandate's old default (the token URL) fails here.
func TestJWTBearerAsServiceNowDocuments(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	sp := &spy{}
	ts := httptest.NewServer(sp.handler(t, e.sb))
	t.Cleanup(ts.Close)
	creds := e.jwtBearer() // no assertion_audience, no client_auth
	creds.TokenURL = ts.URL + "/oauth_token.do"
	cfg := upstreams.Config{Name: "servicenow", Kind: upstreams.KindServiceNow, URL: ts.URL, Credentials: creds}
	if d := cfg.WithDefaults(); d.Validate("upstreams[servicenow]") != nil {
		t.Fatal(d.Validate("upstreams[servicenow]"))
	}
	src := resttest.BrokerSource(t, cfg, e.logs)
	ctx, _ := ctxAs(t, ivy)
	res, err := src.Token(ctx)
	if err != nil {
		t.Fatalf("token: %v\nbroker log:\n%s", err, e.logs.String())
	}
	if res.Token.PlatformSubject != "it.agent@acme.example" {
		t.Errorf("platform subject = %q", res.Token.PlatformSubject)
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if len(sp.reqs) != 1 {
		t.Fatalf("%d token requests, want 1", len(sp.reqs))
	}
	got := sp.reqs[0]
	if len(got.aud) != 1 || got.aud[0] != clientID {
		t.Errorf("assertion aud = %q, want the client id %q", got.aud, clientID)
	}
	if got.basic || got.clientSecret != clientSecret {
		t.Errorf("client authentication: basic=%v, client_secret in body=%v; want the secret in the form body (client_secret_post)", got.basic, got.clientSecret != "")
	}
}

// assertion_audience may be any string (ServiceNow's is the client id, not
// a URL); a wrong one is refused opaquely by ServiceNow, and the user is
// told what the administrators must check.
func TestJWTBearerAudienceConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	creds := e.jwtBearer()
	creds.AssertionAudience = clientID
	if d := e.config(creds).WithDefaults(); d.Validate("upstreams[servicenow]") != nil {
		err := d.Validate("upstreams[servicenow]")
		t.Errorf("a client id as assertion_audience: %v", err)
	}
	ctx, _ := ctxAs(t, ivy)
	if _, err := resttest.BrokerSource(t, e.config(creds), e.logs).Token(ctx); err != nil {
		t.Errorf("token with assertion_audience = client id: %v", err)
	}

	creds.AssertionAudience = e.ts.URL + "/oauth_token.do" // what ServiceNow refuses
	_, err := resttest.BrokerSource(t, e.config(creds), e.logs).Token(ctx)
	if err == nil {
		t.Fatal("the sandbox accepted an assertion whose aud is the token URL")
	}
	for _, want := range []string{"aud and iss must equal its Client ID", "it.agent@acme.example", `credentials.subject "{{ .Email }}"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
}
