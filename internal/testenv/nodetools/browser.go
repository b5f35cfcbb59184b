package nodetools

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

//go:embed testdata/browser.mjs
var browserScript []byte

// BrowserOptions configure RunBrowserSignIn.
type BrowserOptions struct {
	// AuthURL is the authorization request to open.
	AuthURL string
	// User is picked on the IdP's picker form.
	User string
	// RedirectURI: the browser must end on a URL starting with it. Serve a
	// page there (the browser loads it).
	RedirectURI string
	// Screenshot, when set, receives a PNG of the consent page.
	Screenshot string
}

// BrowserOutput is where the browser went.
type BrowserOutput struct {
	// Pages are the origin+path of every page the browser loaded.
	Pages []string `json:"pages"`
	// Picker: the IdP's user picker was shown (and used).
	Picker           bool   `json:"picker"`
	ConsentTitle     string `json:"consentTitle"`
	ConsentHasScript bool   `json:"consentHasScript"`
	// Final is the URL the browser ended on (the redirect URI with code and state).
	Final string `json:"final"`
	Error string `json:"error"`
}

// RunBrowserSignIn signs in through the real pages with headless Chromium
// (MANDATE_CHROMIUM, the Debian package) driven by puppeteer-core
// (MANDATE_PUPPETEER) under Node 22 (testdata/browser.mjs).
func RunBrowserSignIn(ctx context.Context, o BrowserOptions) (*BrowserOutput, error) {
	node, ok := Node22()
	if !ok {
		return nil, fmt.Errorf("%w: node 22 not at %s", ErrToolMissing, node)
	}
	pptr, ok := Puppeteer()
	if !ok {
		return nil, fmt.Errorf("%w: puppeteer-core not at %q", ErrToolMissing, pptr)
	}
	chromium, ok := Chromium()
	if !ok {
		return nil, fmt.Errorf("%w: chromium not at %q", ErrToolMissing, chromium)
	}
	dir, err := os.MkdirTemp("", "mandate-browser-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "browser.mjs")
	if err := os.WriteFile(script, browserScript, 0o600); err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(map[string]string{
		"chromium": chromium, "authUrl": o.AuthURL, "user": o.User, "redirectUri": o.RedirectURI,
		"screenshot": o.Screenshot, "userDataDir": filepath.Join(dir, "profile"),
	})
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, node, script, string(cfg))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir,
		"MANDATE_PUPPETEER="+pptr,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var out BrowserOutput
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &out); err != nil {
		return nil, fmt.Errorf("browser sign-in: %v (output not JSON: %v)\nstderr: %.2000s", runErr, err, strings.TrimSpace(stderr.String()))
	}
	if runErr != nil || out.Error != "" {
		return &out, fmt.Errorf("browser sign-in: %v: %s\npages: %v\nstderr: %.2000s", runErr, out.Error, out.Pages, strings.TrimSpace(stderr.String()))
	}
	return &out, nil
}
