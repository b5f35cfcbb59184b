package demo

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/internal/app/tracker"
	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

// requireTracker fails when the demo's gateway has no tracker upstream.
func requireTracker(t *testing.T, d *Demo) {
	t.Helper()
	if !d.trackerConfigured() {
		t.Fatalf("the demo's configuration has no tracker upstream (flow %s not in this build?)", TrackerFlow)
	}
}

// TestTSSDKConnectsTracker is issue 16's contract as tests outside the
// project drive it: the official TypeScript SDK client signs in to the
// demo as the user (issue 15's flow), declares capabilities.elicitation.url
// and calls tracker_my_issues → JSON-RPC error -32042 whose first
// elicitation is a url on Mandate's origin → the link, opened headlessly
// (cookie jar, login_hint at every /authorize, consent forms posted with
// decision=allow), ends on a 2xx page with no form and no script → the
// retry answers with the user's own issues naming their tracker identity.
// Ivy, connected too, never sees rita's issues.
func TestTSSDKConnectsTracker(t *testing.T) {
	nodetools.Require(t, nodetools.ToolTSSDK)
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	requireTracker(t, d)
	mu, _ := url.Parse(d.MCPURL)
	origin := mu.Scheme + "://" + mu.Host
	trackerAS, _ := url.Parse(d.TrackerIssuer)

	for _, c := range []struct{ user, own, others string }{
		{"rita", "SALES-101", "IT-311"},
		{"ivy", "IT-311", "SALES-101"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		out, err := nodetools.RunTSOAuth(ctx, nodetools.TSOAuthOptions{URL: d.MCPURL, LoginHint: c.user,
			CallTool: ToolMyIssues, SkipRefresh: true})
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", c.user, err)
		}
		t.Logf("%s steps:\n  %s", c.user, strings.Join(out.Steps, "\n  "))
		e := out.Elicitation
		if e == nil || e.Code != -32042 || e.Mode != "url" || e.ElicitationID == "" {
			t.Fatalf("%s: first call %+v / %+v, want -32042 with a URL elicitation", c.user, e, out.FirstCall)
		}
		if lu, err := url.Parse(e.URL); err != nil || lu.Scheme+"://"+lu.Host != origin {
			t.Errorf("%s: elicitation url %q is not on Mandate's origin %s", c.user, e.URL, origin)
		}
		cn := out.Connect
		if cn == nil || cn.Final == nil {
			t.Fatalf("%s: the link was not opened: %+v", c.user, cn)
		}
		t.Logf("%s link:\n  %s", c.user, strings.Join(cn.Steps, "\n  "))
		if cn.Final.Status < 200 || cn.Final.Status > 299 || cn.Final.HasForm || cn.Final.HasScript {
			t.Errorf("%s: final page %+v, want 2xx, no form, no script", c.user, cn.Final)
		}
		var atTracker bool
		for _, s := range cn.Steps {
			atTracker = atTracker || strings.Contains(s, trackerAS.Host+"/authorize")
		}
		if !atTracker || cn.Forms < 1 {
			t.Errorf("%s: the link did not go through the tracker's /authorize and its consent form (%d forms)", c.user, cn.Forms)
		}
		sub, email := tracker.Identity(c.user)
		r := out.Retry
		if r == nil || r.IsError || !strings.Contains(r.Text, sub) || !strings.Contains(r.Text, email) ||
			!strings.Contains(r.Text, c.own) || strings.Contains(r.Text, c.others) {
			t.Errorf("%s: retry %+v, want %s's own issues naming %s", c.user, r, c.user, sub)
		}
		if c.user == "ivy" && r != nil && strings.Contains(r.Text, "rita") {
			t.Errorf("ivy saw rita: %q", r.Text)
		}
	}
}

// TestTourConnectScene: the tour's connect scene — rita asked to connect
// by a URL elicitation on Mandate's origin, connected through the
// tracker's consent, then given her own issues as tracker-rita.
func TestTourConnectScene(t *testing.T) {
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	requireTracker(t, d)
	rita, _ := d.User("rita")
	st, err := d.ConnectTracker(testCtx(t), rita)
	if err != nil {
		t.Fatalf("%v (%+v)", err, st)
	}
	sub, _ := tracker.Identity("rita")
	if !strings.HasPrefix(st.Asked, "URL elicitation") || !strings.HasPrefix(st.Link, strings.TrimSuffix(d.MCPURL, "/mcp")) ||
		st.Issues.Error != "" || len(st.Issues.Items) == 0 || !strings.HasPrefix(st.Caller, sub) {
		t.Errorf("connect scene %+v", st)
	}
	var b strings.Builder
	renderConnect(&errWriter{w: &b}, st)
	for _, want := range []string{ToolMyIssues, elideTicket(st.Link), "SALES-101", sub} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("rendered scene lacks %q:\n%s", want, b.String())
		}
	}
}

