package demo

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/testenv/webtest"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

func getJSON(t *testing.T, u string, v any) { webtest.GetJSON(t, u, v) }

// TestDemoIsItsClientsAuthorizationServer checks what tests outside the
// project rely on (issue 15, "The demo and what others will test"): the
// protected resource metadata names the demo's origin as
// authorization_servers[0], equal to the issuer of its RFC 8414 metadata,
// which has registration_endpoint, client_id_metadata_document_supported
// and S256; and the 401 points at the metadata.
func TestDemoIsItsClientsAuthorizationServer(t *testing.T) {
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	u, _ := url.Parse(d.MCPURL)
	origin := u.Scheme + "://" + u.Host

	resp, err := http.Post(d.MCPURL, "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "resource_metadata=") {
		t.Fatalf("unauthenticated: HTTP %d, WWW-Authenticate %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
		ScopesSupported      []string `json:"scopes_supported"`
	}
	getJSON(t, origin+"/.well-known/oauth-protected-resource"+u.Path, &prm)
	if prm.Resource != d.MCPURL || len(prm.AuthorizationServers) == 0 || prm.AuthorizationServers[0] != origin || len(prm.ScopesSupported) == 0 {
		t.Fatalf("protected resource metadata = %+v, want resource %s, authorization_servers[0] %s, scopes", prm, d.MCPURL, origin)
	}
	var as struct {
		Issuer                 string   `json:"issuer"`
		Authorization          string   `json:"authorization_endpoint"`
		Token                  string   `json:"token_endpoint"`
		Registration           string   `json:"registration_endpoint"`
		CIMD                   bool     `json:"client_id_metadata_document_supported"`
		CodeChallengeMethods   []string `json:"code_challenge_methods_supported"`
		ResponseTypesSupported []string `json:"response_types_supported"`
	}
	getJSON(t, origin+"/.well-known/oauth-authorization-server", &as)
	if as.Issuer != prm.AuthorizationServers[0] || as.Registration == "" || !as.CIMD ||
		!slices.Contains(as.CodeChallengeMethods, "S256") || as.Authorization == "" || as.Token == "" {
		t.Fatalf("authorization server metadata = %+v", as)
	}
	var idp struct {
		Authorization string `json:"authorization_endpoint"`
	}
	getJSON(t, d.Issuer+"/.well-known/openid-configuration", &idp)
	if !strings.HasSuffix(idp.Authorization, "/authorize") {
		t.Errorf("the demo IdP's authorization endpoint %q does not end in /authorize", idp.Authorization)
	}
}

// metadataDocument serves a client ID metadata document from
// http://127.0.0.1 (the demo allows loopback http documents) and returns
// its URL, which is also its client_id, and a count of its fetches.
func metadataDocument(t *testing.T, redirectURI string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	docURL := "http://" + ln.Addr().String() + "/oauth/client.json"
	fetches := new(atomic.Int32)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if r.URL.Path != "/oauth/client.json" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"client_id":                  docURL,
			"client_name":                "Mandate e2e (TypeScript SDK, metadata document)",
			"client_uri":                 "http://" + ln.Addr().String() + "/",
			"redirect_uris":              []string{redirectURI},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
		})
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return docURL, fetches
}

