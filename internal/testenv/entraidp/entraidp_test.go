package entraidp

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
)

const (
	mandateID = "11111111-2222-4333-8444-555555555555"
	crmID     = "99999999-8888-4777-8666-555555555555"
	redirect  = "http://127.0.0.1:9/cb"
)

func start(t *testing.T, o Options) *IdP {
	t.Helper()
	o.Apps = append(o.Apps,
		App{ClientID: mandateID, Secret: "sec", RedirectURIs: []string{redirect}, Scopes: []string{"access_as_user", "mcp.use"}},
		App{ClientID: crmID, Secret: "crm-sec", Scopes: []string{"Crm.Read"}})
	i, err := Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(i.Close)
	return i
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorize returns the redirect's query, or the page body.
func authorize(t *testing.T, i *IdP, q url.Values) (url.Values, int, string) {
	t.Helper()
	resp, err := noFollow.Get(i.AuthorizeURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusFound {
		loc, _ := resp.Location()
		return loc.Query(), resp.StatusCode, ""
	}
	return nil, resp.StatusCode, string(b)
}

func authParams(scope string) url.Values {
	return url.Values{"client_id": {mandateID}, "response_type": {"code"}, "redirect_uri": {redirect}, "scope": {scope},
		"state": {"st"}, "nonce": {"n1"}, "login_hint": {"rita"}, "code_challenge": {s256(strings.Repeat("v", 43))},
		"code_challenge_method": {"S256"}}
}

func post(t *testing.T, i *IdP, f url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(i.TokenURL(), f)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func claimsOf(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	_ = json.Unmarshal(b, &c)
	return c
}

func redeem(t *testing.T, i *IdP, code string) map[string]any {
	t.Helper()
	st, out := post(t, i, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect},
		"client_id": {mandateID}, "client_secret": {"sec"}, "code_verifier": {strings.Repeat("v", 43)}})
	if st != 200 {
		t.Fatalf("redeem: %d %v", st, out)
	}
	return out
}

func TestResourceRefused(t *testing.T) {
	t.Parallel()
	i := start(t, Options{})
	q := authParams("openid api://" + mandateID + "/.default")
	q.Set("resource", "https://mcp.example/mcp")
	if _, st, body := authorize(t, i, q); st != 400 || !strings.Contains(body, "AADSTS901002: The &#39;resource&#39; request parameter is not supported.") {
		t.Errorf("resource on the page: %d %s", st, body)
	}
	r := start(t, Options{ErrorsToRedirect: true})
	got, st, _ := authorize(t, r, q)
	if st != http.StatusFound || got.Get("error") != "invalid_request" || !strings.HasPrefix(got.Get("error_description"), "AADSTS901002:") || got.Get("state") != "st" {
		t.Errorf("resource to the redirect URI: %d %v", st, got)
	}
	if rq := r.Requests(); len(rq) != 1 || rq[0].Form.Get("resource") == "" || rq[0].ClientID != mandateID {
		t.Errorf("requests = %+v", rq)
	}
}

// The code flow with .default: a v2 access token for the API, an ID token
// with the nonce, a refresh token; then refresh (rotating, scope honoured)
// and On-Behalf-Of to another API.
func TestCodeRefreshOBO(t *testing.T) {
	t.Parallel()
	i := start(t, Options{})
	got, st, body := authorize(t, i, authParams("openid profile email offline_access api://"+mandateID+"/.default"))
	if got.Get("code") == "" || got.Get("state") != "st" {
		t.Fatalf("authorize: %d %v %s", st, got, body)
	}
	tok := redeem(t, i, got.Get("code"))
	at := claimsOf(t, tok["access_token"].(string))
	rita := i.User("rita")
	if at["aud"] != mandateID || at["iss"] != i.Issuer() || at["scp"] != "access_as_user mcp.use" || at["oid"] != rita.OID ||
		at["sub"] == rita.OID || at["tid"] != i.TenantID() || at["ver"] != "2.0" || at["preferred_username"] != "rita@contoso.example" {
		t.Errorf("access token claims = %v", at)
	}
	if _, ok := at["email_verified"]; ok {
		t.Error("email_verified in an Entra access token")
	}
	// The ID token verifies against discovery and JWKS, with the nonce.
	p, err := oidc.NewProvider(context.Background(), i.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: mandateID}).Verify(context.Background(), tok["id_token"].(string))
	if err != nil || idt.Nonce != "n1" {
		t.Fatalf("id token: %v %+v", err, idt)
	}
	if _, err := p.Verifier(&oidc.Config{ClientID: mandateID}).Verify(context.Background(), tok["access_token"].(string)); err != nil {
		t.Errorf("access token does not verify: %v", err)
	}
	// A code is redeemed once.
	if st, out := post(t, i, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {redirect},
		"client_id": {mandateID}, "client_secret": {"sec"}, "code_verifier": {strings.Repeat("v", 43)}}); st != 400 || out["error"] != "invalid_grant" {
		t.Errorf("second redemption: %d %v", st, out)
	}

	rt := tok["refresh_token"].(string)
	st, r1 := post(t, i, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {mandateID}, "client_secret": {"sec"},
		"scope": {"api://" + mandateID + "/mcp.use"}})
	if st != 200 || r1["refresh_token"] == rt || claimsOf(t, r1["access_token"].(string))["scp"] != "mcp.use" {
		t.Fatalf("refresh with scope: %d %v", st, r1)
	}
	// The old refresh token still works (Entra does not revoke it) but is
	// reported stale.
	if st, _ := post(t, i, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {mandateID}, "client_secret": {"sec"}}); st != 200 {
		t.Errorf("old refresh token: %d", st)
	}
	rq := i.Requests()
	if last := rq[len(rq)-1]; !last.StaleRefreshToken || last.Form.Get("client_secret") != "[redacted]" || last.ClientAuth != "client_secret_post" {
		t.Errorf("last request = %+v", last)
	}

	// On-Behalf-Of: Mandate's token for the CRM API.
	st, obo := post(t, i, url.Values{"grant_type": {GrantJWTBearer}, "requested_token_use": {RequestedTokenOBO}, "assertion": {tok["access_token"].(string)},
		"client_id": {mandateID}, "client_secret": {"sec"}, "scope": {"api://" + crmID + "/.default"}})
	oc := claimsOf(t, obo["access_token"].(string))
	if st != 200 || oc["aud"] != crmID || oc["oid"] != rita.OID || oc["azp"] != mandateID || oc["scp"] != "Crm.Read" {
		t.Errorf("obo: %d %v %v", st, obo, oc)
	}
	// The assertion must be for the caller.
	st, bad := post(t, i, url.Values{"grant_type": {GrantJWTBearer}, "requested_token_use": {RequestedTokenOBO}, "assertion": {obo["access_token"].(string)},
		"client_id": {mandateID}, "client_secret": {"sec"}, "scope": {"api://" + crmID + "/.default"}})
	if st != 400 || !strings.HasPrefix(bad["error_description"].(string), "AADSTS500131") {
		t.Errorf("obo with a token for another app: %d %v", st, bad)
	}
}

