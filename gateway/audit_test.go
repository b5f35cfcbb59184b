package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func TestAuditAuthFailuresAndArguments(t *testing.T) {
	env := startMux(t, func(c *Config) {
		c.Upstreams[0].AuditArguments = true
		c.Upstreams[0].AuditRedact = []string{"password"}
	})
	// An authentication failure is audited, without the token.
	bad := env.aliceTk[:len(env.aliceTk)-4] + "AAAA"
	if resp, _ := env.gw.post(t, initBody, bearer(bad)); resp.StatusCode != 401 {
		t.Fatalf("tampered token: %d", resp.StatusCode)
	}
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	if _, err := callJSON(t, alice, "crm_echo", map[string]any{"query": "pipeline", "password": "hunter2-xyz"}); err != nil {
		t.Fatal(err)
	}
	if _, err := callJSON(t, alice, "docs_echo", map[string]any{"note": "not-opted-in-value"}); err != nil {
		t.Fatal(err)
	}
	var sawAuth, sawArgs bool
	for _, r := range env.audit.Lines() {
		switch {
		case r["method"] == "auth":
			sawAuth = r["outcome"] == "unauthenticated" && r["error_class"] == "invalid_token"
		case r["tool"] == "echo" && r["upstream"] == "crm":
			args, _ := r["arguments"].(map[string]any)
			sawArgs = args["query"] == "pipeline" && args["password"] == "[redacted]"
		case r["tool"] == "echo" && r["upstream"] == "docs":
			if _, ok := r["arguments"]; ok {
				t.Errorf("docs did not opt in, yet its arguments were audited: %v", r)
			}
		}
	}
	if !sawAuth || !sawArgs {
		t.Fatalf("auth failure audited: %v; crm arguments audited with redaction: %v\n%s", sawAuth, sawArgs, env.audit.String())
	}
	for _, s := range []string{bad, env.aliceTk, "hunter2-xyz", "not-opted-in-value"} {
		if strings.Contains(env.audit.String(), s) {
			t.Fatalf("audit log contains %q", s[:8])
		}
	}
}

// TestInteractionRequiredIsActionable: a token endpoint answering
// interaction_required (Entra's consent/MFA challenge) reaches the user as a
// tool error that says what to do, not as a generic failure.
func TestInteractionRequiredIsActionable(t *testing.T) {
	var hits int
	tokenEP := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]any{
			"error":             "interaction_required",
			"error_description": "AADSTS50079: Due to a configuration change made by your administrator, you must enroll in multi-factor authentication.",
			"error_codes":       []int{50079},
			"claims":            `{"access_token":{"capolids":{"essential":true,"values":["abc"]}}}`,
		})
	}))
	t.Cleanup(tokenEP.Close)
	env := startMux(t, func(c *Config) { c.Upstreams[0].Credentials.TokenURL = tokenEP.URL })
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	res, err := callJSON(t, alice, "crm_who", map[string]any{})
	if err != nil {
		t.Fatalf("want a tool error, got protocol error %v", err)
	}
	if !res.IsError {
		t.Fatalf("want IsError, got %+v", res)
	}
	text := res.Content[0].(*mcp.TextContent).Text
	if !strings.Contains(strings.ToLower(text), "multi-factor") && !strings.Contains(strings.ToLower(text), "sign in") {
		t.Errorf("tool error is not actionable: %q", text)
	}
	before := hits
	if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if hits == before {
		t.Error("interaction_required was cached; the next call must ask the token endpoint again")
	}
}
