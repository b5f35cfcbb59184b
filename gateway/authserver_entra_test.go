package gateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/internal/testenv/entraidp"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Application (client) ids of the Entra-shaped tenant: Mandate (one app:
// the confidential client Mandate signs users in with, and the API its
// tokens are for) and a CRM API reached On-Behalf-Of.
const (
	entraMandateID = "6f1d2c3b-4a59-4e8d-9c7b-1a2b3c4d5e6f"
	entraCRMID     = "0c9b8a7f-6e5d-4c3b-8a19-0f1e2d3c4b5a"
	entraSecret    = "entra-client-secret"
)

// entraEnv is Mandate's authorization server in front of an Entra-shaped
// IdP, configured as docs/idp-setup.md recommends for Entra ID.
type entraEnv struct {
	*asGateway
	entra *entraidp.IdP
	crm   *testUpstream
}

// startEntra starts the Entra-shaped IdP (access tokens living ttl) and the
// gateway; resource, when set, is authorization_server.idp.resource (a
// misconfiguration for Entra). withCRM adds an entra_obo upstream.
func startEntra(t *testing.T, o entraidp.Options, resource string, withCRM bool) *entraEnv {
	t.Helper()
	env := &entraEnv{}
	var err error
	o.Apps = []entraidp.App{
		{ClientID: entraMandateID, Secret: entraSecret, Scopes: []string{"access_as_user"}},
		{ClientID: entraCRMID, Secret: "crm-secret", Scopes: []string{"Crm.Read", "Crm.Write"}},
	}
	env.entra, err = entraidp.Start(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(env.entra.Close)
	if withCRM {
		env.crm = startUpstreamFor(t, env.entra.Issuer(), entraCRMID, "crm", addSubjectTools)
	}
	env.asGateway = startASGatewayFor(t, env.entra.Issuer(), func(c *Config) {
		if err := env.entra.AddRedirectURI(entraMandateID, c.Server.PublicURL+authserver.PathCallback); err != nil {
			t.Fatal(err)
		}
		c.Identity.Audience = entraMandateID
		c.Identity.Claims.Subject = "oid"
		c.AuthorizationServer.IdP.ClientID = entraMandateID
		c.AuthorizationServer.IdP.ClientSecret = entraSecret
		c.AuthorizationServer.IdP.Scopes = []string{"openid", "profile", "email", "offline_access", "api://" + entraMandateID + "/.default"}
		c.AuthorizationServer.IdP.Resource = resource
		if withCRM {
			c.Upstreams = []upstreams.Config{{Name: "crm", Kind: upstreams.KindMCP, URL: env.crm.srv.URL + "/mcp", Timeout: 5 * time.Second,
				Credentials: credentials.Config{Flow: credentials.FlowEntraOBO, TokenURL: env.entra.TokenURL(),
					ClientID: entraMandateID, ClientSecret: entraSecret, Scopes: []string{"api://" + entraCRMID + "/.default"}}}}
			c.Policy = policy.Config{Default: "deny", Rules: []policy.Rule{{Name: "tenant", Effect: "allow", When: `user.claims.tid == "` + env.entra.TenantID() + `"`}}}
		}
	})
	return env
}

func jwtPayload(t *testing.T, raw string) map[string]any {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// tokenRequests returns the IdP's token requests of one grant type.
func (env *entraEnv) tokenRequests(grant string) []entraidp.Request {
	var out []entraidp.Request
	for _, r := range env.entra.Requests() {
		if r.Endpoint == "token" && r.Form.Get("grant_type") == grant {
			out = append(out, r)
		}
	}
	return out
}

// An MCP client signs in through Mandate at an Entra-shaped IdP configured
// as docs/idp-setup.md recommends: the IdP never sees a resource parameter
// (Entra v2 refuses it), the api://<app>/.default scope makes its access
// token one for Mandate's API (aud = the app id GUID, scp), the identity is
// keyed on oid, Mandate refreshes the IdP token when it nears expiry and
// keeps working, the kept IdP token is the On-Behalf-Of assertion, and an
// IdP refusal to refresh (user disabled) ends the Mandate token.
func TestAuthorizationServerEntraShaped(t *testing.T) {
	// IdP access tokens live 64s: Mandate refreshes them in their last
	// minute, so a refresh is due 4s after the sign-in.
	const ttl = 64 * time.Second
	env := startEntra(t, entraidp.Options{AccessTokenTTL: ttl}, "", true)
	rita := env.entra.User("rita")
	redirect := "http://127.0.0.1:7777/callback"
	clientID := env.register(t, redirect)
	signedIn := time.Now()
	tok := env.signIn(t, clientID, redirect, "rita")
	access, _ := tok["access_token"].(string)
	if access == "" || tok["refresh_token"] == nil {
		t.Fatalf("token response = %v", tok)
	}
	if c := jwtPayload(t, access); c["iss"] != env.issuer {
		t.Fatalf("the client got a token issued by %v, not Mandate", c["iss"])
	}

	// What the IdP received: no resource anywhere; the API's .default scope.
	var authorizes int
	for _, r := range env.entra.Requests() {
		if _, ok := r.Form["resource"]; ok {
			t.Errorf("the IdP's %s endpoint received resource=%q", r.Endpoint, r.Form.Get("resource"))
		}
		if r.Endpoint == "authorize" {
			authorizes++
			if !slices.Contains(strings.Fields(r.Form.Get("scope")), "api://"+entraMandateID+"/.default") || r.Form.Get("login_hint") != "rita" ||
				r.Form.Get("code_challenge_method") != "S256" || r.Form.Get("nonce") == "" {
				t.Errorf("IdP authorization request = %v", r.Form)
			}
		}
	}
	if authorizes != 1 || len(env.tokenRequests("authorization_code")) != 1 {
		t.Fatalf("IdP requests = %+v", env.entra.Requests())
	}

	// The Mandate token works on /mcp; the identity is the oid (Entra's sub
	// is pairwise) with the scp scopes of the IdP token.
	cs := connect(t, env.mcpURL, access)
	w := callWhoAmI(t, cs)
	if w.Subject != rita.OID || w.Issuer != env.entra.Issuer() || strings.Join(w.Scopes, " ") != "access_as_user" {
		t.Fatalf("whoami = %+v, want subject %s and scopes [access_as_user]", w, rita.OID)
	}
	if n := len(env.tokenRequests("refresh_token")); n != 0 {
		t.Fatalf("Mandate refreshed the IdP token %d times while it was fresh", n)
	}

	// In the IdP token's last minute the next call refreshes it (once).
	time.Sleep(time.Until(signedIn.Add(ttl - time.Minute + 300*time.Millisecond)))
	if w := callWhoAmI(t, cs); w.Subject != rita.OID {
		t.Fatalf("whoami after the IdP token neared expiry = %+v", w)
	}
	callWhoAmI(t, cs)
	refreshes := env.tokenRequests("refresh_token")
	if len(refreshes) != 1 {
		t.Fatalf("IdP refresh requests = %d, want 1", len(refreshes))
	}
	if r := refreshes[0]; r.StaleRefreshToken || r.ClientID != entraMandateID || r.ClientAuth == "none" ||
		!strings.Contains(r.Form.Get("scope"), "/.default") {
		t.Errorf("refresh request = %+v", r)
	}

	// entra_obo: the assertion is the IdP access token Mandate keeps (the
	// refreshed one), and the CRM gets a token for its own app id, for rita.
	res, err := cs.CallTool(context.Background(), &mcp.CallToolParams{Name: "crm_who"})
	if err != nil || res.IsError {
		t.Fatalf("crm_who: %v %+v", err, res)
	}
	obo := env.tokenRequests(entraidp.GrantJWTBearer)
	issued := env.entra.Issued()
	var latest string
	for _, is := range issued {
		if is.ClientID == entraMandateID && is.Grant != entraidp.GrantJWTBearer {
			latest = is.AccessToken
		}
	}
	if len(obo) != 1 || obo[0].Form.Get("requested_token_use") != "on_behalf_of" || obo[0].Form.Get("assertion") != latest ||
		obo[0].Form.Get("scope") != "api://"+entraCRMID+"/.default" {
		t.Fatalf("On-Behalf-Of requests = %+v (want the assertion to be the kept IdP token)", obo)
	}
	env.crm.mu.Lock()
	crmTok := env.crm.tokens[len(env.crm.tokens)-1]
	env.crm.mu.Unlock()
	if c := jwtPayload(t, crmTok); c["aud"] != entraCRMID || c["oid"] != rita.OID || c["azp"] != entraMandateID || c["scp"] != "Crm.Read Crm.Write" {
		t.Errorf("the CRM's token = %v", c)
	}

	// The IdP refuses to refresh (user disabled, AADSTS50057): once the
	// refreshed IdP token nears expiry, the Mandate token stops working.
	env.entra.DisableUser(rita.UPN)
	// The refreshed token came at least ttl-1m after the sign-in, so its
	// last minute starts after 2*(ttl-1m).
	time.Sleep(time.Until(signedIn.Add(2*(ttl-time.Minute) + 600*time.Millisecond)))
	if resp, body := env.post(t, initBody, bearer(access)); resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("Mandate token after the IdP refused to refresh: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
	if n := len(env.tokenRequests("refresh_token")); n != 2 {
		t.Errorf("IdP refresh requests = %d, want 2 (the second refused)", n)
	}
}

// authorization_server.idp.resource set for Entra ID (a misconfiguration:
// v2 refuses it, AADSTS901002): the sign-in fails with a clear page, never
// a crash or a silent denial. Entra shows its own error page; where an IdP
// sends such a request error back to Mandate instead, Mandate's page names
// the IdP's error and the settings to check.
func TestAuthorizationServerEntraResourceMisconfigured(t *testing.T) {
	redirect := "http://127.0.0.1:7777/callback"
	t.Run("IdP page", func(t *testing.T) {
		env := startEntra(t, entraidp.Options{}, "api://"+entraMandateID, false)
		end := env.browse(t, env.register(t, redirect), redirect, "rita")
		if !strings.HasPrefix(end.at.String(), env.entra.AuthorizeURL()) || end.status != http.StatusBadRequest ||
			!strings.Contains(end.body, "AADSTS901002") {
			t.Fatalf("sign-in ended at %s: %d %s", end.at, end.status, end.body)
		}
	})
	t.Run("back to Mandate", func(t *testing.T) {
		env := startEntra(t, entraidp.Options{ErrorsToRedirect: true}, "api://"+entraMandateID, false)
		end := env.browse(t, env.register(t, redirect), redirect, "rita")
		if !strings.HasPrefix(end.at.String(), env.issuer+authserver.PathCallback) || end.status != http.StatusBadGateway {
			t.Fatalf("sign-in ended at %s: %d %s", end.at, end.status, end.body)
		}
		for _, want := range []string{"invalid_request", "AADSTS901002", "authorization_server.idp"} {
			if !strings.Contains(end.body, want) {
				t.Errorf("Mandate's page lacks %q:\n%s", want, end.body)
			}
		}
		if resp, _ := env.post(t, initBody, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("gateway after the failed sign-in: %d", resp.StatusCode)
		}
	})
}
