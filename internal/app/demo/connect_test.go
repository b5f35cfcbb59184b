package demo

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/app/tracker"
	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

// requireTracker skips when the demo's gateway has no tracker upstream
// (trackerWired is false until the gateway wires per-user grants).
func requireTracker(t *testing.T, d *Demo) {
	t.Helper()
	if !d.trackerConfigured() {
		t.Skip("the demo has no tracker upstream yet: the gateway's per-user grant wiring is not in this build (trackerWired)")
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
