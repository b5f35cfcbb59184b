package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/gateway/audit"
)

// The tour's questions: tools the tour calls as every user.
const (
	ToolPipeline  = "salesforce_my_pipeline"
	ToolIncidents = "servicenow_my_incidents"
	ToolArticles  = "kb_search_articles"
	ToolLogCall   = "salesforce_log_call"
	ToolUpdate    = "servicenow_update_incident"
	// UpdateIncident is the incident every user tries to change.
	UpdateIncident = "INC0010001"
)

// Answer is what one user got for one question.
type Answer struct {
	// Items are the records the user saw (opportunity names, incident
	// numbers, article ids; for the update, the incident changed).
	Items []string
	// Denied is true when the gateway answered as for an unknown tool:
	// policy hides the tool from this user and refuses the call.
	Denied bool
	// Error is any other failure (a tool error or a JSON-RPC error).
	Error string
}

// UserView is everything one user saw on the tour.
type UserView struct {
	User User
	// Tools are the tool names tools/list showed the user, sorted.
	Tools []string
	// Pipeline, LogCall, Incidents, Articles and Update answer the tour's
	// questions. LogCall logs a call on the user's first open opportunity;
	// Update assigns UpdateIncident to the user, with a work note.
	Pipeline, LogCall, Incidents, Articles, Update Answer
}

// builtin is ToolsByUpstream's key for the gateway's own tools (whoami).
const builtin = ""

// ToolsByUpstream counts v.Tools per upstream (the namespace before "_");
// the gateway's own un-namespaced tools count under "".
func (v UserView) ToolsByUpstream() map[string]int {
	m := map[string]int{}
	for _, t := range v.Tools {
		ns, _, ok := strings.Cut(t, "_")
		if !ok {
			ns = builtin
		}
		m[ns]++
	}
	return m
}

// TourResult is the outcome of a tour: one view per user, in Users order,
// and the audit records the tour produced.
type TourResult struct {
	MCPURL    string
	AuditPath string
	Views     []UserView
	// Connect is the connect scene (rita and the tracker), when the demo
	// has the tracker upstream.
	Connect *ConnectStory
	Audit   []audit.Record
}

// Tour starts the demo (opts as for Start; zero ports are free ports), runs
// the scripted tour through the gateway as every demo user, writes the
// side-by-side comparison and the audit lines to w, and stops the demo.
func Tour(ctx context.Context, opts Options, w io.Writer) error {
	d, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	res, err := d.Tour(ctx)
	if cerr := d.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// The audit file is complete once the gateway is closed.
	if res.Audit, err = ReadAudit(d.AuditPath); err != nil {
		return err
	}
	return RenderTour(w, res)
}

// Tour runs the scripted questions through the running demo's gateway with
// the go-sdk client, one session per user, users one after another (so the
// audit log is in a stable order). It reads the audit log produced so far.
func (d *Demo) Tour(ctx context.Context) (*TourResult, error) {
	res := &TourResult{MCPURL: d.MCPURL, AuditPath: d.AuditPath}
	for _, u := range d.Users {
		v, err := d.tourUser(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("tour as %s: %w", u.Name, err)
		}
		res.Views = append(res.Views, v)
	}
	if d.trackerConfigured() {
		rita, _ := d.User("rita")
		st, err := d.ConnectTracker(ctx, rita)
		if err != nil {
			return nil, fmt.Errorf("connect scene as rita: %w", err)
		}
		res.Connect = st
	}
	var err error
	res.Audit, err = ReadAudit(d.AuditPath)
	return res, err
}

// Connect opens an MCP session to the gateway as u.
func (d *Demo) Connect(ctx context.Context, u User) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mandate-demo-tour", Version: gateway.Version}, nil)
	hc := &http.Client{Transport: bearer{token: u.Token, next: http.DefaultTransport}, Timeout: 30 * time.Second}
	return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.MCPURL, HTTPClient: hc}, nil)
}

