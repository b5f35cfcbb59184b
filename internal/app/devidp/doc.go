// Package devidp runs a real OpenID Provider in-process on a loopback
// listener: zitadel/oidc v3.52.0's op package (authorization endpoint, token
// endpoint with the authorization_code, client_credentials and RFC 8693
// token-exchange grants, JWKS, discovery, userinfo, introspection,
// revocation) over an in-memory storage of this package. Tests use it as the
// IdP and token-exchange server; `mandate-demo` uses it as the demo IdP. It
// does not import testing.
//
// Usage:
//
//	idp, err := devidp.Start(ctx, devidp.Options{})        // alice (sales), bob (support)
//	defer idp.Close()
//	tok, err := idp.Token(ctx, "alice", devidp.TokenOptions{
//		Audience: []string{"http://127.0.0.1:8080/mcp"}, Scopes: []string{"mcp"}})
//	err = idp.RegisterClient("mandate", "secret")          // may exchange tokens
//	// POST idp.TokenURL() with grant_type=urn:ietf:params:oauth:grant-type:token-exchange,
//	// subject_token=tok, subject_token_type=urn:ietf:params:oauth:token-type:access_token,
//	// requested_token_type=urn:ietf:params:oauth:token-type:access_token, audience=https://crm.internal
//
// Token shape (access tokens, every grant): a JWS signed RS256 with the key
// published at JWKSURL (kid = KeyID); iss = Issuer() exactly, which is
// "http://127.0.0.1:PORT" with no trailing slash; sub = User.ID; aud is always
// a JSON array; exp, iat, nbf, jti, client_id (the client the token was issued
// to: "devidp-login" for Token). User tokens also carry email,
// email_verified, preferred_username, name, given_name, family_name (when
// set), roles and groups (JSON string arrays, [] when empty), User.Claims,
// and scope (space-separated granted scopes; absent when none).
//
// Token exchange: the subject token must be a token of this IdP for one of
// its users. The new token has sub = that user, aud = the audience
// parameters exactly (default: the client ID), client_id = the exchanging
// client, scope = the requested scopes, the user's claims, and lifetime
// Options.ExchangeTokenLifetime. requested_token_type defaults to an access
// token (zitadel's example defaults to a refresh token; token exchange never
// issues refresh tokens here). resource parameters are not put into aud; a resource that
// is not also an audience is refused with invalid_target. Options.ExchangePolicy
// decides each request; refusals are OAuth errors with HTTP 400, a wrong client
// secret is invalid_client with HTTP 401.
//
// Cross App Access: a token exchange with requested_token_type
// urn:ietf:params:oauth:token-type:id-jag (which zitadel refuses) is
// answered by the IdP itself with an Identity Assertion JWT Authorization
// Grant: the client authenticates (basic or post), subject_token is an
// access token of this IdP (not revoked) or an ID token issued to that
// client (subject_token_type says which), audience is exactly one value,
// the resource authorization server's issuer. The JWT (typ
// oauth-id-jag+jwt, signed with the JWKS key) has iss, sub, aud = the
// audience, client_id = the requesting client, jti, iat, exp (5 minutes),
// resource and scope as requested, email; the reply has issued_token_type
// id-jag and token_type N_A. ExchangePolicy decides it as any exchange.
//
// Browser sign-in (the authorization code flow with PKCE, for clients added
// with AddClient): /authorize redirects to the login page, a plain HTML form
// (no script) that picks a user; users without a password sign in without
// one. For the demo and headless tests, an OIDC login_hint naming a
// passwordless user (its username, or its email ignoring case) signs that
// user in at once, skipping the picker: GET
// {issuer}/authorize?...&login_hint=rita. This is a development shortcut
// that only exists because these users have no password anyway — anyone
// who can reach the loopback IdP can sign in as them. A hint naming a user
// with a password only preselects them; an unknown name shows the picker
// with an error. The tokens' aud is the request's RFC 8707 resource values
// plus the client ID, or ClientConfig.Audience plus the client ID when set
// (Mandate's own client: its IdP tokens must be for the MCP URL).
// Confidential clients that were granted offline_access get a refresh
// token, rotated on every use (a used one is refused with invalid_grant);
// EndSessions revokes a user's refresh tokens, as an IdP does when a user
// is disabled.
//
// Consent (Options.Consent, for a platform's authorization server such as
// the demo tracker's): after sign-in, every browser authorization stops at
// ConsentPath, a plain HTML page naming the user, the client and the
// scopes, with exactly one <form method="post">: posting its hidden fields
// with decision=allow issues the code, decision=deny sends the client
// error=access_denied. The form carries a one-time token; a replayed or
// forged post is a 400 page. Token's programmatic logins never ask.
//
// Instances share no state (each has its own users, clients, key and port),
// so a process may run any number of them.
package devidp
