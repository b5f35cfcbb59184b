package audit

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
)

// TestNoSecretsInAuditOutput builds records the way the gateway does, from
// inputs that carry secrets in every place one could leak from, and scans
// the written file for each secret.
func TestNoSecretsInAuditOutput(t *testing.T) {
	t.Parallel()
	b64 := base64.RawURLEncoding.EncodeToString
	inboundJWT := b64([]byte(`{"alg":"RS256","kid":"k1"}`)) + "." + b64([]byte(`{"sub":"alice","aud":"https://mcp.example.com/mcp"}`)) + ".c2lnbmF0dXJlLWluYm91bmQ"
	platformJWT := b64([]byte(`{"alg":"ES256"}`)) + "." + b64([]byte(`{"sub":"alice@crm"}`)) + ".c2lnLXBsYXRmb3Jt"
	secrets := map[string]string{
		"inbound token":       inboundJWT,
		"platform token":      platformJWT,
		"opaque access token": "opaque-access-7f3e9b2c",
		"client secret":       "cs-SECRET-4242",
		"client secret type":  "typed-secret-9911",
		"password argument":   "hunter2-correct-horse",
		"nested api key":      "ak-live-5566",
		"array password":      "pw-in-array-8080",
		"cookie":              "cookie-secret-7777",
		"bearer in error":     "opaque-bearer-3131",
		"assertion":           "assertion-blob-1212",
	}

	path := filePath(t)
	l, err := New(Config{Sink: SinkFile, Path: path}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{
		Issuer: "https://idp.example/", Subject: "alice", Email: "alice@example.com", Roles: []string{"sales"},
		Claims: map[string]any{"raw": inboundJWT},
	}.WithRawToken(inboundJWT)

	args := map[string]any{
		"query":    "accounts in EMEA",
		"password": secrets["password argument"],
		"config":   map[string]any{"api_key": secrets["nested api key"], "region": "eu"},
		"logins":   []any{map[string]any{"user": "a", "password": secrets["array password"]}},
		"typed":    secret.String(secrets["client secret type"]),
	}
	errorsSeen := []string{
		fmt.Sprintf("oauth2: cannot fetch token: 400 Bad Request\nResponse: {\"error\":\"invalid_grant\",\"access_token\":\"%s\"}", secrets["opaque access token"]),
		fmt.Sprintf("token endpoint rejected client_secret=%s&grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=%s", secrets["client secret"], inboundJWT),
		fmt.Sprintf("upstream said 401 for Authorization: Bearer %s", secrets["bearer in error"]),
		fmt.Sprintf("upstream returned token %s that expired", platformJWT),
		fmt.Sprintf("request had Cookie: session=%s", secrets["cookie"]),
		fmt.Sprintf(`jwt-bearer failed: {"assertion": "%s"}`, secrets["assertion"]),
	}
	for i, e := range errorsSeen {
		rec := &Record{
			User:       UserFromIdentity(id),
			Method:     "tools/call",
			Upstream:   "crm",
			Tool:       "query",
			Credential: &CredentialRef{Flow: "token_exchange", PlatformSubject: "alice@crm"},
			Outcome:    OutcomeError,
			ErrorClass: "token_exchange_failed",
			Error:      e,
			Arguments:  Redact(args, []string{"password", "config.api_key", "logins.password"}),
			RequestID:  fmt.Sprint(i),
		}
		if err := l.Log(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range secrets {
		if strings.Contains(string(out), s) {
			t.Errorf("audit output contains the %s %q", name, s)
		}
	}
	// The records are still useful: who, what, and that something was redacted.
	for _, want := range []string{`"subject":"alice"`, `"platform_subject":"alice@crm"`, `"query":"accounts in EMEA"`, `"password":"[redacted]"`, "invalid_grant"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("audit output lacks %s", want)
		}
	}
	if res, _ := VerifyFile(path); !res.OK || res.Records != len(errorsSeen) {
		t.Errorf("Verify: %s", res)
	}
}

func TestScrub(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"upstream timeout after 30s", "upstream timeout after 30s"},
		{"Bearer abc.def", "Bearer [redacted]"},
		{"bad token eyJhbGciOi.eyJzdWIiOi.sig-_x rejected", "bad token [redacted] rejected"},
		{`{"refresh_token":"r1","error":"x"}`, `{"refresh_token":[redacted],"error":"x"}`},
		{"password=p&user=u", "password=[redacted]&user=u"},
		{"token expired", "token expired"},
		{"jwt-bearer failed: invalid_grant", "jwt-bearer failed: invalid_grant"},
		{`WWW-Authenticate: Bearer error="invalid_token"`, `WWW-Authenticate: Bearer error="invalid_token"`},
		{"basic dXNlcjpwYXNz", "basic [redacted]"},
	}
	for _, tt := range tests {
		if got := scrub(tt.in); got != tt.want {
			t.Errorf("scrub(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
