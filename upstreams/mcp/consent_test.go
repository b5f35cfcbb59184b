package mcp

import (
	"context"
	"errors"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// TestConsentRequiredSurvives: a *credentials.ConsentRequiredError from the
// credentials source (the user must connect their account first) reaches
// the caller as the adapter's usual credentials error (code, data) that
// still wraps the typed error — when the session is opened (initialize),
// on a call of an open session, and on the raw forwarding call — so that
// the gateway can answer with a URL elicitation.
func TestConsentRequiredSurvives(t *testing.T) {
	leakCheck(t)
	u := newUpstream(t, upstreamOptions{})
	src := &fakeSource{}
	a, _ := testAdapter(t, u.URL, src, nil)
	ctx := userCtx(context.Background(), "alice")
	consent := &credentials.Error{Upstream: "crm", Flow: "authorization_code", User: "alice",
		Err: &credentials.ConsentRequiredError{Upstream: "crm", Reason: "no_grant"}}
	check := func(what string, err error) {
		t.Helper()
		rpcErr(t, err, CodeCredentialsUnavailable, "upstream crm: ")
		var cre *credentials.ConsentRequiredError
		if !errors.As(err, &cre) || cre.Upstream != "crm" || cre.Reason != "no_grant" {
			t.Errorf("%s: %v (%T) does not wrap the *credentials.ConsentRequiredError", what, err, err)
		}
	}

	// Opening: the first request (initialize) needs a token.
	src.fail.Store(consent)
	s := open(t, a, ctx, nil)
	_, err := s.ListTools(ctx, &sdk.ListToolsParams{})
	check("initialize", err)

	// An open session whose grant went away.
	src.fail.Store(nil)
	if _, err := s.ListTools(ctx, &sdk.ListToolsParams{}); err != nil {
		t.Fatal(err)
	}
	src.fail.Store(consent)
	_, err = s.CallTool(ctx, &sdk.CallToolParams{Name: "whoami"})
	check("tools/call", err)
	_, err = s.(upstreams.RawCaller).CallToolRaw(ctx, "whoami", []byte(`"r-1"`), []byte(`{"jsonrpc":"2.0","id":"r-1","method":"tools/call","params":{"name":"whoami"}}`))
	check("raw tools/call", err)
	_ = s.Close()
}