// Without a scope naming the API the access token is Graph's, which
// nobody else can verify; without offline_access there is no refresh token.
func TestOIDCScopesOnlyGetGraphToken(t *testing.T) {
	t.Parallel()
	i := start(t, Options{})
	got, _, _ := authorize(t, i, authParams("openid profile email"))
	tok := redeem(t, i, got.Get("code"))
	if c := claimsOf(t, tok["access_token"].(string)); c["aud"] != "https://graph.microsoft.com" {
		t.Errorf("aud = %v", c["aud"])
	}
	p, _ := oidc.NewProvider(context.Background(), i.Issuer())
	if _, err := p.Verifier(&oidc.Config{SkipClientIDCheck: true, SkipIssuerCheck: true}).Verify(context.Background(), tok["access_token"].(string)); err == nil {
		t.Error("a Graph token verified with the tenant's keys")
	}
	if _, ok := tok["refresh_token"]; ok {
		t.Error("refresh token without offline_access")
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	i := start(t, Options{ErrorsToRedirect: true})
	for name, tc := range map[string]struct {
		scope, want string
	}{
		"no scope":           {"", "AADSTS900144"},
		"unknown resource":   {"openid api://nope/.default", "AADSTS500011"},
		"unknown permission": {"openid api://" + mandateID + "/Nope", "AADSTS65005"},
		"default and perm":   {"api://" + mandateID + "/.default api://" + mandateID + "/mcp.use", "AADSTS70011"},
	} {
		got, _, _ := authorize(t, i, authParams(tc.scope))
		if !strings.HasPrefix(got.Get("error_description"), tc.want) {
			t.Errorf("%s: %v", name, got)
		}
	}
	// Unknown redirect URI: the provider's page, never a redirect.
	q := authParams("openid")
	q.Set("redirect_uri", "https://evil.example/cb")
	if _, st, body := authorize(t, i, q); st != 400 || !strings.Contains(body, "AADSTS50011") {
		t.Errorf("bad redirect: %d %s", st, body)
	}
	// PKCE verifier mismatch; wrong secret.
	got, _, _ := authorize(t, i, authParams("openid"))
	if st, out := post(t, i, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {redirect},
		"client_id": {mandateID}, "client_secret": {"sec"}, "code_verifier": {strings.Repeat("w", 43)}}); st != 400 || !strings.HasPrefix(out["error_description"].(string), "AADSTS501481") {
		t.Errorf("pkce: %d %v", st, out)
	}
	if st, out := post(t, i, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {mandateID}, "client_secret": {"bad"}}); st != 401 || out["error"] != "invalid_client" {
		t.Errorf("bad secret: %d %v", st, out)
	}
	// No login_hint: the picker, a plain GET form.
	q = authParams("openid")
	q.Del("login_hint")
	if _, st, body := authorize(t, i, q); st != 200 || !strings.Contains(body, `<form method="get"`) || !strings.Contains(body, "rita@contoso.example") {
		t.Errorf("picker: %d %s", st, body)
	}
}
