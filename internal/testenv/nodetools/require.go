package nodetools

import "fmt"

// TB is the part of testing.TB the Require functions use; *testing.T,
// *testing.B and *testing.F satisfy it.
type TB interface {
	Helper()
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// Tool names one external tool for Require.
type Tool string

// The tools Require knows.
const (
	ToolNode22           Tool = "node22"
	ToolInspector        Tool = "inspector"
	ToolConformance      Tool = "conformance"
	ToolEverythingServer Tool = "everything-server"
	ToolHydra            Tool = "hydra"
	ToolTSSDK            Tool = "typescript-sdk"
	ToolPuppeteer        Tool = "puppeteer-core"
	ToolChromium         Tool = "chromium"
)

// Require checks that every named tool is present. A missing tool skips the
// test with a message naming `bash .ci/test.sh`, or fails it when
// MANDATE_E2E=1. The Node tools imply Node 22.
func Require(t TB, tools ...Tool) {
	t.Helper()
	for _, tool := range tools {
		if msg := missing(tool); msg != "" {
			if E2E() {
				t.Fatalf("%s (%s=1, so this is a failure)", msg, EnvE2E)
				return
			}
			t.Skipf("%s; run `%s` once to install it (or set %s=1 to make this a failure)", msg, SetupCommand, EnvE2E)
			return
		}
	}
}

// RequireNode22 requires Node 22 and returns the directory holding node.
func RequireNode22(t TB) string {
	t.Helper()
	Require(t, ToolNode22)
	d, _ := Node22Dir()
	return d
}

// RequireInspector requires Node 22 and the Inspector CLI and returns the
// CLI's path.
func RequireInspector(t TB) string {
	t.Helper()
	Require(t, ToolInspector)
	p, _ := Inspector()
	return p
}

// RequireConformance requires Node 22 and the conformance CLI and returns
// the CLI's path.
func RequireConformance(t TB) string {
	t.Helper()
	Require(t, ToolConformance)
	p, _ := Conformance()
	return p
}

// RequireTSSDK requires Node 22 and the TypeScript SDK package (what
// RunTSClient needs) and returns the package's directory.
func RequireTSSDK(t TB) string {
	t.Helper()
	Require(t, ToolTSSDK)
	p, _ := TSSDK()
	return p
}

// RequireEverythingServer requires go-sdk's everything-server and returns
// its path.
func RequireEverythingServer(t TB) string {
	t.Helper()
	Require(t, ToolEverythingServer)
	p, _ := EverythingServer()
	return p
}

// RequireHydra requires the Ory Hydra binary and returns its path.
func RequireHydra(t TB) string {
	t.Helper()
	Require(t, ToolHydra)
	p, _ := Hydra()
	return p
}

func missing(tool Tool) string {
	var (
		p   string
		ok  bool
		env string
	)
	switch tool {
	case ToolNode22:
		p, ok = Node22Dir()
		env = EnvNode22Bin
		p += "/node"
	case ToolInspector, ToolConformance, ToolTSSDK, ToolPuppeteer:
		if msg := missing(ToolNode22); msg != "" {
			return msg
		}
		switch tool {
		case ToolInspector:
			p, ok, env = withEnv(Inspector, EnvInspector)
		case ToolConformance:
			p, ok, env = withEnv(Conformance, EnvConformance)
		case ToolPuppeteer:
			p, ok, env = withEnv(Puppeteer, EnvPuppeteer)
		default:
			p, ok, env = withEnv(TSSDK, EnvTSSDK)
		}
	case ToolEverythingServer:
		p, ok, env = withEnv(EverythingServer, EnvEverythingServer)
	case ToolHydra:
		p, ok, env = withEnv(Hydra, EnvHydra)
	case ToolChromium:
		p, ok, env = withEnv(Chromium, EnvChromium)
	default:
		return fmt.Sprintf("nodetools: unknown tool %q", tool)
	}
	if ok {
		return ""
	}
	if p == "" {
		return fmt.Sprintf("%s not found (%s unset and no repository root)", tool, env)
	}
	return fmt.Sprintf("%s not found at %s (%s)", tool, p, env)
}

func withEnv(f func() (string, bool), env string) (string, bool, string) {
	p, ok := f()
	return p, ok, env
}
