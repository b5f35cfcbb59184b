package tracker

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// Headless is the user agent the demo's tour and tests drive the demo's
// pages with, the way the external tests do: it follows redirects
// itself (keeping cookies), adds login_hint to every request whose path
// ends in /authorize, posts a page's single <form method="post"> with its
// fields plus decision=allow, and stops at a page without a form. Pages
// must be plain HTML (no script is run). Not safe for concurrent use.
type Headless struct {
	// LoginHint is set as login_hint at every /authorize.
	LoginHint string
	// StopAt, when set, ends Open at a redirect to a URL it accepts (not
	// fetched), e.g. a client's redirect URI.
	StopAt func(*url.URL) bool
	// MaxSteps bounds the requests of one Open; default 25.
	MaxSteps int

	hc *http.Client
}

// Page is where Open ended.
type Page struct {
	// URL is the last page's URL (or the StopAt URL); Status its HTTP
	// status (0 for a StopAt URL); Body its text.
	URL    *url.URL
	Status int
	Body   string
	// Steps are the method, origin and path of every request, for
	// messages (no query: it may hold codes and states).
	Steps []string
	// Forms counts the consent forms (post forms) submitted.
	Forms int
}

// NewHeadless returns a user agent with an empty cookie jar.
func NewHeadless(loginHint string) *Headless {
	jar, _ := cookiejar.New(nil)
	return &Headless{LoginHint: loginHint, hc: &http.Client{
		Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

var (
	formRE  = regexp.MustCompile(`(?is)<form\b([^>]*)>(.*?)</form>`)
	inputRE = regexp.MustCompile(`(?is)<input\b([^>]*)>`)
	attrRE  = regexp.MustCompile(`(?s)([a-zA-Z][\w-]*)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))`)
)

func attrs(s string) map[string]string {
	m := map[string]string{}
	for _, a := range attrRE.FindAllStringSubmatch(s, -1) {
		m[strings.ToLower(a[1])] = html.UnescapeString(a[2] + a[3] + a[4])
	}
	return m
}

// postForm returns the action and fields of the page's only post form;
// ok false when the page has none; an error when it has several.
func postForm(page *url.URL, body string) (action *url.URL, fields url.Values, ok bool, err error) {
	var found [][]string
	for _, f := range formRE.FindAllStringSubmatch(body, -1) {
		if strings.EqualFold(attrs(f[1])["method"], "post") {
			found = append(found, f)
		}
	}
	switch len(found) {
	case 0:
		return nil, nil, false, nil
	case 1:
	default:
		return nil, nil, false, fmt.Errorf("%d post forms on %s, want one", len(found), page.Redacted())
	}
	action, err = page.Parse(attrs(found[0][1])["action"])
	if err != nil {
		return nil, nil, false, fmt.Errorf("form action: %w", err)
	}
	fields = url.Values{}
	for _, in := range inputRE.FindAllStringSubmatch(found[0][2], -1) {
		a := attrs(in[1])
		if a["name"] == "" || strings.EqualFold(a["type"], "submit") {
			continue
		}
		fields.Set(a["name"], a["value"])
	}
	fields.Set("decision", "allow")
	return action, fields, true, nil
}

// Open goes to target and on through sign-ins and consents until a page
// without a post form (returned; an error if its status is not 2xx).
func (h *Headless) Open(ctx context.Context, target string) (*Page, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	max := h.MaxSteps
	if max <= 0 {
		max = 25
	}
	p := &Page{}
	method, form := http.MethodGet, url.Values(nil)
	for range max {
		if h.StopAt != nil && h.StopAt(u) {
			p.URL, p.Status, p.Body = u, 0, ""
			return p, nil
		}
		if method == http.MethodGet && strings.HasSuffix(u.Path, "/authorize") && h.LoginHint != "" {
			q := u.Query()
			q.Set("login_hint", h.LoginHint)
			u.RawQuery = q.Encode()
		}
		p.Steps = append(p.Steps, method+" "+u.Scheme+"://"+u.Host+u.Path)
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
		if err != nil {
			return p, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := h.hc.Do(req)
		if err != nil {
			return p, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return p, err
		}
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			if u, err = u.Parse(loc); err != nil {
				return p, fmt.Errorf("redirect: %w", err)
			}
			method, form = http.MethodGet, nil
			continue
		}
		p.URL, p.Status, p.Body = u, resp.StatusCode, string(b)
		if resp.StatusCode < 200 || resp.StatusCode > 299 {
			return p, fmt.Errorf("%s %s: HTTP %d: %.300s", method, u.Redacted(), resp.StatusCode, textOf(p.Body))
		}
		action, fields, ok, err := postForm(u, p.Body)
		if err != nil {
			return p, err
		}
		if !ok {
			return p, nil
		}
		p.Forms++
		u, method, form = action, http.MethodPost, fields
	}
	return p, errors.New("too many steps (a redirect loop?): " + strings.Join(p.Steps, " → "))
}

var (
	tagRE     = regexp.MustCompile(`(?s)<[^>]*>`)
	nonTextRE = regexp.MustCompile(`(?is)<(style|script|title|head)\b.*?</(style|script|title|head)>`)
)

// textOf is an HTML page's visible text (no head, style or script),
// whitespace collapsed, for messages.
func textOf(s string) string {
	s = nonTextRE.ReplaceAllString(s, " ")
	return strings.Join(strings.Fields(html.UnescapeString(tagRE.ReplaceAllString(s, " "))), " ")
}

// Text returns the page's text without tags, whitespace collapsed.
func (p *Page) Text() string { return textOf(p.Body) }
