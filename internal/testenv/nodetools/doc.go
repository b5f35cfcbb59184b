// Package nodetools locates the external test tools that `bash .ci/test.sh`
// installs under .tools/ — Node 22, the MCP Inspector CLI
// (@modelcontextprotocol/inspector@2.12.0), the MCP conformance suite
// (@modelcontextprotocol/conformance@0.1.16), go-sdk's conformance
// everything-server and Ory Hydra — and runs the Inspector CLI against a
// gateway. It does not import testing, so it may be used from any package's
// tests (and from a TestMain).
//
// Each tool is found through its environment variable (set by .ci/test.sh),
// or else at its default place under the repository's .tools/ directory
// (so a plain `go test ./...` after one run of .ci/test.sh finds them):
//
//	MANDATE_NODE22_BIN          directory holding Node 22's `node`
//	MANDATE_INSPECTOR           mcp-inspector CLI entry point (a node script)
//	MANDATE_CONFORMANCE         conformance CLI entry point (a node script)
//	MANDATE_EVERYTHING_SERVER   go-sdk conformance/everything-server binary
//	MANDATE_HYDRA_BIN           Ory Hydra binary
//	MANDATE_TS_SDK              the @modelcontextprotocol/sdk package directory (TypeScript SDK 1.32)
//	MANDATE_PUPPETEER           the puppeteer-core package directory
//	MANDATE_CHROMIUM            Chromium (default /usr/bin/chromium, the Debian package)
//
// In tests, the Require* functions skip when a tool is missing, naming
// `bash .ci/test.sh`, unless MANDATE_E2E=1 is set (as .ci/test.sh does), in
// which case a missing tool fails the test:
//
//	func TestInspector(t *testing.T) {
//		nodetools.RequireInspector(t)
//		out, err := nodetools.RunInspector(ctx, mcpURL, token, "tools/list")
//		...
//	}
//
// RunInspector runs `mcp-inspector --cli URL --transport http --method M
// --header "Authorization: Bearer T" --format json` under Node 22, with an
// isolated HOME so no state is shared between runs, and never puts the
// token in an error it returns. RunTSClient lists tools, prompts, resources
// and resource templates with the official TypeScript SDK client (driver
// script testdata/tsclient.mjs, embedded), which validates each result
// against the MCP schema; ListKeys checks a list result as sent (the list
// is an array, never null) and returns its items' names or URIs.
//
// RunTSOAuth signs in with the TypeScript SDK client's OAuth support
// (testdata/tsoauth.mjs), headless: discovery, registration (dynamic or a
// client ID metadata document), authorization with login_hint and the
// consent form, token, tools/list, refresh. RunBrowserSignIn signs in
// through the real pages with headless Chromium driven by puppeteer-core
// (testdata/browser.mjs) and screenshots the consent page.
package nodetools
