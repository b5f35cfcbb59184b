package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

// envUpdateScreenshot set to 1 makes TestBrowserSignInDemo write the
// consent page's screenshot to docs/images/consent.png.
const envUpdateScreenshot = "MANDATE_UPDATE_SCREENSHOT"

// TestBrowserSignInDemo: headless Chromium (the Debian package, driven by
// puppeteer-core) signs in through the real pages: Mandate's authorization
// endpoint → the demo IdP's picker (ivy chosen on the form) → Mandate's
// consent page (screenshot) → Allow → the client's redirect URI with a
// code, which Mandate redeems for a token the MCP endpoint accepts.
func TestBrowserSignInDemo(t *testing.T) {
	nodetools.Require(t, nodetools.ToolPuppeteer, nodetools.ToolChromium)
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	mu, _ := url.Parse(d.MCPURL)
	origin := mu.Scheme + "://" + mu.Host
	var as struct {
		Authorization string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
		Registration  string `json:"registration_endpoint"`
	}
	getJSON(t, origin+"/.well-known/oauth-authorization-server", &as)

	// The client's redirect URI: a page the browser can load.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	redirect := "http://" + ln.Addr().String() + "/callback"
	cb := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte("<!doctype html><title>signed in</title><p>Signed in; you can close this window.</p>"))
	}))
	cb.Listener.Close()
	cb.Listener = ln
	cb.Start()
	defer cb.Close()

	// Dynamic registration, as an AI client does.
	reg, _ := json.Marshal(map[string]any{
		"client_name": "Example AI client", "redirect_uris": []string{redirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	resp, err := http.Post(as.Registration, "application/json", bytes.NewReader(reg))
	if err != nil {
		t.Fatal(err)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&client)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || client.ClientID == "" {
		t.Fatalf("registration: HTTP %d, client_id %q", resp.StatusCode, client.ClientID)
	}

	verifier := strings.Repeat("browser-verifier-", 4)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {client.ClientID}, "redirect_uri": {redirect},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"browser-state"}, "resource": {d.MCPURL}, "scope": {"mcp"},
	}
	shot := filepath.Join(t.TempDir(), "consent.png")
	if os.Getenv(envUpdateScreenshot) == "1" {
		shot, _ = filepath.Abs(filepath.Join("..", "..", "..", "docs", "images", "consent.png"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := nodetools.RunBrowserSignIn(ctx, nodetools.BrowserOptions{
		AuthURL: as.Authorization + "?" + q.Encode(), User: "ivy", RedirectURI: redirect, Screenshot: shot,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pages: %v", out.Pages)
	if !out.Picker || out.ConsentHasScript || !strings.Contains(out.ConsentTitle, "Example AI client") {
		t.Errorf("picker shown %v, consent page title %q, script %v", out.Picker, out.ConsentTitle, out.ConsentHasScript)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 1000 {
		t.Errorf("no consent screenshot at %s: %v", shot, err)
	}
	final, _ := url.Parse(out.Final)
	if final.Query().Get("state") != "browser-state" || final.Query().Get("code") == "" {
		t.Fatalf("ended at %s", final.Redacted())
	}

	form := url.Values{"grant_type": {"authorization_code"}, "code": {final.Query().Get("code")}, "redirect_uri": {redirect},
		"client_id": {client.ClientID}, "code_verifier": {verifier}, "resource": {d.MCPURL}}
	tr, err := http.PostForm(as.Token, form)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(tr.Body).Decode(&tok)
	tr.Body.Close()
	if tr.StatusCode != 200 || tok.AccessToken == "" {
		t.Fatalf("code exchange: HTTP %d", tr.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, d.MCPURL, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`))
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	ir, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	ir.Body.Close()
	if ir.StatusCode != 200 {
		t.Errorf("initialize with the browser-issued token: HTTP %d", ir.StatusCode)
	}
}
