package nodetools

import (
	"context"
	_ "embed"
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
	var out BrowserConnectOutput
	err := runPuppeteer(ctx, "browser connect", "connect.mjs", connectScript, map[string]string{
		"link": o.Link, "user": o.User, "connectionsUrl": o.ConnectionsURL, "screenshotDir": o.ScreenshotDir,
	}, &out, func() (string, []string) { return out.Error, out.Pages })
	if err != nil && out.Pages == nil && out.Error == "" {
		return nil, err
	}
	return &out, err
}
