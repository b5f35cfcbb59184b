// Package testhydra runs a real Ory Hydra v2.3.0 on loopback for tests that
// need an RFC 7523 (JWT bearer grant) authorization server, the kind
// Salesforce, Google domain-wide delegation and ServiceNow are.
//
// The binary is built out of band by test/hydra/build.sh (a separate Go
// module, so the main module's go vet/go test never compile Hydra) into
// <repo>/bin/hydra, or named by $MANDATE_HYDRA_BIN or [Options.Binary].
//
// Start runs `hydra serve all --dev` with an in-memory database on two free
// 127.0.0.1 ports, JWT access tokens, and a random system secret, and waits
// until both the public and the admin listener report ready. Close kills it.
//
// Usage from a test helper:
//
//	if _, ok := testhydra.Available(testhydra.Options{}); !ok {
//		t.Skip("hydra binary missing: run test/hydra/build.sh")
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
// This package must not import "testing": it is also used by test helpers of
// other packages.
package testhydra
