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
	var out BrowserOutput
	err := runPuppeteer(ctx, "browser sign-in", "browser.mjs", browserScript, map[string]string{
		"authUrl": o.AuthURL, "user": o.User, "redirectUri": o.RedirectURI, "screenshot": o.Screenshot,
	}, &out, func() (string, []string) { return out.Error, out.Pages })
	if err != nil && out.Pages == nil && out.Error == "" {
		return nil, err
	}
	return &out, err
}

// runPuppeteer runs a puppeteer-core script (MANDATE_PUPPETEER) under
// Node 22 with headless Chromium (MANDATE_CHROMIUM, the Debian package) in
// a fresh profile: cfg, plus chromium and userDataDir, is its argument;
// the last line it prints, JSON, is decoded into out; failure reports the
// script's own error and the pages it saw.
func runPuppeteer(ctx context.Context, what, name string, script []byte, cfg map[string]string, out any, failure func() (string, []string)) error {
	node, ok := Node22()
	if !ok {
		return fmt.Errorf("%w: node 22 not at %s", ErrToolMissing, node)
	}
	pptr, ok := Puppeteer()
	if !ok {
		return fmt.Errorf("%w: puppeteer-core not at %q", ErrToolMissing, pptr)
	}
	chromium, ok := Chromium()
	if !ok {
		return fmt.Errorf("%w: chromium not at %q", ErrToolMissing, chromium)
	}
	dir, err := os.MkdirTemp("", "mandate-browser-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, script, 0o600); err != nil {
		return err
	}
	args := map[string]string{"chromium": chromium, "userDataDir": filepath.Join(dir, "profile")}
	for k, v := range cfg {
		args[k] = v
	}
	arg, err := json.Marshal(args)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, node, path, string(arg))
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Dir(node)+string(os.PathListSeparator)+os.Getenv("PATH"),
		"HOME="+dir,
		"MANDATE_PUPPETEER="+pptr,
	)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	if err := json.Unmarshal(lastLine(stdout.Bytes()), out); err != nil {
		return fmt.Errorf("%s: %v (output not JSON: %v)\nstderr: %.2000s", what, runErr, err, strings.TrimSpace(stderr.String()))
	}
	if msg, pages := failure(); runErr != nil || msg != "" {
		return fmt.Errorf("%s: %v: %s\npages: %v\nstderr: %.2000s", what, runErr, msg, pages, strings.TrimSpace(stderr.String()))
	}
	return nil
}
