package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/policy"
)

// `mandate explain` maps a claims file to the user exactly as the live
// gateway maps a verified token: for every claim shape (scope, Entra's scp
// as a string or a list, nested and object roles, verified and unverified
// email, refused tokens) the identity, the refusal and the policy decision
// of Explain equal those of the live Authenticator for the same token.
func TestExplainMatchesLiveIdentity(t *testing.T) {
	t.Parallel()
	idp := newKeyIdP(t)
	const policyYAML = "policy:\n  rules:\n" +
		"    - name: mail-readers\n      effect: allow\n      when: '\"Mail.Read\" in user.scopes'\n" +
		"    - name: admins\n      effect: allow\n      when: '\"admin\" in user.roles'\n"
	for _, tc := range []struct {
		name     string
		identity string         // extra YAML lines under identity:
		claims   map[string]any // besides iss, aud, exp, iat (and sub unless set to nil)
		rule     string         // deciding rule; "" for the default deny
		refused  string         // the live gateway refuses the token: "401 invalid_token", "403 insufficient_scope"
	}{
		{name: "scope string", claims: map[string]any{"scope": "openid Mail.Read"}, rule: "mail-readers"},
		{name: "Entra scp string", claims: map[string]any{"scp": "Mail.Read User.Read"}, rule: "mail-readers"},
		{name: "scp list", claims: map[string]any{"scp": []any{"User.Read", "Mail.Read"}}, rule: "mail-readers"},
		{name: "scope wins over scp", claims: map[string]any{"scope": "openid", "scp": "Mail.Read"}},
		{name: "no scopes", claims: map[string]any{"roles": []any{"sales"}}},
		{name: "roles at a nested path", identity: "  claims: {roles: realm_access.roles}\n",
			claims: map[string]any{"realm_access": map[string]any{"roles": []any{"admin"}}}, rule: "admins"},
		{name: "roles as an object", identity: "  claims: {roles: 'urn:zitadel:iam:org:project:roles'}\n",
			claims: map[string]any{"urn:zitadel:iam:org:project:roles": map[string]any{"admin": map[string]any{"1": "acme"}}}, rule: "admins"},
		{name: "email unverified", claims: map[string]any{"email": "alice@acme.example", "email_verified": false, "scp": "Mail.Read"}, rule: "mail-readers"},
		{name: "email verified as a string", claims: map[string]any{"email": "alice@acme.example", "email_verified": "true"}},
		{name: "email subject unverified", identity: "  claims: {subject: email}\n",
			claims: map[string]any{"email": "alice@acme.example", "scp": "Mail.Read"}, refused: "401 invalid_token"},
		{name: "email subject verified", identity: "  claims: {subject: email}\n",
			claims: map[string]any{"email": "alice@acme.example", "email_verified": true, "scp": "Mail.Read"}, rule: "mail-readers"},
		{name: "upn subject trusted", identity: "  claims: {subject: upn}\n  trust_unverified_email: true\n",
			claims: map[string]any{"upn": "alice@acme.example", "scp": "Mail.Read"}, rule: "mail-readers"},
		{name: "no subject", claims: map[string]any{"sub": nil, "scp": "Mail.Read"}, refused: "401 invalid_token"},
		{name: "numeric subject", identity: "  claims: {subject: employee_id}\n", // (a numeric sub fails go-oidc's own parsing first)
			claims: map[string]any{"employee_id": 42, "scp": "Mail.Read"}, refused: "401 invalid_token"},
		{name: "required scope missing", identity: "  required_scopes: [mcp]\n",
			claims: map[string]any{"scp": "Mail.Read"}, refused: "403 insufficient_scope"},
		{name: "required scope in scp", identity: "  required_scopes: [mcp]\n",
			claims: map[string]any{"scp": []any{"mcp", "Mail.Read"}}, rule: "mail-readers"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			y := "server:\n  public_url: https://mcp.example.com\n" +
				"identity:\n  issuer: " + idp.issuer() + "\n  jwks_url: " + idp.srv.URL + "/jwks\n" + tc.identity +
				"upstreams:\n  - {name: mail, kind: mcp, url: 'https://mail.example/mcp', credentials: {flow: none}}\n" + policyYAML
			cfg, err := ParseConfig("c.yaml", []byte(y), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			c := claims{"iss": idp.issuer(), "aud": []string{cfg.Identity.Audience}, "sub": "00u1",
				"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
			for k, v := range tc.claims {
				if v == nil {
					delete(c, k)
				} else {
					c[k] = v
				}
			}
			// The live path: the gateway's Authenticator on the signed token.
			a := authn.New(cfg.Identity, authn.Options{HTTPClient: idp.srv.Client()})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			a.Start(ctx)
			for deadline := time.Now().Add(10 * time.Second); !a.Ready(); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("keys not loaded: %s", a.Status())
				}
			}
			live, lerr := a.Authenticate(ctx, []string{"Bearer " + idp.sign(t, jose.ES256, "ec1", idp.ecKey, c)})

			// explain: the same claims, decoded as the CLI decodes a claims file.
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			fileClaims, err := authn.DecodeClaims(b)
			if err != nil {
				t.Fatal(err)
			}
			explained, eerr := explainIdentity(cfg, fileClaims)
			var out bytes.Buffer
			allowed, err := Explain(cfg, ExplainRequest{Claims: fileClaims, Tool: "mail_send"}, &out)
			if err != nil {
				t.Fatal(err)
			}

			if tc.refused != "" {
				if lerr == nil || fmt.Sprintf("%d %s", lerr.Status, lerr.Code) != tc.refused {
					t.Fatalf("live: %v (%+v), want %s", lerr, live, tc.refused)
				}
				if d := cmp.Diff(lerr, eerr); d != "" {
					t.Errorf("refusal (-live +explain):\n%s", d)
				}
				if allowed || !strings.Contains(out.String(), "decision:  DENY by authentication") || !strings.Contains(out.String(), lerr.Description) {
					t.Errorf("explain allowed=%v for a token the gateway refuses (%v):\n%s", allowed, lerr, out.String())
				}
				return
			}
			if lerr != nil {
				t.Fatalf("live refused: %v", lerr)
			}
			if eerr != nil {
				t.Fatalf("explain refused a token the gateway accepts (%+v): %v", live, eerr)
			}
			if d := cmp.Diff(live, explained, cmpopts.IgnoreUnexported(identity.Identity{})); d != "" {
				t.Errorf("identity (-live +explain):\n%s", d)
			}
			// The decision the live gateway takes for this user.
			eng, err := policy.Compile(cfg.Policy)
			if err != nil {
				t.Fatal(err)
			}
			dec := eng.Evaluate(ctx, policy.Input{User: policy.UserFrom(live), Method: "tools/call", Upstream: "mail", Tool: "send"})
			if dec.Rule != tc.rule {
				t.Errorf("live decided by %q, want %q", dec.Rule, tc.rule)
			}
			want := "DENY"
			if dec.Allow {
				want = "ALLOW"
			}
			if allowed != dec.Allow || !strings.Contains(out.String(), "decision:  "+want+" by ") {
				t.Errorf("explain allowed=%v, live %s (%s):\n%s", allowed, want, dec.Reason, out.String())
			}
		})
	}
}
