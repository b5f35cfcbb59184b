package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway"
	"github.com/mandate-gw/mandate/internal/app/tracker"
)

// ToolMyIssues is the tracker's tool as Mandate lists it.
const ToolMyIssues = "tracker_" + tracker.ToolMyIssues

// ConnectStory is the tour's per-user grant scene: a user calls the
// tracker without a grant, is asked to connect, connects (the tour drives
// the link headlessly, as a browser would: sign-in at Mandate through the
// IdP with login_hint, consent at the tracker with decision=allow) and
// calls again.
type ConnectStory struct {
	User string
	// Asked is how the gateway asked: "URL elicitation (-32042)", "URL
	// elicitation (elicitation/create)" or "tool error".
	Asked string
	// Message is what the gateway said; Link the URL to open.
	Message, Link string
	// Steps are the pages the link went through (origin and path);
	// Final the text of the last one (it says the connection is made).
	Steps []string
	Final string
	// Issues is the retry's answer; Caller the tracker identity it names.
	Issues Answer
	Caller string
}

// trackerConfigured reports whether the running demo's gateway has the
// tracker upstream.
func (d *Demo) trackerConfigured() bool {
	return strings.Contains(string(d.Config), "\n  - name: tracker\n")
}

var linkRE = regexp.MustCompile(`https?://[^\s"'<>)]+`)

// ConnectTracker runs the connect scene as u: see ConnectStory.
func (d *Demo) ConnectTracker(ctx context.Context, u User) (*ConnectStory, error) {
	st := &ConnectStory{User: u.Name}
	origin := strings.TrimSuffix(d.MCPURL, gateway.MCPPath)
	browser := tracker.NewHeadless(u.Name)
	var openErr error
	open := func(link string) {
		st.Link = link
		p, err := browser.Open(ctx, link)
		if p != nil {
			st.Steps, st.Final = p.Steps, p.Text()
		}
		openErr = err
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "mandate-demo-tour", Version: gateway.Version}, &mcp.ClientOptions{
		Capabilities: &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}},
		ElicitationHandler: func(_ context.Context, req *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
			if req.Params.Mode != "url" {
				return &mcp.ElicitResult{Action: "decline"}, nil
			}
			st.Asked, st.Message = "URL elicitation (elicitation/create)", req.Params.Message
			open(req.Params.URL)
			if openErr != nil {
				return &mcp.ElicitResult{Action: "cancel"}, nil
			}
			return &mcp.ElicitResult{Action: "accept"}, nil
		},
	})
	hc := &http.Client{Transport: bearer{token: u.Token, next: http.DefaultTransport}, Timeout: 60 * time.Second}
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: d.MCPURL, HTTPClient: hc}, nil)
	if err != nil {
		return nil, err
	}
	defer cs.Close()

	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: ToolMyIssues, Arguments: map[string]any{}})
	var je *jsonrpc.Error
	switch {
	case err != nil && errors.As(err, &je) && je.Code == mcp.CodeURLElicitationRequired:
		var data struct {
			Elicitations []mcp.ElicitParams `json:"elicitations"`
		}
		if json.Unmarshal(je.Data, &data) != nil || len(data.Elicitations) == 0 || data.Elicitations[0].URL == "" {
			return st, fmt.Errorf("-32042 without a URL elicitation: %s", je.Data)
		}
		st.Asked, st.Message = "URL elicitation (-32042)", data.Elicitations[0].Message
		open(data.Elicitations[0].URL)
	case err != nil:
		return st, fmt.Errorf("first %s: %w", ToolMyIssues, err)
	case res.IsError:
		st.Asked = "tool error"
		for _, c := range res.Content {
			if t, ok := c.(*mcp.TextContent); ok {
				st.Message += t.Text
			}
		}
		if l := linkRE.FindString(st.Message); l != "" {
			open(l)
		}
	case st.Link == "":
		return st, fmt.Errorf("%s answered without asking %s to connect", ToolMyIssues, u.Name)
	}
	if st.Link == "" {
		return st, fmt.Errorf("%s: no link to connect in %q", ToolMyIssues, st.Message)
	}
	if lu, err := url.Parse(st.Link); err != nil || lu.Scheme+"://"+lu.Host != origin {
		return st, fmt.Errorf("the link %s is not on Mandate's origin %s", st.Link, origin)
	}
	if openErr != nil {
		return st, fmt.Errorf("opening the link: %w (pages: %s)", openErr, strings.Join(st.Steps, " → "))
	}

	var out tracker.MyIssuesOutput
	st.Issues = call(ctx, cs, ToolMyIssues, map[string]any{}, &out, func() []string {
		var s []string
		for _, i := range out.Issues {
			s = append(s, i.Key)
		}
		return s
	})
	st.Caller = out.Caller
	if out.Email != "" {
		st.Caller += " <" + out.Email + ">"
	}
	return st, nil
}

// renderConnect writes the connect scene.
func renderConnect(w *errWriter, st *ConnectStory) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("Connect once: the tracker's own authorization server does not trust the company IdP, so %s consents once.", st.User)
	p("  1. %s calls %s: asked to connect by %s:", st.User, ToolMyIssues, st.Asked)
	if st.Message != "" {
		p("       %q", st.Message)
	}
	p("       %s", elideTicket(st.Link))
	p("  2. %s opens the link (signs in at Mandate through the IdP, consents at the tracker):", st.User)
	for _, s := range st.Steps {
		p("       %s", s)
	}
	p("       final page: %q", firstSentence(st.Final))
	answer := answerCell(st.Issues, "no issues")
	p("  3. %s calls %s again, as %s: %s", st.User, ToolMyIssues, st.Caller, strings.Join(answer, ", "))
}

// elideTicket shortens the link's sealed ticket for the printout.
func elideTicket(link string) string {
	u, err := url.Parse(link)
	if err != nil || u.RawQuery == "" {
		return link
	}
	q := u.Query()
	for k, v := range q {
		if len(v) == 1 && len(v[0]) > 16 {
			q.Set(k, v[0][:8]+"…")
		}
	}
	u.RawQuery = q.Encode()
	s, _ := url.PathUnescape(u.String())
	return s
}

// firstSentence is the page text up to its first full stop after the
// heading (the pages start with a heading repeated in the title).
func firstSentence(text string) string {
	if i := strings.Index(text, ". "); i > 0 && i < 300 {
		return text[:i+1]
	}
	if len(text) > 300 {
		return text[:300] + "…"
	}
	return text
}
