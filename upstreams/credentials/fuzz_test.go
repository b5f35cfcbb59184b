package credentials

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/mandate-gw/mandate/internal/identity"
)

// Seeds live in testdata/fuzz/<FuzzName>/.

func FuzzParseErrorResponse(f *testing.F) {
	f.Add(400, "application/json", []byte(entraInteractionRequired))
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		e := parseErrorResponse(status, contentType, "", body)
		e.Upstream, e.Flow = "crm", FlowEntraOBO
		msg := e.Error()
		for _, r := range msg {
			if unicode.IsControl(r) {
				t.Fatalf("control character %U in message %q", r, msg)
			}
		}
		if len(e.Description) > 310 || len(e.Code) > 70 {
			t.Fatalf("unbounded fields: code %d bytes, description %d bytes", len(e.Code), len(e.Description))
		}
	})
}

func FuzzParseTokenResponse(f *testing.F) {
	f.Add([]byte(`{"access_token":"a","token_type":"Bearer","expires_in":60}`))
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := parseTokenResponse(body, now)
		if err != nil {
			return
		}
		if tr.AccessToken == "" || !validTokenChars(tr.AccessToken) {
			t.Fatalf("accepted access token %q", tr.AccessToken)
		}
		if _, ok := tr.Extra["refresh_token"]; ok {
			t.Fatal("refresh_token kept")
		}
		if !tr.Expiry.IsZero() && tr.Expiry.Before(now) {
			t.Fatalf("expiry %v before now", tr.Expiry)
		}
	})
}

func FuzzSubjectTemplate(f *testing.F) {
	f.Add("{{ .Email | lower }}", "alice@example.com")
	f.Add("{{ .Claims.n }}-{{ .Claims.big }}", "x")
	f.Add(`{{ range $k, $v := .Claims }}{{ $v }}{{ end }}`, "x")
	f.Add(`{{ printf "%v" .Claims.obj }}`, "x")
	const marker = "zq9mark"
	f.Fuzz(func(t *testing.T, tmpl, claim string) {
		id := &identity.Identity{Issuer: "i", Subject: claim, Email: claim, EmailTrusted: true, Claims: map[string]any{"x": claim}}
		m, err := newSubjectMapper(tmpl, "", nil)
		if err == nil {
			if got, err := m.render(id); err == nil {
				if checkUsername(got) != nil {
					t.Fatalf("render returned an invalid username %q", got)
				}
			}
			// nOAuth: an identity whose email is not verified never gets a
			// username built from an email-like value.
			untrusted := &identity.Identity{Issuer: "i", Subject: "s", Email: marker, Claims: map[string]any{
				"x": claim, "email": marker, "upn": marker, "preferred_username": marker,
				"ext": map[string]any{"mail": marker, "list": []any{map[string]any{"unique_name": marker}}},
			}}
			if got, err := m.render(untrusted); err == nil && strings.Contains(strings.ToLower(got), marker) && !strings.Contains(strings.ToLower(tmpl+claim), marker) {
				t.Fatalf("template %q rendered an unverified email-like value: %q", tmpl, got)
			}
			// Only strings and integers are printed: never a placeholder
			// for null, an object or a list, never a float's exponent.
			typed := &identity.Identity{Issuer: "i", Subject: "s", EmailTrusted: true, Claims: map[string]any{
				"x": claim, "n": json.Number("1234567"), "big": json.Number("12345678901234567890"), "f": 1234567.0,
				"null": nil, "obj": map[string]any{"a": "b"}, "list": []any{"a", nil}, "b": true, "frac": json.Number("1.5"),
			}}
			if got, err := m.render(typed); err == nil {
				for _, bad := range []string{"<no value>", "<nil>", "map[", "e+", "%!"} {
					if strings.Contains(got, bad) && !strings.Contains(tmpl+claim, bad) {
						t.Fatalf("template %q rendered %q (contains %q)", tmpl, got, bad)
					}
				}
			}
		}
		// A claim is data: printing it yields it verbatim or a refusal,
		// never an evaluation of template syntax inside it.
		m, _ = newSubjectMapper("{{ .Claims.x }}", "", nil)
		got, err := m.render(id)
		if err == nil && got != claim {
			t.Fatalf("claim %q rendered as %q", claim, got)
		}
		if err != nil && checkUsername(claim) == nil {
			t.Fatalf("valid claim %q refused: %v", claim, err)
		}
		if strings.ContainsAny(got, "\r\n") {
			t.Fatal("line break in username")
		}
	})
}

func FuzzSubjectMap(f *testing.F) {
	f.Add([]byte("alice: alice@acme.com\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseSubjectMap(data)
		if err != nil {
			return
		}
		for k, v := range m {
			if checkUsername(v) != nil {
				t.Fatalf("entry %q -> %q accepted", k, v)
			}
		}
	})
}
