// Package e2e holds end-to-end tests of the real mandate binary: it is built
// with `go build ./cmd/mandate`, started as a separate process on a loopback
// port with a configuration file, and driven by real clients — the MCP
// Inspector CLI under Node 22 (see internal/testenv/nodetools) and go-sdk's client —
// with tokens from the real zitadel OP of internal/app/devidp.
//
// The package has no non-test code. Its test harness (harness_test.go) is
// for further e2e tests in this package:
//
//	idp := startIdP(t)                                  // devidp, closed at cleanup
//	m := startMandate(t, baseConfig(idp.Issuer()))      // {{ADDR}}/{{URL}} filled in
//	tok := token(t, idp, "alice", m.MCPURL)             // aud = m.MCPURL, scope mcp
//	... m.URL, m.MCPURL, m.Logs() ...
//	code := m.Stop(t)                                   // SIGTERM, wait, exit code
//
// Tests that need the Node tools skip unless they are installed (run
// `bash .ci/test.sh` once), and fail when MANDATE_E2E=1.
package e2e
