// Package testhydra runs a real Ory Hydra v2.3.0 on loopback for tests that
// need an RFC 7523 (JWT bearer grant) authorization server, the kind
// Salesforce, Google domain-wide delegation and ServiceNow are.
//
// The binary is built out of band by internal/testenv/testhydra/build/build.sh (a separate Go
// module, so the main module's go vet/go test never compile Hydra) into
// <repo>/bin/hydra, or named by $MANDATE_HYDRA_BIN or [Options.Binary].
//
// Start runs `hydra serve all --dev` with an in-memory database on two free
// 127.0.0.1 ports, JWT access tokens, and a random system secret, and waits
// until both the public and the admin listener report ready. Close kills its
// process group (internal/testenv/testproc runs it).
//
// Usage from a test helper:
//
//	if _, ok := testhydra.Available(testhydra.Options{}); !ok {
//		t.Skip("hydra binary missing: run internal/testenv/testhydra/build/build.sh")
//	}
//	h, err := testhydra.Start(ctx, testhydra.Options{})
//	if err != nil { t.Fatal(err) }
//	t.Cleanup(func() { h.Close() })
//	h.CreateClient(ctx, "broker", "s3cret-s3cret", []string{testhydra.GrantTypeJWTBearer},
//		[]string{"api"}, "client_secret_basic")
//	h.TrustIssuer(ctx, "https://mandate.example", "", []string{"api"}, publicJWK, time.Now().Add(time.Hour))
//	// Then POST grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=… to
//	// h.TokenURL() with HTTP basic client authentication. The assertion must carry
//	// iss, sub, aud = h.TokenURL(), exp (≤ 30 days after iat), iat and a fresh jti,
//	// and a kid header naming the trusted key.
//
// What Hydra v2.3.0 answers (checked by this package's tests; the
// error_description quotes with ' not "):
//
//	valid assertion                         200, JWT access token: sub = assertion sub,
//	                                        aud = [TokenURL], client_id, scp, iss = PublicURL
//	same jti again                          400 jti_known
//	aud not TokenURL                        400 invalid_grant ("… MUST contain an 'aud' …")
//	key not trusted (same kid)              400 invalid_grant ("Unable to verify the integrity …")
//	unknown kid / sub not trusted           400 invalid_grant ("No public JWK was registered …")
//	expired / no jti / no iat               400 invalid_grant
//	scope outside the trust relationship    400 invalid_scope
//	no client authentication                400 invalid_request ("Client credentials missing …")
//	wrong client secret                     401 invalid_client
//	client lacks the jwt-bearer grant type  400 unauthorized_client
//
// Start installs freshly generated 2048-bit RS256 signing keys; otherwise
// Hydra would generate 4096-bit ones on first use, taking seconds.
//
// This package must not import "testing": it is also used by test helpers of
// other packages.
package testhydra
