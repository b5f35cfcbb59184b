package nodetools

import (
	"os"
	"path/filepath"
	"sync"
)

// Environment variables naming the tools; .ci/test.sh exports them.
const (
	EnvE2E              = "MANDATE_E2E"
	EnvNode22Bin        = "MANDATE_NODE22_BIN"
	EnvInspector        = "MANDATE_INSPECTOR"
	EnvConformance      = "MANDATE_CONFORMANCE"
	EnvEverythingServer = "MANDATE_EVERYTHING_SERVER"
	EnvHydra            = "MANDATE_HYDRA_BIN"
	EnvTSSDK            = "MANDATE_TS_SDK"
	EnvPuppeteer        = "MANDATE_PUPPETEER"
	EnvChromium         = "MANDATE_CHROMIUM"
)

// SetupCommand is what a developer runs to install every tool.
const SetupCommand = "bash .ci/test.sh"

// Default locations relative to the repository root, used when the
// environment variable is unset.
const (
	defaultNode22Bin        = ".tools/node22/bin"
	defaultInspector        = ".tools/npm/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js"
	defaultConformance      = ".tools/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js"
	defaultEverythingServer = ".tools/bin/everything-server"
	defaultHydra            = "bin/hydra"
	defaultTSSDK            = ".tools/npm/node_modules/@modelcontextprotocol/sdk"
	defaultPuppeteer        = ".tools/npm/node_modules/puppeteer-core"
	defaultChromium         = "/usr/bin/chromium" // the Debian package
)

// E2E reports whether MANDATE_E2E=1: missing tools are then failures, not skips.
func E2E() bool { return os.Getenv(EnvE2E) == "1" }

// Node22Dir returns the directory holding Node 22's node binary.
func Node22Dir() (string, bool) {
	dir := lookup(EnvNode22Bin, defaultNode22Bin)
	if dir == "" || !isExec(filepath.Join(dir, "node")) {
		return dir, false
	}
	return dir, true
}

// Node22 returns the path of Node 22's node binary.
func Node22() (string, bool) {
	dir, ok := Node22Dir()
	return filepath.Join(dir, "node"), ok
}

// Inspector returns the path of the mcp-inspector CLI script (run it with
// Node 22; see RunInspector).
func Inspector() (string, bool) { return file(EnvInspector, defaultInspector) }

// Conformance returns the path of the conformance CLI script (run it with
// Node 22: `node PATH server --url URL`).
func Conformance() (string, bool) { return file(EnvConformance, defaultConformance) }

// TSSDK returns the directory of the official TypeScript SDK package
// (@modelcontextprotocol/sdk; RunTSClient imports its client from there).
func TSSDK() (string, bool) {
	p := lookup(EnvTSSDK, defaultTSSDK)
	if p == "" {
		return "", false
	}
	st, err := os.Stat(filepath.Join(p, "dist", "esm", "client", "index.js"))
	return p, err == nil && st.Mode().IsRegular()
}

// Puppeteer returns the directory of the puppeteer-core package (it drives
// Chromium over the DevTools protocol; it never downloads a browser).
func Puppeteer() (string, bool) {
	p := lookup(EnvPuppeteer, defaultPuppeteer)
	if p == "" {
		return "", false
	}
	st, err := os.Stat(filepath.Join(p, "package.json"))
	return p, err == nil && st.Mode().IsRegular()
}

// Chromium returns the path of the Chromium binary (Debian package
// chromium; MANDATE_CHROMIUM overrides).
func Chromium() (string, bool) {
	p := os.Getenv(EnvChromium)
	if p == "" {
		p = defaultChromium
	}
	return p, isExec(p)
}

// EverythingServer returns the path of go-sdk's conformance everything-server
// binary (`-http 127.0.0.1:PORT -stateless=false`).
func EverythingServer() (string, bool) {
	p := lookup(EnvEverythingServer, defaultEverythingServer)
	return p, p != "" && isExec(p)
}

// Hydra returns the path of the Ory Hydra binary.
func Hydra() (string, bool) {
	p := lookup(EnvHydra, defaultHydra)
	return p, p != "" && isExec(p)
}

// RepoRoot returns the repository root (the nearest directory above the
// working directory holding go.mod), or "" if there is none.
func RepoRoot() string {
	rootOnce.Do(func() {
		dir, err := os.Getwd()
		if err != nil {
			return
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				root = dir
				return
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return
			}
			dir = parent
		}
	})
	return root
}

var (
	rootOnce sync.Once
	root     string
)

func lookup(env, def string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	if r := RepoRoot(); r != "" {
		return filepath.Join(r, def)
	}
	return ""
}

func file(env, def string) (string, bool) {
	p := lookup(env, def)
	if p == "" {
		return "", false
	}
	st, err := os.Stat(p)
	return p, err == nil && st.Mode().IsRegular()
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0
}
