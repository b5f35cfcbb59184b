// Package authn authenticates the end user behind an MCP request: it
// verifies the bearer access token an MCP client presents and maps its
// claims to an identity.Identity. It is the `identity:` section of the
// configuration (Config).
//
// # Verification
//
// A token is accepted only when it is a JWT (at most MaxTokenBytes) signed
// with an algorithm of the allowlist (asymmetric only: never HS* or none)
// by a key the issuer publishes, its iss equals Config.Issuer exactly, its
// aud contains Config.Audience (by default the MCP endpoint URL), exp (and
// nbf, if present) hold within Config.ClockSkew, its JOSE typ matches
// Config.RequireTyp when set, and its scope (or scp) claim holds every
// Config.RequiredScopes. Failures are *Error values shaped for an OAuth
// bearer challenge (RFC 6750): 401 invalid_token, 403 insufficient_scope,
// 400 invalid_request, or 503 while no signing keys are loaded; their
// descriptions are meant for the client.
//
// # Keys
//
// Start discovers the JWKS (OIDC discovery, or Config.JWKSURL) and loads
// it in the background, retrying with back-off; Ready reports when keys
// are loaded. Keys are refreshed periodically; an unknown kid triggers at
// most one shared fetch per MinKeyRefreshInterval, and known keys keep
// working while the IdP is unreachable. Verifications are cached (keyed by
// the token's SHA-256, bounded by Options.CacheSize) until the token
// expires or its key is withdrawn.
//
// # Claims
//
// Config.Claims names the claims of the subject, email, roles and groups
// (dotted paths such as realm_access.roles walk nested objects; see
// Lookup and Strings); scopes come from scope, else scp (a string or a
// list, as Entra ID v2 sends them). An email-like subject claim identifies
// a user only when the token marks it verified, unless
// Config.TrustUnverifiedEmail. Config.IdentityFromClaims is that mapping,
// the one the Authenticator and `mandate explain` both use; CheckScopes
// is the required-scope check.
//
// # Usage
//
//	a := authn.New(cfg.WithDefaults(mcpURL), authn.Options{Logger: log})
//	a.Start(ctx) // loads keys in the background
//	id, aerr := a.Authenticate(ctx, r.Header.Values("Authorization"))
//	if aerr != nil {
//		w.Header().Set("WWW-Authenticate", aerr.Challenge(metadataURL, nil))
//		http.Error(w, aerr.Description, aerr.Status)
//		return
//	}
//	ctx = identity.NewContext(ctx, id)
package authn
