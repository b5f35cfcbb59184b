package credentials

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-gw/mandate/internal/identity"
)

// A platform username is built from strings and integers only. Integers
// render exactly (1234567, not 1.234567e+06, whether decoded as
// json.Number or float64); null, objects, lists, booleans and fractions
// are errors, never "<no value>" or "map[...]".
func TestSubjectTemplateValueTypes(t *testing.T) {
	t.Parallel()
	id := &identity.Identity{
		Issuer: "https://idp/", Subject: "00u1", Roles: []string{"a", "b"}, EmailTrusted: true,
		Claims: map[string]any{
			"n":     json.Number("1234567"),
			"f":     float64(1234567),
			"neg":   json.Number("-42"),
			"big":   json.Number("12345678901234567890123"),
			"big2":  json.Number("12345678901234567891"),
			"huge":  float64(1e20),
			"frac":  json.Number("1.5"),
			"expo":  json.Number("1e3"),
			"ffrac": 1.5,
			"i":     7,
			"null":  nil,
			"obj":   map[string]any{"a": "b"},
			"list":  []any{"a"},
			"bool":  true,
			"s":     "Alice",
		},
	}
	for _, tc := range []struct{ tmpl, want, wantErr string }{
		{"{{ .Claims.n }}", "1234567", ""},
		{"{{ .Claims.f }}", "1234567", ""},
		{"{{ .Claims.neg }}", "-42", ""},
		{"{{ .Claims.big }}", "12345678901234567890123", ""},
		{"{{ .Claims.big2 }}", "12345678901234567891", ""},
		{"{{ .Claims.i }}", "7", ""},
		{"u{{ .Claims.n }}@acme.com", "u1234567@acme.com", ""},
		{"{{ .Claims.n | lower }}", "1234567", ""},
		{`{{ printf "%s-%s" .Claims.s .Claims.n }}`, "Alice-1234567", ""},
		{`{{ printf "%08d" .Claims.i }}`, "00000007", ""},
		{`{{ default "x" .Claims.null }}`, "x", ""},
		{`{{ default "x" .Claims.n }}`, "1234567", ""},
		{`{{ index .Claims "n" }}`, "1234567", ""},
		{"{{ .Claims.huge }}", "", "not an exact integer"},
		{"{{ .Claims.frac }}", "", "not an integer"},
		{"{{ .Claims.expo }}", "", "not an integer"},
		{"{{ .Claims.ffrac }}", "", "not an integer"},
		{"{{ .Claims.null }}", "", "null"},
		{`{{ index .Claims "null" }}`, "", "null"},
		{"{{ .Claims.obj }}", "", "object"},
		{"{{ .Claims.list }}", "", "list"},
		{"{{ .Claims.bool }}", "", "boolean"},
		{"{{ .Roles }}", "", "list"},
		{`{{ printf "%v" .Claims.obj }}`, "", "object"},
		{`{{ print .Claims.null }}`, "", "null"},
		{`{{ default "x" .Claims.obj }}`, "", "object"},
		{`{{ urlquery .Claims.list }}`, "", "list"},
		{`{{ .Claims.frac | lower }}`, "", "not an integer"},
	} {
		m, err := newSubjectMapper(tc.tmpl, "", nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		got, err := m.render(id)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: got %q, %v; want an error containing %q", tc.tmpl, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
}

// nOAuth: a template that reads the email (or another email-like claim)
// maps a user to a platform account only when the IdP says the email is
// verified. The refusal is a credentials *Error that tells the user and the
// administrators what to do, and nothing reaches the token endpoint.
func TestSubjectTemplateNeedsVerifiedEmail(t *testing.T) {
	t.Parallel()
	srv := newJWTBearerServer(t, &testRSAKey(t).PublicKey, jose.RS256, "ck", "https://login.salesforce.com")
	srv.users["victim@acme.com"] = true
	srv.users["E42"] = true
	b := NewBroker(BrokerOptions{})
	id := func(trusted bool) identity.Identity {
		return identity.Identity{
			Issuer: "https://idp/", Subject: "attacker-sub", Email: "victim@acme.com", EmailTrusted: trusted, Expiry: time.Now().Add(time.Hour),
			Claims: map[string]any{
				"email": "victim@acme.com", "upn": "victim@acme.com", "preferred_username": "victim@acme.com",
				"employee_id": "E42", "ext": map[string]any{"mail": "victim@acme.com"},
			},
		}
	}
	for i, tc := range []struct {
		tmpl string
		safe bool // reads no email-like value
	}{
		{"{{ .Email }}", false},
		{"{{ .Email | lower }}", false},
		{"{{ .Claims.upn }}", false},
		{"{{ .Claims.preferred_username }}", false},
		{`{{ index .Claims "email" }}`, false},
		{"{{ .Claims.ext.mail }}", false},
		{`{{ with .Claims }}{{ .email }}{{ end }}`, false},
		{`{{ range $k, $v := .Claims }}{{ if eq $k "upn" }}{{ $v }}{{ end }}{{ end }}`, false},
		{`{{ $c := .Claims }}{{ index $c "upn" }}`, false},
		{`{{ with $.Claims.ext }}{{ index . "mail" }}{{ end }}`, false},
		{"{{ .Claims.employee_id }}", true},
		{`{{ index .Claims "employee_id" }}`, true},
	} {
		src := mustSource(t, b, "salesforce"+string(rune('a'+i)), Config{
			Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "ck", PrivateKeyFile: writeRSAKey(t, false),
			AssertionAudience: "https://login.salesforce.com", Subject: tc.tmpl,
		})
		before := srv.calls.Load()
		r, err := src.Token(withIdentity(context.Background(), id(false), "raw"))
		if tc.safe {
			if err != nil || r.Token.PlatformSubject != "E42" {
				t.Errorf("%s, unverified email: %+v %v; want E42", tc.tmpl, r, err)
			}
			continue
		}
		var ce *Error
		if err == nil || !errors.As(err, &ce) || !errors.Is(err, ErrUnverifiedEmail) {
			t.Errorf("%s, unverified email: %+v, %v; want ErrUnverifiedEmail", tc.tmpl, r.Token, err)
			continue
		}
		for _, want := range []string{"email_verified", "identity.trust_unverified_email", `"salesforce`} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: message lacks %q: %s", tc.tmpl, want, err)
			}
		}
		if n := srv.calls.Load() - before; n != 0 {
			t.Errorf("%s: the token endpoint was called %d times for an unverified email", tc.tmpl, n)
		}
		// Verified (or trusted by the operator): it works.
		if r, err := src.Token(withIdentity(context.Background(), id(true), "raw2")); err != nil || r.Token.PlatformSubject != "victim@acme.com" {
			t.Errorf("%s, verified email: %+v %v", tc.tmpl, r, err)
		}
	}
}

// EmailRefs (what `mandate validate` warns about) names the email-like
// reads of a template.
func TestEmailRefs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		tmpl string
		want string
	}{
		{"", ""},
		{"{{ .Subject }}", ""},
		{"{{ .Claims.employee_id }}", ""},
		{"{{ .Email | lower }}", ".Email"},
		{"{{ .Claims.upn }}@{{ .Claims.tenant }}", ".Claims.upn"},
		{`{{ index .Claims "preferred_username" }}`, `index .Claims "preferred_username"`},
		{`{{ with .Claims }}{{ .mail }}{{ end }}`, ".mail"},
		{`{{ $.Claims.email }}`, "$.Claims.email"},
	} {
		c := Config{Flow: FlowJWTBearer, Subject: tc.tmpl}
		if got := strings.Join(c.EmailRefs(), ", "); got != tc.want {
			t.Errorf("EmailRefs(%q) = %q, want %q", tc.tmpl, got, tc.want)
		}
	}
}
