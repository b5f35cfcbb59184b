package gateway

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/gateway/authserver"
	connectpages "github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// The connect pages are mounted under the public URL's prefix when the
// authorization server is on: My connections signs the user in at the IdP
// through Mandate; a bad link gets a page.
func TestConnectPagesMounted(t *testing.T) {
	t.Parallel()
	ag := startASGateway(t)
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(ag.base + connectpages.PathConnections)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), ag.idp.Issuer()) ||
		loc.Query().Get("redirect_uri") != ag.issuer+authserver.PathCallback {
		t.Fatalf("My connections without a sign-in: %d %v, want the IdP's sign-in through Mandate", resp.StatusCode, loc)
	}
	resp, err = c.Get(ag.base + connectpages.PathStart + "?t=forged")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("forged link: %d, want a 400 page", resp.StatusCode)
	}
}

func TestValidateAuthorizationCodeNeedsAuthorizationServer(t *testing.T) {
	t.Parallel()
	cfg := &Config{}
	cfg.Server.PublicURL = "https://mcp.example.com"
	cfg.Server.Listen = "127.0.0.1:8080"
	cfg.Identity.Issuer = "https://login.example.com/"
	cfg.Upstreams = []upstreams.Config{{Name: "tracker", Kind: upstreams.KindMCP, URL: "https://tracker.example.com/mcp",
		Credentials: credentials.Config{Flow: FlowAuthorizationCode}}}
	cfg.applyDefaults()
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "upstreams[tracker].credentials.flow: authorization_code needs authorization_server.enabled") {
		t.Fatalf("Validate = %v, want the authorization_code error with its path", err)
	}
}