func (d *Demo) tourUser(ctx context.Context, u User) (UserView, error) {
	v := UserView{User: u}
	cs, err := d.Connect(ctx, u)
	if err != nil {
		return v, err
	}
	defer cs.Close()
	for t, err := range cs.Tools(ctx, nil) {
		if err != nil {
			return v, fmt.Errorf("tools/list: %w", err)
		}
		v.Tools = append(v.Tools, t.Name)
	}
	sort.Strings(v.Tools)

	var pipe struct {
		Opportunities []struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"opportunities"`
	}
	v.Pipeline = call(ctx, cs, ToolPipeline, map[string]any{}, &pipe, func() []string {
		var s []string
		for _, o := range pipe.Opportunities {
			s = append(s, o.Name)
		}
		return s
	})
	// A write as the user, on a record of their own: Salesforce checks the
	// user's edit access (a user without a pipeline is refused by policy
	// before any call; the id is then a placeholder).
	opp, oppName := "006000000000001AAA", ""
	if len(pipe.Opportunities) > 0 {
		opp, oppName = pipe.Opportunities[0].ID, pipe.Opportunities[0].Name
	}
	v.LogCall = call(ctx, cs, ToolLogCall, map[string]any{"what_id": opp, "subject": "Call with the customer (Mandate demo tour)",
		"description": "Logged by " + u.Name + " through Mandate."}, nil, func() []string { return []string{oppName} })
	var inc struct {
		Records []map[string]any `json:"records"`
	}
	// Every incident the user may read (my_incidents defaults to the
	// active ones assigned to them), listed by number.
	v.Incidents = call(ctx, cs, ToolIncidents, map[string]any{"relation": "any", "active_only": false}, &inc, func() []string {
		var s []string
		for _, r := range inc.Records {
			s = append(s, fmt.Sprint(r["number"]))
		}
		slices.Sort(s)
		return s
	})
	var kb SearchOutput
	v.Articles = call(ctx, cs, ToolArticles, map[string]any{}, &kb, func() []string {
		var s []string
		for _, a := range kb.Articles {
			s = append(s, a.ID)
		}
		return s
	})
	v.Update = call(ctx, cs, ToolUpdate, map[string]any{"number": UpdateIncident, "assigned_to": u.Email,
		"work_notes": "Taken by " + u.Name + " on the Mandate demo tour."}, nil,
		func() []string { return []string{UpdateIncident} })
	return v, nil
}

// call runs one tool and decodes its structured content into out.
func call(ctx context.Context, cs *mcp.ClientSession, name string, args map[string]any, out any, items func() []string) Answer {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) && je.Code == jsonrpc.CodeInvalidParams && strings.HasPrefix(je.Message, "unknown tool") {
			return Answer{Denied: true}
		}
		return Answer{Error: err.Error()}
	}
	if res.IsError {
		var msg []string
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				msg = append(msg, t.Text)
			}
		}
		return Answer{Error: strings.Join(msg, " ")}
	}
	if out != nil {
		raw, err := json.Marshal(res.StructuredContent)
		if err == nil {
			err = json.Unmarshal(raw, out)
		}
		if err != nil {
			return Answer{Error: "unexpected result: " + err.Error()}
		}
	}
	return Answer{Items: items()}
}

// ReadAudit reads the records of an audit log file (JSON lines).
func ReadAudit(path string) ([]audit.Record, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var recs []audit.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		if len(strings.TrimSpace(sc.Text())) == 0 {
			continue
		}
		var r audit.Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s: line %d: %w", path, len(recs)+1, err)
		}
		recs = append(recs, r)
	}
	return recs, sc.Err()
}

// bearer adds the user's token to every request to the gateway.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// RenderTour writes the side-by-side table and the audit lines of res.
func RenderTour(w io.Writer, res *TourResult) error {
	bw := &errWriter{w: w}
	fmt.Fprintf(bw, "Mandate demo tour: four users ask the same questions through one MCP endpoint,\n")
	fmt.Fprintf(bw, "%s. Mandate calls Salesforce, ServiceNow and kb as each user (never with a\n", res.MCPURL)
	fmt.Fprintf(bw, "shared account), so every platform applies its own sharing rules; policy hides what a user may not use.\n\n")

	header := []cell{{"", "question"}}
	rows := [][]cell{{{"email"}}, {{"roles (IdP)"}}, {{"tools/list"}}, {{ToolPipeline}}, {{ToolLogCall, "  on my first opportunity"}},
		{{ToolIncidents}}, {{ToolArticles}}, {{ToolUpdate, "  assign " + UpdateIncident + " to me"}}}
	for _, v := range res.Views {
		header = append(header, cell{v.User.Name, v.User.About})
		roles := strings.Join(v.User.Roles, ", ")
		if roles == "" {
			roles = "(none)"
		}
		rows[0] = append(rows[0], cell{v.User.Email})
		rows[1] = append(rows[1], cell{roles})
		tools := cell{fmt.Sprintf("%d tools:", len(v.Tools))}
		by := v.ToolsByUpstream()
		var ns []string
		for k := range by {
			ns = append(ns, k)
		}
		sort.Slice(ns, func(i, j int) bool { // upstreams, then the gateway's own tools
			if (ns[i] == builtin) != (ns[j] == builtin) {
				return ns[j] == builtin
			}
			return ns[i] < ns[j]
		})
		for _, k := range ns {
			if k == builtin {
				tools = append(tools, "  whoami (built-in)")
				continue
			}
			tools = append(tools, fmt.Sprintf("  %s %d", k, by[k]))
		}
		rows[2] = append(rows[2], tools)
		rows[3] = append(rows[3], answerCell(v.Pipeline, "no open opportunities"))
		logged := answerCell(v.LogCall, "")
		if !v.LogCall.Denied && v.LogCall.Error == "" {
			logged = cell{"logged on"}
			for _, it := range v.LogCall.Items {
				logged = append(logged, "  "+it)
			}
		}
		rows[4] = append(rows[4], logged)
		rows[5] = append(rows[5], answerCell(v.Incidents, "no incidents visible"))
		rows[6] = append(rows[6], answerCell(v.Articles, "no articles"))
		up := answerCell(v.Update, "")
		if !v.Update.Denied && v.Update.Error == "" {
			up = cell{"assigned " + UpdateIncident}
		}
		rows[7] = append(rows[7], up)
	}
	writeTable(bw, header, rows)
	if res.Connect != nil {
		renderConnect(bw, res.Connect)
	}

	fmt.Fprintf(bw, "\nAudit log %s — %d records from this tour; the tool calls:\n", res.AuditPath, len(res.Audit))
	var lines [][]cell
	lines = append(lines, []cell{{"seq"}, {"user (IdP identity)"}, {"tool"}, {"decision (rule)"}, {"platform identity (flow)"}, {"outcome"}})
	for _, r := range res.Audit {
		if r.Method != "tools/call" {
			continue
		}
		lines = append(lines, []cell{{fmt.Sprint(r.Seq)}, {auditUser(r)}, {r.Upstream + "/" + r.Tool}, {auditDecision(r)}, {auditPlatform(r)}, {auditOutcome(r)}})
	}
	writeTable(bw, lines[0], lines[1:])
	others := map[string]int{}
	for _, r := range res.Audit {
		if r.Method != "tools/call" {
			others[r.Method]++
		}
	}
	if len(others) > 0 {
		var parts []string
		for _, m := range slices.Sorted(maps.Keys(others)) {
			parts = append(parts, fmt.Sprintf("%d %s", others[m], m))
		}
		fmt.Fprintf(bw, "(also %s; each record carries the request, session and trace ids and a hash chain: `go run ./cmd/mandate audit verify %s`)\n", strings.Join(parts, ", "), res.AuditPath)
	}
	return bw.err
}

func auditUser(r audit.Record) string {
	s := r.User.Subject
	if r.User.Email != "" {
		s += " <" + r.User.Email + ">"
	}
	return s
}

func auditDecision(r audit.Record) string {
	if r.Decision == nil {
		return "-"
	}
	eff := "deny"
	if r.Decision.Allow {
		eff = "allow"
	}
	rule := r.Decision.Rule
	if rule == "" {
		rule = "default"
	}
	return eff + " (" + rule + ")"
}

// auditOutcome is the outcome, with the error class of an error (a call
// whose user must connect first: "error (consent_required)").
func auditOutcome(r audit.Record) string {
	if r.Outcome == audit.OutcomeError && r.ErrorClass != "" {
		return r.Outcome + " (" + r.ErrorClass + ")"
	}
	return r.Outcome
}

func auditPlatform(r audit.Record) string {
	c := r.Credential
	if c == nil || c.Flow == "" {
		return "-"
	}
	who := c.PlatformSubject
	if c.ServiceAccount {
		who = "service account " + who
	}
	return who + " (" + c.Flow + ")"
}

func answerCell(a Answer, empty string) cell {
	switch {
	case a.Denied:
		return cell{"denied (unknown tool)"}
	case a.Error != "":
		msg := a.Error
		if len(msg) > 60 {
			msg = msg[:57] + "..."
		}
		return cell{"error: " + msg}
	case len(a.Items) == 0:
		return cell{"(" + empty + ")"}
	}
	return cell(a.Items)
}

// cell is one table cell: one or more lines.
type cell []string

// writeTable writes rows under header, columns padded to their widest line,
// a rule under the header.
func writeTable(w io.Writer, header []cell, rows [][]cell) {
	all := append([][]cell{header}, rows...)
	var widths []int
	for _, r := range all {
		for i, c := range r {
			for len(widths) <= i {
				widths = append(widths, 0)
			}
			for _, l := range c {
				widths[i] = max(widths[i], len([]rune(l)))
			}
		}
	}
	printRow := func(r []cell) {
		height := 0
		for _, c := range r {
			height = max(height, len(c))
		}
		for j := range height {
			var b strings.Builder
			for i, c := range r {
				l := ""
				if j < len(c) {
					l = c[j]
				}
				if i < len(r)-1 {
					l += strings.Repeat(" ", widths[i]-len([]rune(l))+2)
				}
				b.WriteString(l)
			}
			fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
		}
	}
	printRow(header)
	var rule []string
	for _, n := range widths {
		rule = append(rule, strings.Repeat("-", n))
	}
	fmt.Fprintln(w, strings.Join(rule, "  "))
	for _, r := range rows {
		printRow(r)
	}
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
