package devidp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

func TestUserinfoAndIntrospection(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	idp := start(t, devidp.Options{})
	if err := idp.RegisterClient("rs", "pw"); err != nil {
		t.Fatal(err)
	}
	tok, err := idp.Token(ctx, "bob", devidp.TokenOptions{Audience: []string{"rs"}, Scopes: []string{"tickets"}})
	if err != nil {
		t.Fatal(err)
	}
	provider, err := oidc.NewProvider(ctx, idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: tok}))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uic struct {
		Roles []string `json:"roles"`
	}
	if err := ui.Claims(&uic); err != nil {
		t.Fatal(err)
	}
	if ui.Subject != "user-bob" || ui.Email != "bob@example.com" || !slices.Equal(uic.Roles, []string{"support"}) {
		t.Errorf("userinfo = %+v roles %v", ui, uic.Roles)
	}

	introspect := func(token string) map[string]any {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, idp.IntrospectionURL(), strings.NewReader(url.Values{"token": {token}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("rs", "pw")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 200 {
			t.Fatalf("introspect: HTTP %d %v", resp.StatusCode, err)
		}
		return out
	}
	got := introspect(tok)
	if got["active"] != true || got["sub"] != "user-bob" || got["scope"] != "openid tickets" || got["client_id"] != "devidp-login" {
		t.Errorf("introspection = %v", got)
	}
	if got := introspect("garbage"); got["active"] != false {
		t.Errorf("introspection of garbage = %v, want active false", got)
	}
}

func TestExchangeExpiredSubjectToken(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	tok, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{Lifetime: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond) // exp has second granularity
	r := postToken(t, idp, exchangeForm(tok, crmAudience), "mandate", "s3cret", true)
	if r.Status != http.StatusBadRequest || r.Error != "invalid_request" {
		t.Errorf("expired subject token: HTTP %d %q, want 400 invalid_request", r.Status, r.Error)
	}
	if n := len(idp.Exchanges()); n != 0 {
		t.Errorf("%d exchanges recorded, want 0", n)
	}
}

func TestExchangeActorAndIDToken(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	alice, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cc := postToken(t, idp, url.Values{"grant_type": {"client_credentials"}}, "mandate", "s3cret", true)
	if cc.Status != 200 {
		t.Fatalf("client_credentials: HTTP %d %s", cc.Status, cc.Error)
	}

	t.Run("actor token gives act claim", func(t *testing.T) {
		t.Parallel()
		f := exchangeForm(alice, crmAudience)
		f.Set("actor_token", cc.AccessToken)
		f.Set("actor_token_type", accessTokenType)
		r := postToken(t, idp, f, "mandate", "s3cret", true)
		if r.Status != 200 {
			t.Fatalf("exchange: HTTP %d %s %s", r.Status, r.Error, r.Description)
		}
		c := verify(t, idp, r.AccessToken, crmAudience)
		if c.Subject != "user-alice" || c.Act == nil || c.Act.Sub != "mandate" {
			t.Errorf("sub %q act %+v, want user-alice acted on by mandate", c.Subject, c.Act)
		}
	})
	t.Run("id token requested", func(t *testing.T) {
		t.Parallel()
		f := exchangeForm(alice, crmAudience)
		f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:id_token")
		r := postToken(t, idp, f, "mandate", "s3cret", true)
		if r.Status != 200 || r.IssuedTokenType != "urn:ietf:params:oauth:token-type:id_token" || r.TokenType != "N_A" {
			t.Fatalf("exchange: HTTP %d %s, issued %q type %q", r.Status, r.Error, r.IssuedTokenType, r.TokenType)
		}
		if c := verify(t, idp, r.AccessToken, crmAudience); c.Subject != "user-alice" || c.Email != "alice@example.com" {
			t.Errorf("id token claims = %+v", c)
		}
	})
}

func TestSignJWTAndAddUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	idp := start(t, devidp.Options{})
	if err := idp.AddUser(devidp.User{ID: "u-erin", Username: "erin", Roles: []string{"ops"}}); err != nil {
		t.Fatal(err)
	}
	if err := idp.AddUser(devidp.User{Username: "erin"}); err == nil {
		t.Error("AddUser accepted a duplicate username")
	}
	tok, err := idp.Token(ctx, "erin", devidp.TokenOptions{Audience: []string{"rs"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := verify(t, idp, tok, "rs"); c.Subject != "u-erin" || !slices.Equal(c.Roles, []string{"ops"}) {
		t.Errorf("claims = %+v", c)
	}

	provider, err := oidc.NewProvider(ctx, idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	v := provider.Verifier(&oidc.Config{ClientID: "rs"})
	now := time.Now().Unix()
	good, err := idp.SignJWT(map[string]any{"iss": idp.Issuer(), "sub": "x", "aud": "rs", "exp": now + 60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, good); err != nil {
		t.Errorf("SignJWT token rejected: %v", err)
	}
	expired, err := idp.SignJWT(map[string]any{"iss": idp.Issuer(), "sub": "x", "aud": "rs", "exp": now - 60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, expired); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("expired token: err = %v, want expiry error", err)
	}
}

// TestOAuthServerMetadata: RFC 8414 metadata at
// /.well-known/oauth-authorization-server, the same issuer and endpoints
// as OpenID discovery (MCP clients look there first).
func TestOAuthServerMetadata(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	get := func(path string) map[string]any {
		t.Helper()
		resp, err := http.Get(idp.Issuer() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&m) != nil {
			t.Fatalf("GET %s: HTTP %d", path, resp.StatusCode)
		}
		return m
	}
	oauth, oidcDoc := get("/.well-known/oauth-authorization-server"), get("/.well-known/openid-configuration")
	for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"} {
		if oauth[k] == nil || oauth[k] != oidcDoc[k] {
			t.Errorf("%s: RFC 8414 %v, OpenID %v", k, oauth[k], oidcDoc[k])
		}
	}
	if oauth["issuer"] != idp.Issuer() {
		t.Errorf("issuer %v, want %s", oauth["issuer"], idp.Issuer())
	}
}
