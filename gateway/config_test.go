package gateway

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/gateway/config"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// TestExampleConfigIsValid keeps the annotated config.yaml at the root honest.
func TestExampleConfigIsValid(t *testing.T) {
	data, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`).FindAllStringSubmatch(string(data), -1) {
		vars[m[1]] = "example-value-" + m[1]
	}
	if _, err := ParseConfig("config.yaml", data, env(vars)); err != nil {
		t.Fatalf("config.yaml does not validate:\n%v", err)
	}
}

const minimal = `server:
  public_url: https://mcp.example.com
identity:
  issuer: https://login.example.com/
`

func TestConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string // substrings of the error, each with file:line and key path
	}{
		{"typo key", minimal + "  isuer: x\n", []string{"c.yaml:5: identity.isuer: unknown key \"isuer\""}},
		{"missing issuer", "server:\n  public_url: https://mcp.example.com\nidentity:\n  audience: x\n", []string{"c.yaml:3: identity.issuer: required"}},
		{"bad duration", minimal + "  clock_skew: 5 minutes\n", []string{"c.yaml:5: identity.clock_skew: cannot unmarshal"}},
		{"undefined env var", minimal + "admin:\n  token: ${MANDATE_ADMIN_TOKEN_UNSET}\n", []string{"c.yaml:6: admin.token: environment variable MANDATE_ADMIN_TOKEN_UNSET is not set"}},
		{"literal admin token", minimal + "admin:\n  token: s3cr3t-admin-token-in-git\n", []string{"c.yaml:6: admin.token: a secret must not be written in the configuration: use ${ENV_VAR} as the whole value or token_file"}},
		{"literal client secret", minimal + "upstreams:\n  - name: crm\n    kind: mcp\n    url: https://crm.internal/mcp\n    credentials:\n      flow: client_credentials\n      token_url: https://login.example.com/t\n      client_id: m\n      client_secret: hunter2\n",
			[]string{"c.yaml:13: upstreams[crm].credentials.client_secret: a secret must not be written in the configuration", "client_secret_file"}},
		{"secret with text around the variable", minimal + "admin:\n  token: prefix-${MANDATE_ADMIN_TOKEN_SET}\n", []string{"c.yaml:6: admin.token: a secret must not be written"}},
		// A YAML alias to a literal written elsewhere (here client_id) is a
		// literal secret too.
		{"literal secret through a YAML alias", minimal + "upstreams:\n  - name: crm\n    kind: mcp\n    url: https://crm.internal/mcp\n    credentials:\n      flow: client_credentials\n      token_url: https://login.example.com/t\n      client_id: &s hunter2\n      client_secret: *s\n",
			[]string{"c.yaml:13: upstreams[crm].credentials.client_secret: a secret must not be written in the configuration"}},
		{"passthrough flow", minimal + "upstreams:\n  - name: crm\n    kind: mcp\n    url: https://crm.internal/mcp\n    credentials:\n      flow: passthrough\n",
			[]string{"c.yaml:10: upstreams[crm].credentials.flow:", "token passthrough"}},
		{"http issuer", "server:\n  public_url: https://mcp.example.com\nidentity:\n  issuer: http://login.example.com/\n", []string{"c.yaml:4: identity.issuer:", "https"}},
		{"hs256", minimal + "  algorithms: [HS256]\n", []string{"identity.algorithms[0]:", "not allowed"}},
		{"bad session mode", "server:\n  public_url: https://x.example\n  session:\n    mode: sticky\nidentity:\n  issuer: https://i.example/\n", []string{"c.yaml:4: server.session.mode:"}},
		{"duplicate upstream", minimal + "upstreams:\n  - {name: a, kind: mcp, url: 'https://a.example/mcp', credentials: {flow: none}}\n  - {name: a, kind: mcp, url: 'https://b.example/mcp', credentials: {flow: none}}\n",
			[]string{"upstreams[a].name: duplicate"}},
		{"bad upstream name", minimal + "upstreams:\n  - {name: CRM_1, kind: mcp, url: 'https://a.example/mcp', credentials: {flow: none}}\n", []string{"c.yaml:6: upstreams[0].name: must match"}},
		{"bad policy rule", minimal + "policy:\n  rules:\n    - name: r1\n      effect: allow\n      when: 'usr.roles == 1'\n", []string{"policy.rules", "r1"}},
		{"several problems at once", "server:\n  public_url: ftp://x\nidentity:\n  issuer: ''\n  clock_skew: 10m\n",
			[]string{"c.yaml:2: server.public_url:", "c.yaml:4: identity.issuer: required", "c.yaml:5: identity.clock_skew:"}},
		{"salesforce options", minimal + "upstreams:\n  - name: sf\n    kind: salesforce\n    url: https://acme.my.salesforce.com/services?x=1\n    credentials: {flow: none}\n    salesforce:\n      api_version: '62'\n      max_records: 90000\n",
			[]string{"c.yaml:8: upstreams[sf].url: must be the Salesforce instance URL", "c.yaml:11: upstreams[sf].salesforce.api_version: must look like v66.0", "c.yaml:12: upstreams[sf].salesforce.max_records: must be 1..50000"}},
		{"servicenow url with path", minimal + "upstreams:\n  - name: sn\n    kind: servicenow\n    url: https://acme.service-now.com/api/now\n    credentials: {flow: none}\n",
			[]string{"c.yaml:8: upstreams[sn].url: must be the ServiceNow instance URL"}},
		{"bad telemetry", minimal + "telemetry:\n  metrics: statsd\n  sample_ratio: 1.5\n",
			[]string{"c.yaml:6: telemetry.metrics: must be prometheus, otlp, both or none", "c.yaml:7: telemetry.sample_ratio: must be between 0 and 1"}},
		// With "-", crm's tool eu-delete_all (crm-eu-delete_all) would route to
		// upstream crm-eu: a separator must contain a character names cannot.
		{"dash separator", minimal + "catalog:\n  separator: '-'\n", []string{"c.yaml:6: catalog.separator:", "cannot contain", "crm-eu"}},
		{"letter separator", minimal + "catalog:\n  separator: x\n", []string{"c.yaml:6: catalog.separator:", "cannot contain"}},
		{"digit and dash separator", minimal + "catalog:\n  separator: 0-\n", []string{"c.yaml:6: catalog.separator:", "cannot contain"}},
		{"not yaml", "server: [\n", []string{"c.yaml:"}},
		{"empty", "", []string{"empty configuration"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestConfigEnvAndFiles(t *testing.T) {
	dir := t.TempDir()
	y := minimal + "upstreams:\n  - name: crm\n    kind: mcp\n    url: ${CRM_URL}/mcp\n    credentials:\n      flow: token_exchange\n      token_url: https://login.example.com/token\n      client_id: mandate\n      client_secret: ${CRM_SECRET}\n      audience: https://crm.internal\n"
	c, err := ParseConfig("c.yaml", []byte(y), env(map[string]string{"CRM_URL": "https://crm.internal", "CRM_SECRET": "s3cr3t: {not: yaml}"}))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams[0]
	if u.URL != "https://crm.internal/mcp" || u.Credentials.ClientSecret.Reveal() != "s3cr3t: {not: yaml}" {
		t.Fatalf("expansion: url %q", u.URL)
	}
	if s := u.Credentials.ClientSecret.String(); strings.Contains(s, "s3cr3t") {
		t.Fatalf("secret printed: %s", s)
	}
	// Secret files.
	p := filepath.Join(dir, "tok")
	if err := os.WriteFile(p, []byte("file-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := config.ReadSecretFile(p)
	if err != nil || s != "file-secret" {
		t.Fatalf("ReadSecretFile = %q, %v", s, err)
	}
	if _, err := config.ReadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing secret file accepted")
	}
}

// FuzzParseConfig: arbitrary bytes never panic the loader.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte(minimal + "upstreams:\n  - {name: a, kind: mcp, url: 'https://a/mcp', credentials: {flow: none}}\n"))
	f.Add([]byte("server: {public_url: ${X}}\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParseConfig("f.yaml", data, env(map[string]string{"X": "y"}))
	})
}
