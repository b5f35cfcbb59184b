package credentials

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-gw/mandate/internal/identity"
)

func TestSubjectTemplate(t *testing.T) {
	t.Parallel()
	id := &identity.Identity{
		Issuer: "https://idp/", Subject: "00u1", Email: "Alice@Example.com", EmailTrusted: true, Roles: []string{"sales"},
		Claims: map[string]any{
			"employee_id": "E42",
			"nested":      map[string]any{"sf_user": "alice.sf"},
			"evil":        "{{ .Subject }}",
			"crlf":        "alice\r\nX-Injected: 1",
			"num":         float64(7),
		},
	}
	for _, tc := range []struct {
		tmpl, want, wantErr string
	}{
		{"", "00u1", ""},
		{"{{ .Email }}", "Alice@Example.com", ""},
		{"{{ .Email | lower }}", "alice@example.com", ""},
		{`{{ .Email | lower | trimSuffix "@example.com" }}@acme.com`, "alice@acme.com", ""},
		{`{{ .Email | split "@" | first }}`, "Alice", ""},
		{"{{ .Claims.employee_id }}", "E42", ""},
		{"{{ .Claims.nested.sf_user }}", "alice.sf", ""},
		{`{{ index .Claims "employee_id" }}`, "E42", ""},
		{`{{ default "x" .Claims.num }}`, "7", ""},
		// Injection: a claim holding template syntax is data, not code.
		{"{{ .Claims.evil }}", "{{ .Subject }}", ""},
		// CRLF from a claim cannot become a header or a second line.
		{"{{ .Claims.crlf }}", "", "control character"},
		{"{{ .Claims.missing }}", "", "missing"},
		{"{{ .Nope }}", "", "Nope"},
		{"   ", "", "empty"},
		{"{{ .Claims.employee_id }}{{ .Claims.employee_id }}", "E42E42", ""},
	} {
		m, err := newSubjectMapper(tc.tmpl, "", nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.tmpl, err)
		}
		got, err := m.render(id)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%q: got %q, %v; want error containing %q", tc.tmpl, got, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.tmpl, got, err, tc.want)
		}
	}
}

func TestSubjectTemplateRejectsUnsafe(t *testing.T) {
	t.Parallel()
	for _, tmpl := range []string{`{{ template "x" }}`, `{{ .Subject`, `{{ env "HOME" }}`, `{{ exec "ls" }}`} {
		m, err := newSubjectMapper(tmpl, "", nil)
		if err == nil {
			if _, err = m.render(&identity.Identity{Subject: "a"}); err == nil {
				t.Errorf("%q accepted", tmpl)
			}
		}
	}
	// Output is bounded.
	m, _ := newSubjectMapper(`{{ range split "," .Claims.many }}{{ . }}{{ . }}{{ . }}{{ end }}`, "", nil)
	if _, err := m.render(&identity.Identity{Subject: "a", Claims: map[string]any{"many": strings.Repeat("aaaaaaaaaa,", 100)}}); err == nil {
		t.Error("unbounded output accepted")
	}
}

func TestSubjectMapMissingUserError(t *testing.T) {
	t.Parallel()
	mapFile := writeFile(t, "map.yaml", []byte("# IdP subject -> Salesforce username\nalice: alice@acme.com\nbob: \"bob@acme.com\"\n"))
	srv := newJWTBearerServer(t, &testRSAKey(t).PublicKey, jose.RS256, "ck", "https://login.salesforce.com")
	src := mustSource(t, NewBroker(BrokerOptions{}), "salesforce", Config{
		Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "ck", PrivateKeyFile: writeRSAKey(t, false),
		AssertionAudience: "https://login.salesforce.com", SubjectMapFile: mapFile,
	})
	r, err := src.Token(user(context.Background(), "alice", time.Time{}))
	if err != nil || r.Token.PlatformSubject != "alice@acme.com" {
		t.Fatalf("alice: %+v %v", r, err)
	}
	_, err = src.Token(user(context.Background(), "carol", time.Time{}))
	var oe *Error
	if !errors.As(err, &oe) {
		t.Fatalf("carol: err = %v", err)
	}
	msg := err.Error()
	for _, want := range []string{`"salesforce"`, `"carol"`, "no platform username is mapped", "map.yaml"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if srv.calls.Load() != 1 {
		t.Errorf("an unmapped user reached the token endpoint (%d calls)", srv.calls.Load())
	}
}

func TestSubjectMapFormats(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, data, wantErr string }{
		{"yaml", "a: b\n", ""},
		{"json", `{"a": "b"}`, ""},
		{"list", "- a\n", "YAML or JSON object"},
		{"crlf", "a: \"b\\r\\nc\"\n", "control character"},
		{"empty value", "a: \"\"\n", "empty"},
	} {
		m, err := parseSubjectMap([]byte(tc.data))
		if tc.wantErr == "" {
			if err != nil || m["a"] != "b" {
				t.Errorf("%s: %v %v", tc.name, m, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.wantErr)
		}
	}
}

// The platform username travels inside the signed assertion; a CRLF claim
// must fail before any request is made.
func TestCRLFClaimNeverReachesTokenEndpoint(t *testing.T) {
	t.Parallel()
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		t.Error("token endpoint called")
	})
	src := mustSource(t, NewBroker(BrokerOptions{}), "sf", Config{Flow: FlowJWTBearer, TokenURL: ts.TokenURL(), ClientID: "ck", PrivateKeyFile: writeRSAKey(t, false), Subject: "{{ .Claims.name }}"})
	id := identity.Identity{Issuer: "i", Subject: "alice", Claims: map[string]any{"name": "alice\r\nAuthorization: Bearer x"}}
	if _, err := src.Token(withIdentity(context.Background(), id, "raw")); err == nil {
		t.Fatal("CRLF username accepted")
	}
}
