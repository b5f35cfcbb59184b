// Package entraidp is an OpenID provider shaped like Microsoft Entra ID's v2
// endpoints, for tests (Entra itself cannot run here). It follows
// Microsoft's public documentation, cited next to each behaviour:
//
//   - [v2-protocols-oidc]: issuer <base>/<tenant id>/v2.0, discovery at
//     <issuer>/.well-known/openid-configuration, JWKS at
//     <base>/<tenant id>/discovery/v2.0/keys, endpoints
//     <base>/<tenant id>/oauth2/v2.0/{authorize,token}; no
//     code_challenge_methods_supported in the discovery document (Entra
//     publishes none).
//   - [reference-error-codes], [MCP #1389]: the v2 authorization endpoint
//     refuses the RFC 8707 resource parameter with AADSTS901002.
//   - [scopes-oidc]: an access token is for the resource named by a scope
//     (api://<app id>/.default — the app's configured permissions — or
//     api://<app id>/<permission>); with only OIDC scopes it is for
//     Microsoft Graph, which nobody else can verify; a refresh token only
//     with offline_access.
//   - [v2-oauth2-auth-code-flow]: authorization code with PKCE (S256 or
//     plain), client_secret_post or client_secret_basic, the refresh grant
//     (scope optional; a new refresh token each time, the old one not
//     revoked), error bodies with error_codes, trace_id, correlation_id.
//   - [access-token-claims-reference], [access-tokens]: v2 access tokens:
//     iss <base>/<tid>/v2.0, aud = the API's application (client) id GUID,
//     scp space-separated, oid, tid, sub pairwise (differs from oid, unique
//     per application), preferred_username, name, azp, ver "2.0"; no
//     email_verified.
//   - [id-token-claims-reference]: ID tokens with aud = the client id and
//     the request's nonce.
//   - [v2-oauth2-on-behalf-of-flow]: the On-Behalf-Of grant
//     (urn:ietf:params:oauth:grant-type:jwt-bearer,
//     requested_token_use=on_behalf_of): the assertion must be an access
//     token this tenant issued for the calling app (aud = its client id).
//
// Users sign in with login_hint (their UPN or its local part); without it
// the authorization endpoint shows a plain HTML picker (a GET form).
//
// Every request the endpoints receive is recorded ([IdP.Requests]; client
// secrets redacted) so tests can assert what a client sent, and every token
// issued ([IdP.Issued]).
//
// Usage:
//
//	idp, err := entraidp.Start(entraidp.Options{Apps: []entraidp.App{{
//		ClientID: mandateID, Secret: "s", RedirectURIs: []string{cb}, Scopes: []string{"access_as_user"}}}})
//	if err != nil { … }
//	defer idp.Close()
//	// identity.issuer = idp.Issuer(); identity.audience = mandateID;
//	// idp scopes: openid profile email offline_access api://<mandateID>/.default
//
// This package must not import "testing": test helpers of other packages
// use it.
//
// [v2-protocols-oidc]: https://learn.microsoft.com/entra/identity-platform/v2-protocols-oidc
// [reference-error-codes]: https://learn.microsoft.com/entra/identity-platform/reference-error-codes
// [MCP #1389]: https://github.com/modelcontextprotocol/modelcontextprotocol/issues/1389
// [scopes-oidc]: https://learn.microsoft.com/entra/identity-platform/scopes-oidc
// [v2-oauth2-auth-code-flow]: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-auth-code-flow
// [access-token-claims-reference]: https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference
// [access-tokens]: https://learn.microsoft.com/entra/identity-platform/access-tokens
// [id-token-claims-reference]: https://learn.microsoft.com/entra/identity-platform/id-token-claims-reference
// [v2-oauth2-on-behalf-of-flow]: https://learn.microsoft.com/entra/identity-platform/v2-oauth2-on-behalf-of-flow
package entraidp
