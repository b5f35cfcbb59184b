package authserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// The pages (error page, consent page) are plain server-rendered HTML: no
// script, one inline style block allowed by its hash, never framed, never
// cached, no referrer.

const pageCSS = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1d2330;margin:0}
main{max-width:30rem;margin:4rem auto;background:#fff;border:1px solid #dcdfe5;border-radius:10px;padding:2rem 2.25rem}
.brand{font-weight:700;letter-spacing:.04em;color:#3d4b66;margin:0 0 1.25rem;font-size:.95rem}
h1{font-size:1.3rem;line-height:1.35;margin:0 0 1.25rem}
dl{display:grid;grid-template-columns:auto 1fr;gap:.4rem 1rem;margin:0 0 1.25rem;font-size:.95rem}
dt{color:#5b6476}dd{margin:0;word-break:break-all}
.kind{display:inline-block;font-size:.75rem;background:#eef1f6;border-radius:4px;padding:.05rem .4rem;margin-left:.3rem;color:#3d4b66}
ul{padding-left:1.2rem;margin:.25rem 0 1.25rem}li{margin:.3rem 0}
.warn{background:#fff6e5;border:1px solid #f0d199;border-radius:6px;padding:.6rem .8rem;font-size:.9rem}
.hint{color:#5b6476;font-size:.9rem}
form{display:flex;gap:.75rem;margin-top:1.5rem}
button{font:inherit;padding:.55rem 1.4rem;border-radius:6px;border:1px solid #b8bfcc;background:#fff;cursor:pointer}
button.allow{background:#2456d3;border-color:#2456d3;color:#fff}
.small{color:#5b6476;font-size:.8rem;margin-top:1.25rem}
h2{font-size:1.05rem;margin:1.5rem 0 .6rem}
.ok{color:#17803d;font-weight:600}.bad{color:#b42318;font-weight:600}
a.button{display:inline-block;text-decoration:none;padding:.55rem 1.4rem;border-radius:6px;background:#2456d3;color:#fff}
`

// pageCSSHash is the CSP hash source of pageCSS.
var pageCSSHash = func() string {
	sum := sha256.Sum256([]byte(pageCSS))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}()

var pageTemplates = template.Must(template.New("layout").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} · Mandate</title><style>` + pageCSS + `</style></head>
<body><main>
<p class="brand">MANDATE</p>
{{if .Consent}}{{template "consent" .Consent}}{{else if .Body}}{{.Body}}{{else}}{{template "error" .}}{{end}}
</main></body></html>
{{define "error"}}<h1>{{.Title}}</h1>
<p>{{.Message}}</p>
{{if .Hint}}<p class="hint">{{.Hint}}</p>{{end}}{{end}}
{{define "consent"}}<h1>Allow {{.ClientName}} to use Mandate as you?</h1>
<dl>
<dt>Application</dt><dd>{{.ClientName}}<span class="kind">{{.Kind}}</span></dd>
<dt>{{.OriginLabel}}</dt><dd>{{.Origin}}</dd>
<dt>Signed in as</dt><dd>{{.User}}</dd>
</dl>
<p>If you allow it, this application can:</p>
<ul>
<li>act as you on the tools your organisation's policy allows you (scope: {{.Scope}});</li>
<li>keep that access {{.AccessTTL}} at a time, renewable for {{.RenewTTL}} without asking you again.</li>
</ul>
{{if .Unverified}}<p class="warn">This application registered itself: its name is its own claim. Allow it only if you started this sign-in from it.</p>{{end}}
<form method="post" action="{{.Action}}">
<input type="hidden" name="request" value="{{.Request}}">
<input type="hidden" name="csrf_token" value="{{.CSRF}}">
<button type="submit" name="decision" value="allow" class="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>
<p class="small">Mandate remembers your answer for {{.Remember}}.</p>{{end}}
`))

// pageData fills the layout: an error page (Title, Message, Hint), the
// consent page (Consent), or another package's page (Body, WritePage).
type pageData struct {
	Title, Message, Hint string
	Consent              *consentView
	Body                 template.HTML
}

// consentView is what the consent page shows and carries.
type consentView struct {
	ClientName, Kind, OriginLabel, Origin, User string
	Scope, AccessTTL, RenewTTL, Remember        string
	Unverified                                  bool
	Action, Request, CSRF                       string
}

// setPageHeaders sets the security headers of every page. formTargets are
// the extra CSP form-action sources (the consent form posts to Mandate,
// which then redirects to the client: browsers check the redirect
// against form-action too).
func setPageHeaders(w http.ResponseWriter, formTargets ...string) {
	h := w.Header()
	formAction := "'none'"
	if len(formTargets) > 0 {
		formAction = strings.Join(formTargets, " ")
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src "+pageCSSHash+
		"; form-action "+formAction+"; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	h.Set("Referrer-Policy", "no-referrer")
}

// renderPage writes a page with status.
func renderPage(w http.ResponseWriter, status int, d pageData, formTargets ...string) {
	var buf bytes.Buffer
	if err := pageTemplates.Execute(&buf, d); err != nil {
		http.Error(w, "page rendering failed", http.StatusInternalServerError)
		return
	}
	setPageHeaders(w, formTargets...)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// errorPage writes an error page: the browser stays at Mandate (used
// wherever redirecting would be unsafe: unknown client, unregistered
// redirect URI, broken state).
func (s *Server) errorPage(w http.ResponseWriter, r *http.Request, status int, title, message, hint string) {
	s.log.InfoContext(r.Context(), "authorization server error page", "path", r.URL.Path, "status", status, "title", title, "message", message)
	renderPage(w, status, pageData{Title: title, Message: message, Hint: hint})
}

// cspSource is the CSP source expression for a redirect URI: its origin
// for http(s), its scheme for private-use schemes (cursor:, vscode:), ""
// when it cannot be expressed safely.
func cspSource(redirectURI string) string {
	u, err := url.Parse(redirectURI)
	if err != nil || u.Scheme == "" {
		return ""
	}
	safe := func(s string) bool {
		return s != "" && !strings.ContainsAny(s, " ;,'\"\t\r\n")
	}
	switch u.Scheme {
	case "http", "https":
		if !safe(u.Host) {
			return ""
		}
		return u.Scheme + "://" + u.Host
	default:
		if !safe(u.Scheme) {
			return ""
		}
		return u.Scheme + ":"
	}
}

// humanDuration writes d for people: "10 minutes", "1 hour", "30 days".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %ss", n, one)
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	case d >= time.Minute:
		return unit(int64(d/time.Minute), "minute")
	default:
		return unit(int64(d/time.Second), "second")
	}
}

// cookieNames are the sign-in side's cookies: __Host- prefixed (Path=/)
// when Mandate is served over https without a path prefix, else scoped to
// the prefix (Mandate's pages outside /oauth — connect, My connections —
// read the sign-in too).
type cookieNames struct {
	browser string // random value binding a pending sign-in and consent form to the browser
	signIn  string // the sealed IdP session id (single sign-on for later authorizations)
	path    string
	secure  bool
}

func newCookieNames(issuer string) (cookieNames, error) {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return cookieNames{}, fmt.Errorf("authorization server issuer %q is not an absolute URL", issuer)
	}
	c := cookieNames{browser: "mandate_browser", signIn: "mandate_signin", secure: u.Scheme == "https"}
	prefix := strings.TrimSuffix(u.Path, "/")
	if c.secure && prefix == "" {
		c.browser, c.signIn, c.path = "__Host-"+c.browser, "__Host-"+c.signIn, "/"
	} else {
		c.path = prefix + "/"
	}
	return c, nil
}

func (c cookieNames) set(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: c.path, MaxAge: int(maxAge / time.Second),
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

func (c cookieNames) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: c.path, MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
	})
}

// get returns a cookie's value ("" when absent or oversized).
func cookieValue(r *http.Request, name string) string {
	c, err := r.Cookie(name)
	if err != nil || len(c.Value) > maxSealed {
		return ""
	}
	return c.Value
}
