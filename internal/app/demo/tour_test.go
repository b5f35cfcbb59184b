package demo

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/gateway/audit"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantTable is the side-by-side part of the tour's output: what each user
// saw. It holds no port or path, so it is exact.
const wantTable = `                            rita                      morgan                 ivy                    oscar
question                    sales rep                 sales manager          IT service desk        marketing
--------------------------  ------------------------  ---------------------  ---------------------  ----------------------
email                       rep@acme.example          manager@acme.example   it.agent@acme.example  outsider@acme.example
roles (IdP)                 sales                     sales, sales-manager   it                     (none)
tools/list                  24 tools:                 24 tools:              15 tools:              13 tools:
                              kb 2                      kb 2                   kb 2                   kb 2
                              salesforce 11             salesforce 11          servicenow 11          servicenow 9
                              servicenow 9              servicenow 9           tracker 1              tracker 1
                              tracker 1                 tracker 1              whoami (built-in)      whoami (built-in)
                              whoami (built-in)         whoami (built-in)
salesforce_my_pipeline      Acme Widgets - Renewal    Initech - Platform     denied (unknown tool)  denied (unknown tool)
                            Acme Widgets - Expansion
salesforce_log_call         logged on                 logged on              denied (unknown tool)  denied (unknown tool)
  on my first opportunity     Acme Widgets - Renewal    Initech - Platform
servicenow_my_incidents     INC0010001                INC0010003             INC0010001             (no incidents visible)
                            INC0010002                INC0010004             INC0010002
                                                      INC0010006             INC0010003
                                                                             INC0010004
                                                                             INC0010005
                                                                             INC0010006
kb_search_articles          KB0001                    KB0001                 KB0001                 KB0001
                            KB0002                    KB0002                 KB0002                 KB0002
                            KB0003                    KB0003                 KB0005
                                                      KB0004
servicenow_update_incident  denied (unknown tool)     denied (unknown tool)  assigned INC0010001    denied (unknown tool)
  assign INC0010001 to me
`

// TestTourOutput runs the tour exactly as `mandate-demo --tour` does and
// asserts what it prints: the per-user table verbatim, and one audit line
// per tool call naming both identities, the deciding rule and the outcome.
func TestTourOutput(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	dir := t.TempDir()
	start := time.Now()
	if err := Tour(testCtx(t), Options{Dir: dir}, &out); err != nil {
		t.Fatal(err)
	}
	t.Logf("tour took %v", time.Since(start))
	text := out.String()
	t.Logf("output:\n%s", text)

	before, after, ok := strings.Cut(text, wantTable)
	if !ok {
		t.Fatalf("the per-user table is not in the output; want:\n%s", wantTable)
	}
	if !strings.Contains(before, "/mcp.") || !strings.Contains(after, "Audit log "+dir+"/"+AuditFile) {
		t.Errorf("output lacks the MCP URL or the audit path")
	}

	// The audit lines: user (IdP identity) → tool → decision → platform identity → outcome.
	wantAudit := []string{
		`rita <rep@acme.example> salesforce/my_pipeline allow (sales-use-salesforce) rep@acme.example (jwt_bearer) ok`,
		`rita <rep@acme.example> salesforce/log_call allow (sales-use-salesforce) rep@acme.example (jwt_bearer) ok`,
		`rita <rep@acme.example> servicenow/my_incidents allow (everyone-reads-servicenow) rita (token_exchange) ok`,
		`rita <rep@acme.example> kb/search_articles allow (everyone-uses-kb) rita (token_exchange) ok`,
		`rita <rep@acme.example> servicenow/update_incident deny (only-it-updates-incidents) - denied`,
		`morgan <manager@acme.example> salesforce/my_pipeline allow (sales-use-salesforce) manager@acme.example (jwt_bearer) ok`,
		`morgan <manager@acme.example> salesforce/log_call allow (sales-use-salesforce) manager@acme.example (jwt_bearer) ok`,
		`morgan <manager@acme.example> servicenow/my_incidents allow (everyone-reads-servicenow) morgan (token_exchange) ok`,
		`morgan <manager@acme.example> kb/search_articles allow (everyone-uses-kb) morgan (token_exchange) ok`,
		`morgan <manager@acme.example> servicenow/update_incident deny (only-it-updates-incidents) - denied`,
		`ivy <it.agent@acme.example> salesforce/my_pipeline deny (default) - denied`,
		`ivy <it.agent@acme.example> salesforce/log_call deny (default) - denied`,
		`ivy <it.agent@acme.example> servicenow/my_incidents allow (it-uses-servicenow) ivy (token_exchange) ok`,
		`ivy <it.agent@acme.example> kb/search_articles allow (everyone-uses-kb) ivy (token_exchange) ok`,
		`ivy <it.agent@acme.example> servicenow/update_incident allow (it-uses-servicenow) ivy (token_exchange) ok`,
		`oscar <outsider@acme.example> salesforce/my_pipeline deny (default) - denied`,
		`oscar <outsider@acme.example> salesforce/log_call deny (default) - denied`,
		`oscar <outsider@acme.example> servicenow/my_incidents allow (everyone-reads-servicenow) oscar (token_exchange) ok`,
		`oscar <outsider@acme.example> kb/search_articles allow (everyone-uses-kb) oscar (token_exchange) ok`,
		`oscar <outsider@acme.example> servicenow/update_incident deny (only-it-updates-incidents) - denied`,
	}
	{ // the connect scene: rita and the tracker
		wantAudit = append(wantAudit,
			`rita <rep@acme.example> tracker/my_issues allow (everyone-uses-tracker) - error (consent_required)`,
			`rita <rep@acme.example> tracker/my_issues allow (everyone-uses-tracker) tracker-rita (authorization_code) ok`)
		for _, want := range []string{"asked to connect by URL elicitation (-32042)", "/connect/start?t=", "/authorize", "POST http",
			"Your tracker account is connected.", "as tracker-rita <rita@tracker.example>: SALES-101, SALES-104, SALES-107",
			"1 connect/grant"} {
			if !strings.Contains(after, want) {
				t.Errorf("the connect scene lacks %q", want)
			}
		}
	}
	var got []string
	row := regexp.MustCompile(`^\d+ +(.*)$`)
	space := regexp.MustCompile(` {2,}`)
	for _, l := range strings.Split(after, "\n") {
		if m := row.FindStringSubmatch(l); m != nil {
			got = append(got, space.ReplaceAllString(m[1], " "))
		}
	}
	if d := cmp.Diff(wantAudit, got); d != "" {
		t.Errorf("audit lines (-want +got):\n%s", d)
	}
	if !regexp.MustCompile(`\(also (.*, )?4 tools/list;`).MatchString(after) {
		t.Errorf("the tools/list records are not summarized")
	}
}

