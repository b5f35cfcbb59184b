package credentials

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	key := writeRSAKey(t, false)
	secretFile := writeFile(t, "secret", []byte("s3cret\n"))
	const p = "upstreams[crm].credentials"
	ok := func(c Config) Config { return c }
	for _, tc := range []struct {
		name string
		cfg  Config
		want []string // substrings; nil = valid
	}{
		{"token exchange", ok(Config{Flow: "token_exchange", TokenURL: "https://idp/token", ClientID: "m", ClientSecret: "x", Audience: "https://crm"}), nil},
		{"secret file", Config{Flow: "client_credentials", TokenURL: "https://idp/token", ClientID: "m", ClientSecretFile: secretFile}, nil},
		{"entra tenant", Config{Flow: "entra_obo", Tenant: "contoso.onmicrosoft.com", ClientID: "m", ClientSecret: "x", Scopes: []string{"api://crm/.default"}}, nil},
		{"salesforce", Config{Flow: "jwt_bearer", TokenURL: "https://login.salesforce.com/services/oauth2/token", ClientID: "ck", PrivateKeyFile: key, AssertionAudience: "https://login.salesforce.com", Subject: "{{ .Email }}", AssertionLifetime: 3 * time.Minute}, nil},
		{"none", Config{Flow: "none"}, nil},
		{"loopback http", Config{Flow: "client_credentials", TokenURL: "http://127.0.0.1:9/token", ClientID: "m", ClientSecret: "x"}, nil},

		{"passthrough", Config{Flow: "passthrough"}, []string{p + ".flow", "MCP authorization spec forbids", "confused deputy"}},
		{"forward", Config{Flow: "forward"}, []string{"confused deputy"}},
		{"user_token", Config{Flow: "user_token"}, []string{"confused deputy"}},
		{"password", Config{Flow: "password"}, []string{"never handles user passwords"}},
		{"empty flow", Config{}, []string{p + ".flow: required"}},
		{"unknown flow", Config{Flow: "saml"}, []string{`unknown flow "saml"`}},
		{"missing url and client", Config{Flow: "token_exchange", ClientSecret: "x"}, []string{p + ".token_url: required", p + ".client_id: required"}},
		{"no client auth", Config{Flow: "token_exchange", TokenURL: "https://idp/t", ClientID: "m"}, []string{p + ".client_secret: flow token_exchange needs client authentication"}},
		{"plain http", Config{Flow: "client_credentials", TokenURL: "http://idp.example.com/t", ClientID: "m", ClientSecret: "x"}, []string{"use https"}},
		{"both secrets", Config{Flow: "client_credentials", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", ClientSecretFile: secretFile}, []string{"not both"}},
		{"unexpanded env", Config{Flow: "client_credentials", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "${CRM_SECRET}"}, []string{"not expanded"}},
		{"missing files", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: "/nonexistent/key.pem", SubjectMapFile: "/nonexistent/map.yaml"}, []string{p + ".private_key_file:", p + ".subject_map_file:"}},
		{"jwt bearer without key", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m"}, []string{p + ".private_key_file: required"}},
		{"bad template", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: key, Subject: "{{ .Email "}, []string{p + ".subject: template"}},
		{"template field typo", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: key, Subject: "{{ .Emial | lower }}"},
			[]string{p + `.subject: template: can't evaluate field Emial in type the identity`}},
		{"template with claims and functions", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: key,
			Subject: `{{ .Claims.employee_id | default (.Email | split "@" | first) }}`}, nil},
		{"scopes in assertion on token_exchange", Config{Flow: "token_exchange", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", Scopes: []string{"a"}, ScopesInAssertion: true},
			[]string{p + ".scopes_in_assertion: applies only to flow jwt_bearer"}},
		{"scopes in assertion without scopes", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: key, ScopesInAssertion: true},
			[]string{p + ".scopes_in_assertion: needs scopes"}},
		{"subject on token_exchange", Config{Flow: "token_exchange", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", Subject: "{{ .Email }}"}, []string{p + ".subject: applies only to flow jwt_bearer"}},
		{"obo without scopes", Config{Flow: "entra_obo", TokenURL: "https://login/t", ClientID: "m", ClientSecret: "x"}, []string{p + ".scopes: required"}},
		{"tenant and url", Config{Flow: "entra_obo", Tenant: "t", TokenURL: "https://login/t", ClientID: "m", ClientSecret: "x", Scopes: []string{"a"}}, []string{"not both"}},
		{"bad alg", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: key, Algorithm: "HS256"}, []string{p + ".algorithm: unsupported"}},
		{"long assertion", Config{Flow: "jwt_bearer", TokenURL: "https://idp/t", ClientID: "m", PrivateKeyFile: key, AssertionLifetime: 2 * time.Hour}, []string{p + ".assertion_lifetime"}},
		{"pkjwt without key", Config{Flow: "client_credentials", TokenURL: "https://idp/t", ClientID: "m", ClientAuth: "private_key_jwt"}, []string{"private_key_jwt needs private_key_file"}},
		{"unknown client_auth", Config{Flow: "client_credentials", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", ClientAuth: "tls"}, []string{"unknown method"}},
		{"none with extras", Config{Flow: "none", TokenURL: "https://x", Scopes: []string{"a"}}, []string{p + ".token_url: has no effect", p + ".scopes: has no effect"}},
		{"bad scope", Config{Flow: "client_credentials", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", Scopes: []string{"a b"}}, []string{p + ".scopes[0]"}},
		{"negative durations", Config{Flow: "client_credentials", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", CacheSkew: -1, Timeout: -1}, []string{p + ".cache_skew", p + ".timeout"}},
		{"authorization code", Config{Flow: "authorization_code", AuthorizationURL: "https://tracker/authorize", TokenURL: "https://tracker/token", ClientID: "m", ClientSecret: "x", RevocationURL: "https://tracker/revoke", Scopes: []string{"issues", "offline_access"}}, nil},
		{"authorization code public client", Config{Flow: "authorization_code", AuthorizationURL: "https://tracker/authorize", TokenURL: "https://tracker/token", ClientID: "m"}, nil},
		{"authorization code discover", Config{Flow: "authorization_code", Discover: true, Platform: "mcp", UpstreamURL: "https://tracker/mcp"}, nil},
		{"authorization code without endpoints", Config{Flow: "authorization_code", ClientSecret: "x"},
			[]string{p + ".authorization_url: required for flow authorization_code (or discover", p + ".token_url: required", p + ".client_id: required"}},
		{"authorization code plain http", Config{Flow: "authorization_code", AuthorizationURL: "http://tracker.example/authorize", TokenURL: "https://tracker/token", ClientID: "m", RevocationURL: "http://tracker.example/revoke"},
			[]string{p + ".authorization_url: ", p + ".revocation_url: ", "use https"}},
		{"discover on rest", Config{Flow: "authorization_code", Discover: true, Platform: "rest", TokenURL: "https://x/t", AuthorizationURL: "https://x/a"},
			[]string{p + ".discover: applies only to kind mcp", p + ".token_url: discover finds", p + ".authorization_url: discover finds"}},
		{"discover secret without client", Config{Flow: "authorization_code", Discover: true, ClientSecret: "x"}, []string{p + ".client_id: required with a client secret"}},
		{"discover on token_exchange", Config{Flow: "token_exchange", TokenURL: "https://idp/t", ClientID: "m", ClientSecret: "x", Discover: true, AuthorizationURL: "https://x/a"},
			[]string{p + ".discover: applies only to flow authorization_code", p + ".authorization_url: applies only to flow authorization_code"}},
		{"actor on obo", Config{Flow: "entra_obo", TokenURL: "https://l/t", ClientID: "m", ClientSecret: "x", Scopes: []string{"a"}, ActorToken: true}, []string{p + ".actor_token: applies only"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate(p)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestValidateNeverPrintsSecret(t *testing.T) {
	t.Parallel()
	c := Config{Flow: "client_credentials", TokenURL: "http://idp.example.com/t", ClientID: "m", ClientSecret: "hunter2-very-secret", ClientSecretFile: "/nope"}
	if err := c.Validate("x"); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("err = %v", err)
	}
}

func TestDecodeYAML(t *testing.T) {
	t.Parallel()
	src := `
flow: jwt_bearer
token_url: https://login.salesforce.com/services/oauth2/token
client_id: ck
private_key_file: /run/secrets/sf.pem
assertion_audience: https://login.salesforce.com
assertion_lifetime: 3m
subject: "{{ .Email }}"
cache_skew: 45s
timeout: 5s
scopes: [api, refresh_token]
resource: [https://a]
`
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	if c.AssertionLifetime != 3*time.Minute || c.CacheSkew != 45*time.Second || c.Timeout != 5*time.Second || c.Subject != "{{ .Email }}" || len(c.Scopes) != 2 {
		t.Errorf("decoded %+v", c)
	}
	for _, tc := range []struct{ doc, want string }{
		{"flow: none\ncache_skew: 30x\n", "line 2"},
		{"flow: none\ntimeout: 30\n", "line 2"}, // a bare number is not a duration
		{"flow: none\ntoken_uri: x\n", "line 2: field token_uri not found"},
	} {
		var c Config
		dec := yaml.NewDecoder(bytes.NewReader([]byte(tc.doc)))
		dec.KnownFields(true)
		err := dec.Decode(&c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.doc, err, tc.want)
		}
	}
	// The secret decodes but never prints.
	var s Config
	if err := yaml.Unmarshal([]byte("client_secret: topsecret\n"), &s); err != nil || s.ClientSecret.Reveal() != "topsecret" {
		t.Fatalf("secret: %v", err)
	}
	out, _ := yaml.Marshal(s)
	if strings.Contains(string(out), "topsecret") {
		t.Error("secret marshalled")
	}
}

// Every key set with flow none is reported, booleans included
// (scopes_in_assertion was once accepted silently); an empty list is not set.
func TestFlowNoneRefusesEveryKey(t *testing.T) {
	t.Parallel()
	err := (&Config{Flow: "none", ScopesInAssertion: true, ActorToken: true}).Validate("p")
	for _, k := range []string{"p.scopes_in_assertion: has no effect", "p.actor_token: has no effect"} {
		if err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("err = %v, want %q", err, k)
		}
	}
	if err := (&Config{Flow: "none", Scopes: []string{}, Resource: []string{}}).Validate("p"); err != nil {
		t.Errorf("empty lists: %v", err)
	}
}
