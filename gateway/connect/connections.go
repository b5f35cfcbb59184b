package connect

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"slices"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

// "My connections": plain server-rendered HTML (no script) listing each
// upstream that uses per-user grants with the user's connection there,
// a Connect link (the same flow as a call's link) and a Disconnect form.

var connectionsTemplate = template.Must(template.New("connections").Parse(`<h1>My connections</h1>
<p class="hint">Signed in as {{.User}}. Mandate acts as you at these platforms only with your own consent.</p>
{{range .Rows}}<h2>{{.Upstream}}</h2>
<dl>
<dt>Status</dt><dd>{{if .Broken}}<span class="bad">Not working</span> — {{.Broken}}{{else if .Connected}}<span class="ok">Connected</span>{{else}}Not connected{{end}}</dd>
{{if .Connected}}{{if .PlatformSubject}}<dt>Account</dt><dd>{{.PlatformSubject}}</dd>{{end}}
<dt>Access</dt><dd>{{if .Scope}}{{.Scope}}{{else}}(not stated){{end}}</dd>
<dt>Connected</dt><dd>{{.Created}}</dd>
<dt>Last used</dt><dd>{{if .LastUsed}}{{.LastUsed}}{{else}}never{{end}}</dd>{{end}}
</dl>
{{if .ConnectURL}}<p><a class="button" href="{{.ConnectURL}}">{{if .Connected}}Connect again{{else}}Connect{{end}}</a></p>{{end}}
{{if .Connected}}<form method="post" action="{{$.Action}}">
<input type="hidden" name="upstream" value="{{.Upstream}}">
<input type="hidden" name="csrf_token" value="{{$.CSRF}}">
<button type="submit">Disconnect</button>
</form>{{end}}
{{else}}<p>No platform here needs your own connection.</p>{{end}}
`))

type connectionsView struct {
	User, Action, CSRF string
	Rows               []connectionRow
}

type connectionRow struct {
	Upstream        string
	Connected       bool
	Broken          string
	Scope           string
	PlatformSubject string
	Created         string
	LastUsed        string
	ConnectURL      string
}

// handleConnections is the page.
func (s *Service) handleConnections(w http.ResponseWriter, r *http.Request) {
	id, ok := s.opts.Auth.BrowserIdentity(r)
	if !ok {
		s.opts.Auth.SignInThen(w, r, s.prefix+PathConnections, "")
		return
	}
	grants, err := s.opts.Store.ListGrants(r.Context(), id.Issuer, id.Subject)
	if err != nil {
		s.log.ErrorContext(r.Context(), "listing grants failed", "error", err)
		s.page(w, r, http.StatusServiceUnavailable, "Unavailable", "Mandate cannot read your connections right now. Try again in a minute.", "")
		return
	}
	v := connectionsView{User: displayName(id), Action: s.opts.Issuer + PathDisconnect, CSRF: s.opts.Auth.CSRFToken(r, csrfPurpose)}
	seen := map[string]bool{}
	for _, name := range s.opts.Upstreams() {
		conn, ok := s.opts.Connector(name)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		row := connectionRow{Upstream: name}
		digest := conn.Key(id.Issuer, id.Subject).ConfigDigest
		if i := slices.IndexFunc(grants, func(g store.Grant) bool { return g.Upstream == name }); i >= 0 {
			g := grants[i]
			s.fillRow(&row, g)
			if g.ConfigDigest != digest && !g.Broken {
				row.Broken = "the platform's configuration changed since you connected: connect again"
			}
		}
		if link, _, err := s.Link(id, name, ""); err == nil {
			row.ConnectURL = link
		}
		v.Rows = append(v.Rows, row)
	}
	// Grants at upstreams no longer configured: still shown, so the user
	// can remove them.
	for _, g := range grants {
		if seen[g.Upstream] {
			continue
		}
		seen[g.Upstream] = true
		row := connectionRow{Upstream: g.Upstream}
		s.fillRow(&row, g)
		row.Broken = "no longer used by Mandate"
		v.Rows = append(v.Rows, row)
	}
	var buf bytes.Buffer
	if err := connectionsTemplate.Execute(&buf, v); err != nil {
		s.page(w, r, http.StatusInternalServerError, "Unavailable", "Mandate could not show your connections.", "")
		return
	}
	authserver.WritePage(w, http.StatusOK, "My connections", template.HTML(buf.String()), "'self'")
}

func (s *Service) fillRow(row *connectionRow, g store.Grant) {
	row.Connected = true
	row.Scope = g.Scope
	row.PlatformSubject = g.PlatformSubject
	row.Created = when(g.CreatedAt)
	row.LastUsed = when(g.LastUsedAt)
	if g.Broken {
		row.Broken = "the platform no longer accepts it"
		if g.BrokenReason != "" {
			row.Broken += " (" + g.BrokenReason + ")"
		}
		row.Broken += ": connect again"
	}
}

func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// handleDisconnect is the Disconnect form's POST: same-site, CSRF token
// bound to the sign-in cookie, the signed-in user's own grant only.
func (s *Service) handleDisconnect(w http.ResponseWriter, r *http.Request) {
	if !s.opts.Auth.SameOriginPost(r) {
		s.page(w, r, http.StatusForbidden, "Request refused", "This request was sent from another site, so Mandate ignored it.", "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		s.page(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.", "")
		return
	}
	id, ok := s.opts.Auth.BrowserIdentity(r)
	if !ok {
		s.page(w, r, http.StatusForbidden, "Not signed in", "Your sign-in to Mandate has ended. Open My connections again.", "")
		return
	}
	if !s.opts.Auth.CheckCSRF(r, csrfPurpose, r.PostForm.Get("csrf_token")) {
		s.page(w, r, http.StatusForbidden, "Request refused", "This request does not come from the page Mandate showed in this browser, so Mandate ignored it.", "")
		return
	}
	upstream := r.PostForm.Get("upstream")
	if upstream == "" || len(upstream) > 128 {
		s.page(w, r, http.StatusBadRequest, "Bad request", "Which connection?", "")
		return
	}
	if err := s.disconnect(r, id, upstream); err != nil {
		s.log.WarnContext(r.Context(), "disconnecting failed", "upstream", upstream, "error", err)
		s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectDisconnect, User: audit.UserFromIdentity(id), Upstream: upstream,
			Outcome: audit.OutcomeError, ErrorClass: "disconnect_failed", Error: err.Error()})
		s.page(w, r, http.StatusBadGateway, "Not disconnected", "Mandate could not remove your connection to "+upstream+". Try again.", "")
		return
	}
	s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectDisconnect, User: audit.UserFromIdentity(id), Upstream: upstream,
		Credential: &audit.CredentialRef{Flow: FlowAuthorizationCode}, Outcome: audit.OutcomeOK})
	s.changed(r.Context(), id.Issuer, id.Subject, upstream)
	noStore(w)
	http.Redirect(w, r, s.opts.Issuer+PathConnections, http.StatusSeeOther)
}

// disconnect revokes (through the upstream's Connector: at the platform,
// then in the store) or, for an upstream no longer configured, deletes the
// user's grant.
func (s *Service) disconnect(r *http.Request, id *identity.Identity, upstream string) error {
	if conn, ok := s.opts.Connector(upstream); ok {
		return conn.Disconnect(r.Context(), conn.Key(id.Issuer, id.Subject))
	}
	err := s.opts.Store.DeleteGrant(r.Context(), id.Issuer, id.Subject, upstream)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}
