package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validate prints warnings on stderr, the verdict on stdout, and exits 0.
func TestValidatePrintsWarnings(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.yaml")
	cfg := "server:\n  public_url: https://mcp.example.com\nidentity:\n  issuer: https://login.example.com/\n  claims:\n    subject: email\n"
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"validate", "--config", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	if stdout.String() != path+": ok\n" {
		t.Errorf("stdout %q", stdout.String())
	}
	if want := path + `: warning: identity.claims.subject: "email" is an email-like claim`; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want a line starting %q", stderr.String(), want)
	}
}

// explain decodes the claims file as the gateway decodes a token: a large
// integer claim keeps its exact value in policy.
func TestExplainExactIntegerClaims(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	cfg := "server:\n  public_url: https://mcp.example.com\nidentity:\n  issuer: https://login.example.com/\n" +
		"upstreams:\n  - {name: crm, kind: mcp, url: 'https://crm.example/mcp', credentials: {flow: none}}\n" +
		"policy:\n  rules:\n    - name: employee\n      effect: allow\n      when: 'string(user.claims.employee_number) == \"12345678901234567\"'\n"
	claims := filepath.Join(dir, "claims.json")
	for name, data := range map[string]string{path: cfg, claims: `{"iss":"https://login.example.com/","sub":"alice","employee_number":12345678901234567}`} {
		if err := os.WriteFile(name, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stdout, stderr bytes.Buffer
	code := Main(context.Background(), []string{"explain", "--config", path, "--user-claims", claims, "--tool", "crm_get"}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "ALLOW by employee") {
		t.Errorf("exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
}

// `mandate demo` (the demo is cmd/mandate-demo now) exits 2 with one line
// naming the new command, and runs nothing.
func TestDemoPointsToItsBinary(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"demo"}, {"demo", "--tour"}} {
		var stdout, stderr bytes.Buffer
		code := Main(context.Background(), args, &stdout, &stderr)
		if code != 2 || stdout.Len() != 0 || stderr.String() != demoMoved+"\n" || !strings.Contains(stderr.String(), "go run ./cmd/mandate-demo") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr bytes.Buffer
	if code := Main(context.Background(), []string{"help"}, &stdout, &stderr); code != 0 || strings.Contains(stdout.String(), "mandate demo") || !strings.Contains(stdout.String(), "go run ./cmd/mandate-demo") {
		t.Errorf("help: exit %d, usage lists `mandate demo` or lacks the pointer:\n%s", code, stdout.String())
	}
}