// TestTSSDKSignsInToDemo: the official TypeScript SDK client, with its
// OAuth support and nothing but the MCP URL, signs in to the demo headless
// (login_hint at the demo IdP, the consent form), lists tools, refreshes
// its token when the access token is refused and lists again — with
// dynamic registration (rita) and with a client ID metadata document
// served from http://127.0.0.1 (ivy; the SDK takes only https URLs as
// metadata documents, so the client is given that URL as its client_id,
// and Mandate's side of CIMD is what runs — the SDK's own CIMD branch runs
// in internal/testenv/e2e against an https document). Different users see different
// tools. The Inspector CLI lists the same tools with rita's Mandate-issued
// token; replaying ivy's rotated refresh token is refused.
func TestTSSDKSignsInToDemo(t *testing.T) {
	nodetools.Require(t, nodetools.ToolTSSDK, nodetools.ToolInspector)
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	u, _ := url.Parse(d.MCPURL)
	origin := u.Scheme + "://" + u.Host

	const redirect = "http://127.0.0.1:1/callback"
	cases := []struct {
		user, registration string
		replay             bool
		has, hasNot        string
	}{
		{user: "rita", registration: nodetools.RegistrationDCR, has: "salesforce_my_pipeline", hasNot: "servicenow_create_incident"},
		{user: "ivy", registration: nodetools.RegistrationCIMD, replay: true, has: "servicenow_create_incident", hasNot: "salesforce_my_pipeline"},
	}
	for _, c := range cases {
		t.Run(c.user+"/"+c.registration, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			o := nodetools.TSOAuthOptions{URL: d.MCPURL, LoginHint: c.user, RedirectURI: redirect,
				Registration: c.registration, Issuer: origin, Replay: c.replay}
			var fetches *atomic.Int32
			if c.registration == nodetools.RegistrationCIMD {
				o.ClientMetadataURL, fetches = metadataDocument(t, redirect)
			}
			out, err := nodetools.RunTSOAuth(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("steps:\n  %s", strings.Join(out.Steps, "\n  "))
			if c.registration == nodetools.RegistrationCIMD && (out.ClientID != o.ClientMetadataURL || fetches.Load() == 0) {
				t.Errorf("client_id %q (want the metadata document URL); Mandate fetched the document %d times", out.ClientID, fetches.Load())
			}
			if c.registration == nodetools.RegistrationDCR && (out.ClientID == "" || strings.HasPrefix(out.ClientID, "http")) {
				t.Errorf("client_id %q, want a dynamically registered id", out.ClientID)
			}
			if out.Authorize.Endpoint != origin+"/oauth/authorize" || out.Authorize.Resource != d.MCPURL || out.Authorize.CodeChallengeMethod != "S256" {
				t.Errorf("authorization request %+v, want Mandate's endpoint, resource %s, S256", out.Authorize, d.MCPURL)
			}
			if out.ConsentPage == nil || out.ConsentHasScript {
				t.Errorf("consent page %+v (script: %v), want one plain form", out.ConsentPage, out.ConsentHasScript)
			}
			if !slices.Contains(out.Tools, c.has) || slices.Contains(out.Tools, c.hasNot) || !slices.Contains(out.Tools, "whoami") {
				t.Errorf("%s's tools %v: want %s, not %s", c.user, out.Tools, c.has, c.hasNot)
			}
			if !out.RefreshTokenIssued || !out.Refreshed || !out.RefreshTokenRotated || !slices.Contains(out.Grants, "refresh_token") {
				t.Errorf("refresh: issued %v, refreshed %v, rotated %v, grants %v", out.RefreshTokenIssued, out.Refreshed, out.RefreshTokenRotated, out.Grants)
			}
			if diff := cmp.Diff(out.Tools, out.ToolsAfterRefresh); diff != "" {
				t.Errorf("tools after refresh differ (-before +after):\n%s", diff)
			}
			if c.replay {
				if out.Replay == nil || out.Replay.Status != http.StatusBadRequest || out.Replay.Error != "invalid_grant" {
					t.Errorf("replayed refresh token: %+v, want HTTP 400 invalid_grant", out.Replay)
				}
				return
			}
			// The Inspector CLI with the Mandate-issued token.
			res, err := nodetools.RunInspector(ctx, d.MCPURL, out.AccessToken, "tools/list")
			if err != nil {
				t.Fatal(err)
			}
			var list struct {
				Tools []struct {
					Name string `json:"name"`
				} `json:"tools"`
			}
			if err := nodetools.InspectorResult(res, &list); err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tl := range list.Tools {
				names = append(names, tl.Name)
			}
			sort.Strings(names)
			want := slices.Sorted(slices.Values(out.Tools))
			if diff := cmp.Diff(want, names); diff != "" {
				t.Errorf("the Inspector with %s's Mandate token (-TS SDK +Inspector):\n%s", c.user, diff)
			}
		})
	}
}
