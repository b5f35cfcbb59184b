package servicenow

import (
	"context"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams/credentials"
	"github.com/mandate-gw/mandate/upstreams/servicenow/sandbox"
)

// exchangeEnv is the real zitadel IdP (devidp) doing RFC 8693 for Mandate,
// and a ServiceNow sandbox that trusts the IdP as an OIDC provider whose
// client id is the exchange audience.
type exchangeEnv struct {
	idp     *devidp.IdP
	env     *env
	adapter *Adapter
}

func newExchangeEnv(t *testing.T) *exchangeEnv {
	t.Helper()
	// Start's context governs the IdP's lifetime: keep it for the test.
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	_, key := keys(t)
	idp, err := devidp.Start(ctx, devidp.Options{SigningKey: key, Users: []devidp.User{
		{ID: "idp-0001", Username: "rita", Email: "rep@acme.example", GivenName: "Rita", FamilyName: "Rep"},
		{ID: "idp-0002", Username: "ivy", Email: "it.agent@acme.example", GivenName: "Ivy", FamilyName: "Agent"},
		{ID: "idp-0003", Username: "morgan", Email: "manager@acme.example", GivenName: "Morgan", FamilyName: "Manager"},
		{ID: "idp-0009", Username: "stranger", Email: "stranger@elsewhere.example"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	if err := idp.RegisterClient("mandate", "gateway-secret"); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, envOptions{oidc: []sandbox.OIDCProvider{{
		Name: "Company IdP", Issuer: idp.Issuer(), ClientID: oidcClientID, MetadataURL: idp.DiscoveryURL(),
		UserClaim: "email", UserField: "email",
	}}})
	cfg := e.config(credentials.Config{
		Flow:         credentials.FlowTokenExchange,
		TokenURL:     idp.TokenURL(),
		ClientID:     "mandate",
		ClientSecret: "gateway-secret",
		Audience:     oidcClientID,
	})
	return &exchangeEnv{idp: idp, env: e, adapter: e.adapter(t, cfg)}
}

// identity logs username in at the IdP (a token for the gateway, as an MCP
// client would hold) and builds the Identity the gateway would.
func (x *exchangeEnv) identity(t *testing.T, username string) *identity.Identity {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := x.idp.Token(ctx, username, devidp.TokenOptions{Audience: []string{"https://mcp.example.com/mcp"}})
	if err != nil {
		t.Fatal(err)
	}
	u, ok := x.idp.UserByUsername(username)
	if !ok {
		t.Fatalf("no IdP user %s", username)
	}
	return identity.Identity{Issuer: x.idp.Issuer(), Subject: u.ID, Email: u.Email, Expiry: time.Now().Add(time.Hour)}.WithRawToken(raw)
}
