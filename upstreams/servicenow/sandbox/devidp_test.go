package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// A token the company IdP issues by RFC 8693 token exchange (aud = the
// ServiceNow OIDC client id, sub = the IdP's user id, email claim) is
// accepted directly on the Table API and runs as the sys_user with that
// email; the user's inbound token (aud = the gateway) is not.
func TestRFC8693ExchangedTokenFromRealIdP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	idp, err := devidp.Start(ctx, devidp.Options{Users: []devidp.User{
		{ID: "idp-0001", Username: "rita", Email: "rep@acme.example", GivenName: "Rita", FamilyName: "Rep"},
		{ID: "idp-0002", Username: "ivy", Email: "it.agent@acme.example", GivenName: "Ivy", FamilyName: "Agent"},
		{ID: "idp-0003", Username: "stranger", Email: "stranger@elsewhere.example"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	if err := idp.RegisterClient("mandate", "gateway-secret"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, &Options{OIDCProviders: []OIDCProvider{{
		Name: "Company IdP", Issuer: idp.Issuer(), ClientID: "servicenow", MetadataURL: idp.DiscoveryURL(),
		UserClaim: "email", UserField: "email",
	}}})

	exchange := func(username string) (inbound, exchanged string) {
		t.Helper()
		in, err := idp.Token(ctx, username, devidp.TokenOptions{Audience: []string{"https://mcp.example.com/mcp"}})
		if err != nil {
			t.Fatal(err)
		}
		form := url.Values{
			"grant_type":           {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token":        {in},
			"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
			"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
			"audience":             {"servicenow"},
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, idp.TokenURL(), stringsReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("mandate", "gateway-secret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct {
			AccessToken string `json:"access_token"`
		}
		if err := decodeJSON(resp.Body, &body); err != nil || resp.StatusCode != 200 || body.AccessToken == "" {
			t.Fatalf("token exchange: %d %v", resp.StatusCode, err)
		}
		return in, body.AccessToken
	}

	for _, tc := range []struct {
		user string
		want []string
	}{
		{"rita", []string{IncLaptop, IncVPN}},
		{"ivy", []string{IncLaptop, IncVPN, IncCRMReport, IncDashboard, IncPrinter, IncEmail}},
	} {
		inbound, exchanged := exchange(tc.user)
		status, _, rows, raw := e.list(t, exchanged, "incident", url.Values{"sysparm_query": {"ORDERBYnumber"}})
		if status != 200 {
			t.Fatalf("%s exchanged token: %d %s", tc.user, status, raw)
		}
		if diff := cmp.Diff(tc.want, sysIDs(rows)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.user, diff)
		}
		if status, _, _, _ := e.list(t, inbound, "incident", nil); status != 401 {
			t.Errorf("%s's inbound token (aud = the gateway) was accepted: %d", tc.user, status)
		}
	}
	_, exchanged := exchange("stranger")
	if status, _, _, _ := e.list(t, exchanged, "incident", nil); status != 401 {
		t.Errorf("a token for a user with no sys_user record was accepted: %d", status)
	}
}

func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