// connectLink is the link Mandate answers u's first tracker_my_issues with
// (a client that declares URL elicitation gets -32042).
func connectLink(t *testing.T, d *Demo, u User) string {
	t.Helper()
	ctx := testCtx(t)
	client := mcp.NewClient(&mcp.Implementation{Name: "connect-test", Version: "1"}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}}})
	hc := &http.Client{Transport: bearer{token: u.Token, next: http.DefaultTransport}}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.MCPURL, HTTPClient: hc}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	_, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolMyIssues, Arguments: map[string]any{}})
	var je *jsonrpc.Error
	if !errors.As(err, &je) || je.Code != mcp.CodeURLElicitationRequired {
		t.Fatalf("first %s: %v, want -32042", ToolMyIssues, err)
	}
	var data struct {
		Elicitations []mcp.ElicitParams `json:"elicitations"`
	}
	if err := json.Unmarshal(je.Data, &data); err != nil || len(data.Elicitations) == 0 || data.Elicitations[0].URL == "" {
		t.Fatalf("-32042 data %s", je.Data)
	}
	return data.Elicitations[0].URL
}

// TestBrowserConnectsTracker: headless Chromium (the Debian package,
// puppeteer-core) opens the link a person gets: signs in at Mandate
// through the demo IdP's picker, picks the user at the tracker's
// authorization server, allows on its consent page (screenshot), ends on
// Mandate's page saying the account is connected (2xx, no form, no
// script; screenshot), and "My connections" shows the tracker connected
// (screenshot). MANDATE_UPDATE_SCREENSHOT=1 writes the screenshots to
// docs/images/.
func TestBrowserConnectsTracker(t *testing.T) {
	nodetools.Require(t, nodetools.ToolPuppeteer, nodetools.ToolChromium)
	t.Parallel()
	d, err := Start(testCtx(t), Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	requireTracker(t, d)
	ivy, _ := d.User("ivy")
	link := connectLink(t, d, ivy)
	shots := t.TempDir()
	if os.Getenv(envUpdateScreenshot) == "1" {
		shots, _ = filepath.Abs(filepath.Join("..", "..", "..", "docs", "images"))
	}
	origin := strings.TrimSuffix(d.MCPURL, "/mcp")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := nodetools.RunBrowserConnect(ctx, nodetools.BrowserConnectOptions{Link: link, User: "ivy",
		ConnectionsURL: origin + connect.PathConnections, ScreenshotDir: shots})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pages: %v", out.Pages)
	var trackerConsent bool
	for _, c := range out.Consents {
		trackerConsent = trackerConsent || strings.HasPrefix(c.URL, d.TrackerIssuer)
		if c.HasScript {
			t.Errorf("consent page %s has a script", c.URL)
		}
	}
	if out.Pickers < 1 || !trackerConsent {
		t.Errorf("pickers %d, consents %+v: want the tracker's consent page", out.Pickers, out.Consents)
	}
	f := out.Final
	if f == nil || !strings.HasPrefix(f.URL, origin) || f.Status < 200 || f.Status > 299 || f.Forms != 0 || f.HasScript ||
		!strings.Contains(f.Text, "connected") {
		t.Errorf("final page %+v, want Mandate's 2xx page without form or script saying the account is connected", f)
	}
	c := out.Connections
	if c == nil || c.Status != 200 || !strings.Contains(c.Text, "tracker") || c.HasScript {
		t.Errorf("My connections %+v, want the tracker listed", c)
	}
	for _, name := range []string{"connect-consent.png", "connect-done.png", "connections.png"} {
		if st, err := os.Stat(filepath.Join(shots, name)); err != nil || st.Size() < 1000 {
			t.Errorf("no screenshot %s: %v", name, err)
		}
	}
	// The call now runs as ivy's tracker identity.
	cs, err := d.Connect(testCtx(t), ivy)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var mine tracker.MyIssuesOutput
	a := call(testCtx(t), cs, ToolMyIssues, map[string]any{}, &mine, func() []string { return nil })
	if a.Error != "" || mine.Caller != "tracker-ivy" || len(mine.Issues) == 0 || mine.Issues[0].Key != "IT-311" {
		t.Errorf("after connecting in the browser: %+v %+v", a, mine)
	}
}
