package authn

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// FuzzBearerToken: any Authorization header value gives a token or a
// well-formed *Error, never a panic, and the challenge has no line breaks.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"", "Bearer ", "Bearer a.b.c", "bearer   x.y.z  ", "Basic YTpi", "Bearer " + strings.Repeat("a", 100), "Bearer a.b", "Bearer \r\nX-Injected: 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		tok, err := BearerToken([]string{h})
		if err != nil {
			if tok != "" {
				t.Fatal("token with error")
			}
			ch := err.Challenge("https://m.example/.well-known/oauth-protected-resource/mcp", []string{"mcp"})
			if strings.ContainsAny(ch, "\r\n") {
				t.Fatalf("challenge with line break: %q", ch)
			}
			return
		}
		if strings.Count(tok, ".") != 2 || len(tok) > MaxTokenBytes {
			t.Fatalf("accepted %q", tok)
		}
	})
}

// FuzzVerifyAndMapClaims: arbitrary token strings through the full
// verifier (no keys load, so all fail) and arbitrary claim JSON through the
// claim mapping never panic.
func FuzzVerifyAndMapClaims(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.", `{"sub":"a","roles":["x"],"realm":{"roles":"y"},"scope":"a b"}`)
	f.Add("a.b.c", `{"sub":1,"roles":{"a":true},"scp":["x",2]}`)
	f.Add("..", `[]`)
	f.Add("a.b.c", `{"sub":"a","email":"b@example.com","email_verified":"true","n":1234567,"big":12345678901234567890}`)
	f.Add("a.b.c", `{"sub":"a","email":"b@example.com","email_verified":false,"x":null}`)
	cfg := Config{Issuer: "https://i.example/", Audience: "https://m.example/mcp"}.WithDefaults("")
	cfg.Claims.Roles = "realm.roles"
	a := New(cfg, Options{})
	ecfg := cfg
	ecfg.Claims.Subject = "email"
	email := New(ecfg, Options{})
	f.Fuzz(func(t *testing.T, tok, claimsJSON string) {
		_, _ = a.Authenticate(context.Background(), []string{"Bearer " + tok})
		claims, err := DecodeClaims([]byte(claimsJSON))
		if err != nil {
			return
		}
		id, e := a.cfg.IdentityFromClaims(claims)
		if e == nil && id.Subject == "" {
			t.Fatal("identity without subject")
		}
		_ = scopes(claims)
		// Numbers stay exact: never a float64.
		for _, v := range claims {
			if _, ok := v.(float64); ok {
				t.Fatalf("claim decoded as float64: %v", v)
			}
		}
		// An email-like subject is accepted only when verified.
		if e != nil && (e.Status != http.StatusUnauthorized || e.Code != "invalid_token") {
			t.Fatalf("mapping refused with %d %s", e.Status, e.Code)
		}
		id, e = email.cfg.IdentityFromClaims(claims)
		if e == nil && !emailVerified(claims) {
			t.Fatalf("email subject %q accepted without email_verified", id.Subject)
		}
	})
}
