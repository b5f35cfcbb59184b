// Package connect is the user's side of per-user grants (issue 16): the
// pages where a signed-in user connects their account at a platform that
// does not trust the company IdP (authorization code + PKCE at the
// platform's authorization server), the callback that stores the grant,
// and "My connections" (connect, disconnect, what each upstream has).
//
// The flow: a call that needs a grant the user lacks is answered with a
// URL-mode elicitation whose URL is Link's: a Mandate page on Mandate's
// origin, bound to the user it was made for. Opening it signs the user in
// at the IdP through Mandate if needed (authorization server's browser
// sign-in), checks that the signed-in user is the one the link was made
// for (a forwarded link creates nothing), redirects to the platform, takes
// the callback, stores the grant and says so (go back to your AI client).
package connect

import (
	"context"
	"log/slog"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Paths (relative to the public URL's path prefix).
const (
	PathStart       = "/connect/start"    // ?t=<sealed link ticket>
	PathCallback    = "/connect/callback" // the platforms redirect here
	PathConnections = "/connections"      // "My connections"
	PathDisconnect  = "/connections/disconnect"
)

// Options are what the gateway hands the connect service.
type Options struct {
	// Issuer is Mandate's public URL (the pages' origin).
	Issuer string
	// Auth is the authorization server: the browser sign-in of the pages.
	Auth *authserver.Server
	// Connector returns the Connector of an upstream whose flow is
	// authorization_code in the configuration in force (false otherwise).
	Connector func(upstream string) (credentials.Connector, bool)
	// Upstreams lists the upstreams shown on "My connections" (in the
	// configuration in force): name and whether it uses per-user grants.
	Upstreams func() []string
	Store     store.Store
	// OnChange is called on this replica when a user's grant at an
	// upstream was created, replaced or removed on ANY replica (the
	// gateway drops cached platform tokens: credentials.Broker purge).
	OnChange func(issuer, subject, upstream string)
	Audit    func(ctx context.Context, r *audit.Record)
	Logger   *slog.Logger
	// StateKey (32 bytes) seals link tickets and callback state.
	StateKey []byte
	Now      func() time.Time
}