// TestTourRecords checks the tour's structured result: the exact record
// set each user saw and the audit records behind them.
func TestTourRecords(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	d, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := d.Tour(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Tools                                          map[string]int
		Pipeline, LogCall, Incidents, Articles, Update Answer
	}
	denied := Answer{Denied: true}
	items := func(s ...string) Answer { return Answer{Items: s} }
	want := map[string]view{
		"rita": {
			Tools:     map[string]int{"": 1, "kb": 2, "salesforce": 11, "servicenow": 9, "tracker": 1},
			Pipeline:  items("Acme Widgets - Renewal", "Acme Widgets - Expansion"),
			LogCall:   items("Acme Widgets - Renewal"), // a Task on her own opportunity, as her
			Incidents: items("INC0010001", "INC0010002"),
			Articles:  items("KB0001", "KB0002", "KB0003"),
			Update:    denied,
		},
		"morgan": {
			Tools:     map[string]int{"": 1, "kb": 2, "salesforce": 11, "servicenow": 9, "tracker": 1},
			Pipeline:  items("Initech - Platform"), // his own, not his reports'
			LogCall:   items("Initech - Platform"),
			Incidents: items("INC0010003", "INC0010004", "INC0010006"),
			Articles:  items("KB0001", "KB0002", "KB0003", "KB0004"),
			Update:    denied,
		},
		"ivy": {
			Tools:     map[string]int{"": 1, "kb": 2, "servicenow": 11, "tracker": 1},
			Pipeline:  denied,
			LogCall:   denied,
			Incidents: items("INC0010001", "INC0010002", "INC0010003", "INC0010004", "INC0010005", "INC0010006"),
			Articles:  items("KB0001", "KB0002", "KB0005"),
			Update:    items(UpdateIncident),
		},
		"oscar": {
			Tools:     map[string]int{"": 1, "kb": 2, "servicenow": 9, "tracker": 1},
			Pipeline:  denied,
			LogCall:   denied,
			Incidents: Answer{},
			Articles:  items("KB0001", "KB0002"),
			Update:    denied,
		},
	}
	got := map[string]view{}
	for _, v := range res.Views {
		got[v.User.Name] = view{v.ToolsByUpstream(), v.Pipeline, v.LogCall, v.Incidents, v.Articles, v.Update}
		if v.User.Name != "ivy" && containsTool(v.Tools, ToolUpdate) {
			t.Errorf("%s is shown %s, which policy denies them", v.User.Name, ToolUpdate)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("what each user saw (-want +got):\n%s", diff)
	}

	// Every tool call is audited with the IdP identity and, when the call
	// reached a platform, the platform identity it ran as.
	wantCred := map[string]map[string]string{ // user → upstream → platform subject
		"rita":   {"salesforce": "rep@acme.example", "servicenow": "rita", "kb": "rita"},
		"morgan": {"salesforce": "manager@acme.example", "servicenow": "morgan", "kb": "morgan"},
		"ivy":    {"servicenow": "ivy", "kb": "ivy"},
		"oscar":  {"servicenow": "oscar", "kb": "oscar"},
	}
	calls, trackerCalls := 0, 0
	for _, r := range res.Audit {
		if r.User.Issuer != d.Issuer {
			t.Errorf("audit seq %d: issuer %q, want %q", r.Seq, r.User.Issuer, d.Issuer)
		}
		if r.Method != "tools/call" {
			continue
		}
		if r.Upstream == "tracker" { // the connect scene: asked to connect, then as tracker-rita
			trackerCalls++
			ok := r.User.Subject == "rita" && r.Decision != nil && r.Decision.Allow
			if trackerCalls == 1 {
				ok = ok && r.Outcome == audit.OutcomeError && r.ErrorClass == "consent_required" && r.Credential == nil
			} else {
				ok = ok && r.Outcome == audit.OutcomeOK && r.Credential != nil && r.Credential.Flow == TrackerFlow && r.Credential.PlatformSubject == "tracker-rita"
			}
			if !ok || trackerCalls > 2 {
				t.Errorf("audit seq %d: tracker call %d: %s %s class %q credential %+v", r.Seq, trackerCalls, r.User.Subject, r.Outcome, r.ErrorClass, r.Credential)
			}
			continue
		}
		calls++
		u, _ := d.User(r.User.Subject)
		if r.User.Email != u.Email {
			t.Errorf("audit seq %d: email %q, want %q", r.Seq, r.User.Email, u.Email)
		}
		want, reached := wantCred[r.User.Subject][r.Upstream]
		if r.Tool == "update_incident" && r.User.Subject != "ivy" {
			reached = false
		}
		switch {
		case reached && (r.Outcome != audit.OutcomeOK || r.Credential == nil || r.Credential.PlatformSubject != want || r.Credential.ServiceAccount):
			t.Errorf("audit seq %d (%s %s/%s): outcome %s credential %+v, want ok as %s", r.Seq, r.User.Subject, r.Upstream, r.Tool, r.Outcome, r.Credential, want)
		case !reached && (r.Outcome != audit.OutcomeDenied || r.Decision == nil || r.Decision.Allow || r.Credential != nil):
			t.Errorf("audit seq %d (%s %s/%s): outcome %s decision %+v credential %+v, want denied without a credential", r.Seq, r.User.Subject, r.Upstream, r.Tool, r.Outcome, r.Decision, r.Credential)
		}
	}
	if trackerCalls != 2 {
		t.Errorf("%d tracker calls audited, want 2 in the connect scene", trackerCalls)
	}
	if calls != 20 {
		t.Errorf("%d tools/call records, want 20 (4 users × 5 questions)", calls)
	}

	// "My pipeline" is what rita owns, though the org's sharing (Opportunity
	// Public Read Only, as in most orgs) lets her read everyone's open
	// opportunities, which soql_query shows.
	var rita User
	for _, u := range d.Users {
		if u.Name == "rita" {
			rita = u
		}
	}
	cs, err := d.Connect(ctx, rita)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	var visible struct {
		Records []struct {
			Name string `json:"Name"`
		} `json:"records"`
	}
	got2 := call(ctx, cs, "salesforce_soql_query", map[string]any{"query": "SELECT Name FROM Opportunity WHERE IsClosed = false ORDER BY CloseDate"}, &visible, func() []string {
		var s []string
		for _, r := range visible.Records {
			s = append(s, r.Name)
		}
		return s
	})
	wantVisible := items("Initech - Platform", "Acme Widgets - Renewal", "Globex - New Logo", "Acme Widgets - Expansion", "Umbrella - Enterprise")
	if diff := cmp.Diff(wantVisible, got2); diff != "" {
		t.Errorf("open opportunities rita can read (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want["rita"].Pipeline, got["rita"].Pipeline); diff != "" {
		t.Errorf("rita's pipeline is not only hers (-want +got):\n%s", diff)
	}
}

func containsTool(tools []string, name string) bool {
	for _, t := range tools {
		if t == name {
			return true
		}
	}
	return false
}
