package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `mandate validate` warns when users are identified by email-like claims
// (nOAuth), and louder when identity.trust_unverified_email accepts them
// unverified.
func TestValidateWarnsAboutEmailIdentity(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "sf.pem")
	if err := os.WriteFile(key, []byte("not parsed by validate"), 0o600); err != nil {
		t.Fatal(err)
	}
	sf := func(subject string) string {
		return "upstreams:\n  - name: sf\n    kind: salesforce\n    url: https://acme.my.salesforce.com\n    credentials:\n      flow: jwt_bearer\n" +
			"      token_url: https://login.salesforce.com/services/oauth2/token\n      client_id: ck\n      private_key_file: " + key + "\n" +
			"      subject: '" + subject + "'\n"
	}
	for _, tc := range []struct {
		name string
		yaml string
		want []string // substrings, one warning each; none when empty
	}{
		{"immutable ids", minimal + sf("{{ .Subject }}"), nil},
		{"email template", minimal + sf("{{ .Email | lower }}"),
			[]string{"upstreams[sf].credentials.subject reads .Email", "email_verified: true are refused", "immutable"}},
		{"upn template, trusted", minimal + "  trust_unverified_email: true\n" + sf("{{ .Claims.upn }}"),
			[]string{"upstreams[sf].credentials.subject reads .Claims.upn", "identity.trust_unverified_email", "act as that user on sf"}},
		{"email subject claim", minimal + "  claims:\n    subject: email\n",
			[]string{`identity.claims.subject: "email" is an email-like claim`, "401"}},
		{"preferred_username subject, trusted", minimal + "  trust_unverified_email: true\n  claims:\n    subject: preferred_username\n",
			[]string{`identity.claims.subject: "preferred_username"`, "becomes that user"}},
		{"trust without use", minimal + "  trust_unverified_email: true\n",
			[]string{"identity.trust_unverified_email: set, but"}},
	} {
		cfg, err := ParseConfig("c.yaml", []byte(tc.yaml), env(nil))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		got := strings.Join(cfg.Warnings(), "\n")
		if len(tc.want) == 0 && got != "" {
			t.Errorf("%s: unexpected warnings:\n%s", tc.name, got)
		}
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: warnings lack %q:\n%s", tc.name, w, got)
			}
		}
	}
}
