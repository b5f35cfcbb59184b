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

//go:embed testdata/connect.mjs
var connectScript []byte

// BrowserConnectOptions configure RunBrowserConnect.
type BrowserConnectOptions struct {
	// Link is the "connect your account" URL (a URL elicitation's).
	Link string
	// User is picked on every user picker (the IdP's, the platform's).
	User string
	// ConnectionsURL, when set, is opened after the link ("My connections").
	ConnectionsURL string
	// ScreenshotDir, when set, receives connect-consent.png (the
	// platform's consent page), connect-done.png and connections.png.
	ScreenshotDir string
}

// BrowserPage is one page the browser showed.
type BrowserPage struct {
	URL       string `json:"url"`
	Status    int    `json:"status"`
	Title     string `json:"title"`
	Forms     int    `json:"forms"`
	HasScript bool   `json:"hasScript"`
	Text      string `json:"text"`
}

// BrowserConnectOutput is where the browser went.
type BrowserConnectOutput struct {
	// Pages are the origin+path of every page loaded.
	Pages []string `json:"pages"`
	// Pickers counts the user pickers used; Consents the consent pages
	// allowed (origin+path, title, whether they had a script).
	Pickers  int           `json:"pickers"`
	Consents []BrowserPage `json:"consents"`
	// Final is the page the link ended on; Connections "My connections".
	Final       *BrowserPage `json:"final"`
	Connections *BrowserPage `json:"connections"`
	Error       string       `json:"error"`
}

// RunBrowserConnect opens a connect link in headless Chromium
// (MANDATE_CHROMIUM) driven by puppeteer-core (MANDATE_PUPPETEER) under
// Node 22 (testdata/connect.mjs): user pickers, consent pages (Allow), the
// final page, then My connections.
func RunBrowserConnect(ctx context.Context, o BrowserConnectOptions) (*BrowserConnectOutput, error) {
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
	dir, err := os.MkdirTemp("", "mandate-connect-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "connect.mjs")
	if err := os.WriteFile(script, connectScript, 0o600); err != nil {
		return nil, err
	}
	cfg, err := json.Marshal(map[string]string{
		"chromium": chromium, "link": o.Link, "user": o.User, "connectionsUrl": o.ConnectionsURL,
		"screenshotDir": o.ScreenshotDir, "userDataDir": filepath.Join(dir, "profile"),
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
	var out BrowserConnectOutput
	if err := json.Unmarshal(lastLine(stdout.Bytes()), &out); err != nil {
		return nil, fmt.Errorf("browser connect: %v (output not JSON: %v)\nstderr: %.2000s", runErr, err, strings.TrimSpace(stderr.String()))
	}
	if runErr != nil || out.Error != "" {
		return &out, fmt.Errorf("browser connect: %v: %s\npages: %v\nstderr: %.2000s", runErr, out.Error, out.Pages, strings.TrimSpace(stderr.String()))
	}
	return &out, nil
}
