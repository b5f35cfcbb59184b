package salesforce

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/rest/resttest"
	sb "github.com/mandate-gw/mandate/upstreams/salesforce/sandbox"
)

// Without assertion_audience a salesforce upstream's assertions name
// https://login.salesforce.com, as Salesforce requires; the sandbox no
// longer accepts its own URL (Mandate's old default, the token URL).
func TestJWTBearerDefaultAudience(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{})
	creds := e.jwtBearer()
	creds.AssertionAudience = ""
	a := e.adapter(t, e.config(creds))
	mustTool(t, a, rita, ToolMyPipeline, nil)
}

// A sandbox org: token_url on its My Domain (…sandbox.my.salesforce.com)
// makes the default aud https://test.salesforce.com, the only one a
// sandbox org accepts.
func TestJWTBearerSandboxOrgAudience(t *testing.T) {
	t.Parallel()
	key := signingKey(t)
	org, err := sb.New(&sb.Options{SandboxOrg: true, Apps: []sb.ConnectedApp{{
		ConsumerKey: consumerKey, PublicKey: &key.PublicKey, PreAuthorized: []string{"rep@acme.example"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewTLSServer(org)
	t.Cleanup(ts.Close)
	// The org's real host name resolves to the test server.
	client := ts.Client()
	tr := client.Transport.(*http.Transport).Clone()
	tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, ts.Listener.Addr().String())
	}
	tr.TLSClientConfig.InsecureSkipVerify = true // the test server's certificate names 127.0.0.1
	client.Transport = tr

	e := newEnv(t, envOptions{}) // for the key file
	creds := e.jwtBearer()
	creds.AssertionAudience = ""
	creds.TokenURL = "https://acme--uat.sandbox.my.salesforce.com/services/oauth2/token"
	cfg := upstreams.Config{Name: "salesforce", Kind: upstreams.KindSalesforce, URL: "https://acme--uat.sandbox.my.salesforce.com", Credentials: creds}.WithDefaults()
	if err := cfg.Validate("upstreams[salesforce]"); err != nil {
		t.Fatal(err)
	}
	broker := credentials.NewBroker(credentials.BrokerOptions{HTTPClient: client, InvalidGrantBackoff: -1})
	src, err := broker.Source(cfg.Name, cfg.Credentials)
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := ctxAs(t, rita)
	if _, err := src.Token(ctx); err != nil {
		t.Fatalf("sandbox org token: %v", err)
	}
}

// Each error Salesforce documents for the JWT bearer flow reaches the user
// as what it means and who must act.
func TestJWTBearerSalesforceErrors(t *testing.T) {
	t.Parallel()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		setup func(e *env, c *credentials.Config)
		as    string // the user's email (= the Salesforce username via {{ .Email }})
		want  []string
	}{
		{"username unknown to the org", nil, "ghost@acme.example",
			[]string{"[invalid_grant: user hasn't approved this consumer]", `no user "ghost@acme.example"`, `subject mapping (credentials.subject "{{ .Email }}")`}},
		{"user not pre-authorised", func(e *env, c *credentials.Config) {
			c.Subject = `{{ .Email | replace "rep@" "integration@" }}`
		}, "rep@acme.example",
			[]string{`no user "integration@acme.example"`, `credentials.subject "{{ .Email | replace \"rep@\" \"integration@\" }}"`, "not pre-authorised for your profile or permission set", "Admin approved users are pre-authorized"}},
		{"audience invalid", func(e *env, c *credentials.Config) { c.AssertionAudience = e.ts.URL },
			"rep@acme.example", []string{"[invalid_grant: audience is invalid]", "credentials.assertion_audience must be https://login.salesforce.com", "https://test.salesforce.com (sandbox orgs)"}},
		{"invalid assertion", func(e *env, c *credentials.Config) {
			if err := e.sb.RegisterApp(sb.ConnectedApp{ConsumerKey: consumerKey, PublicKey: &other.PublicKey, PreAuthorized: []string{"rep@acme.example"}}); err != nil {
				t.Fatal(err)
			}
		}, "rep@acme.example", []string{"[invalid_grant: invalid assertion]", "certificate must match credentials.private_key_file"}},
		{"unknown consumer key", func(e *env, c *credentials.Config) { c.ClientID = "not-the-consumer-key" },
			"rep@acme.example", []string{"[invalid_client_id: client identifier invalid]", "credentials.client_id must be the connected app's consumer key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{})
			creds := e.jwtBearer()
			creds.AssertionAudience = ""
			if tc.setup != nil {
				tc.setup(e, &creds)
			}
			src := resttest.BrokerSource(t, e.config(creds), e.brokerLogs)
			ctx, _ := ctxAs(t, user("user-x", tc.as))
			_, err := src.Token(ctx)
			if err == nil {
				t.Fatal("token issued")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
}

// An assertion that arrives expired (the gateway's clock is behind the
// org's) is blamed on the clock.
func TestJWTBearerExpiredAssertion(t *testing.T) {
	t.Parallel()
	key := signingKey(t)
	org, err := sb.New(&sb.Options{
		Clock: func() time.Time { return time.Now().Add(5 * time.Minute) },
		Apps:  []sb.ConnectedApp{{ConsumerKey: consumerKey, PublicKey: &key.PublicKey, PreAuthorized: []string{"rep@acme.example"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(org)
	t.Cleanup(ts.Close)
	e := newEnv(t, envOptions{})
	creds := e.jwtBearer()
	creds.AssertionAudience = ""
	creds.TokenURL = ts.URL + "/services/oauth2/token"
	src := resttest.BrokerSource(t, upstreams.Config{Name: "salesforce", Kind: upstreams.KindSalesforce, URL: ts.URL, Credentials: creds}, e.brokerLogs)
	ctx, _ := ctxAs(t, rita)
	_, err = src.Token(ctx)
	if err == nil || !strings.Contains(err.Error(), "[invalid_grant: expired authorization code]") || !strings.Contains(err.Error(), "clock") {
		t.Errorf("error %v, want the expired assertion blamed on the clock", err)
	}
}
