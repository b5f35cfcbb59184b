package clients

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/secret"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	const iat = "a-very-long-initial-access-token"
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want []string // "" = valid
	}{
		{"registration defaults", RegistrationConfig{}.Validate("authorization_server.registration"), nil},
		{"registration token", RegistrationConfig{Policy: PolicyToken, InitialAccessToken: iat}.Validate("authorization_server.registration"), nil},
		{"registration bad policy", RegistrationConfig{Policy: "closed"}.Validate("authorization_server.registration"),
			[]string{`authorization_server.registration.policy: must be open, token or off, got "closed"`}},
		{"registration token without token", RegistrationConfig{Policy: PolicyToken}.Validate("authorization_server.registration"),
			[]string{"authorization_server.registration.initial_access_token: required"}},
		{"registration short token", RegistrationConfig{Policy: PolicyToken, InitialAccessToken: "short"}.Validate("r"),
			[]string{"r.initial_access_token: must be at least 16 characters"}},
		{"registration unexpanded", RegistrationConfig{Policy: PolicyToken, InitialAccessToken: "${IAT}"}.Validate("r"),
			[]string{"r.initial_access_token: environment variable reference was not expanded"}},
		{"registration token with open", RegistrationConfig{Policy: PolicyOpen, InitialAccessToken: iat, UnusedTTL: -time.Hour}.Validate("r"),
			[]string{"r.initial_access_token: has no effect unless policy is token", "r.unused_ttl: must not be negative"}},
		{"metadata documents", MetadataDocumentsConfig{AllowedHosts: []string{"apps.example.com", "*.example.org"}}.Validate("m"), nil},
		{"metadata documents bad hosts", MetadataDocumentsConfig{AllowedHosts: []string{"https://apps.example.com", "a.example.com:443", "*"}}.Validate("authorization_server.metadata_documents"),
			[]string{`authorization_server.metadata_documents.allowed_hosts[0]: "https://apps.example.com" is not a host name`, "allowed_hosts[1]", "allowed_hosts[2]"}},
		{"client public", ClientConfig{ClientID: "cursor", RedirectURIs: []string{"cursor://anysphere.cursor-retrieval/oauth/callback"}}.Validate("c"), nil},
		{"client secret file", ClientConfig{ClientID: "app", RedirectURIs: []string{"https://app.example.com/cb"}, ClientSecretFile: secretFile}.Validate("c"), nil},
		{"client bad", ClientConfig{ClientSecret: "x", ClientSecretFile: filepath.Join(dir, "missing"), RedirectURIs: []string{"http://app.example.com/cb", "javascript:alert(1)"}}.Validate("authorization_server.clients[0]"),
			[]string{"authorization_server.clients[0].client_id: required", "clients[0].redirect_uris[0]: \"http://app.example.com/cb\": http is allowed only for loopback",
				"redirect_uris[1]", "client_secret_file: set client_secret or client_secret_file, not both", "no such file"}},
		{"client no redirect", ClientConfig{ClientID: "a b"}.Validate("c"), []string{`c.client_id: "a b" contains white space`, "c.redirect_uris: required"}},
		{"clients duplicate", ValidateClients("authorization_server.clients", []ClientConfig{
			{ClientID: "cursor", RedirectURIs: []string{"https://a.example/cb"}},
			{ClientID: "cursor", RedirectURIs: []string{"https://a.example/cb"}},
			{ClientID: "", RedirectURIs: []string{"https://a.example/cb"}},
		}), []string{`authorization_server.clients[cursor].client_id: "cursor" is listed twice`, "authorization_server.clients[2].client_id: required"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.want) == 0 {
				if tc.err != nil {
					t.Fatalf("want valid, got %v", tc.err)
				}
				return
			}
			if tc.err == nil {
				t.Fatalf("want %q, got valid", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(tc.err.Error(), w) {
					t.Errorf("error %q lacks %q", tc.err, w)
				}
			}
		})
	}
}

// TestConfigNeverPrintsSecrets: validation messages name the key, never the
// value.
func TestConfigNeverPrintsSecrets(t *testing.T) {
	t.Parallel()
	const s = "hunter2hunter2"
	errs := []error{
		RegistrationConfig{Policy: PolicyToken, InitialAccessToken: secret.String(s[:10])}.Validate("r"),
		RegistrationConfig{Policy: PolicyOff, InitialAccessToken: secret.String(s)}.Validate("r"),
		ClientConfig{ClientID: "x", ClientSecret: secret.String(s), ClientSecretFile: "/nonexistent"}.Validate("c"),
	}
	for _, err := range errs {
		if err == nil {
			t.Fatal("want an error")
		}
		if strings.Contains(err.Error(), s[:10]) {
			t.Errorf("secret printed: %v", err)
		}
	}
}

func TestWithDefaults(t *testing.T) {
	t.Parallel()
	r := RegistrationConfig{}.WithDefaults()
	if r.Policy != PolicyOpen || r.UnusedTTL != 720*time.Hour {
		t.Fatalf("registration defaults: %+v", r)
	}
	if c := (ClientConfig{ClientID: "cursor"}).WithDefaults(); c.ClientName != "cursor" {
		t.Fatalf("client_name default: %q", c.ClientName)
	}
	if m := (MetadataDocumentsConfig{AllowedHosts: []string{"Apps.Example.COM"}}).WithDefaults(); m.AllowedHosts[0] != "apps.example.com" {
		t.Fatalf("allowed_hosts: %v", m.AllowedHosts)
	}
}

// TestNewRefusesBadConfig: New validates what it is given.
func TestNewRefusesBadConfig(t *testing.T) {
	t.Parallel()
	if _, err := New(Options{Registration: RegistrationConfig{Policy: "sometimes"}}); err == nil || !strings.Contains(err.Error(), "registration.policy") {
		t.Fatalf("bad policy: %v", err)
	}
	if _, err := New(Options{}); err == nil || !strings.Contains(err.Error(), "needs a store") {
		t.Fatalf("open registration without a store: %v", err)
	}
}
