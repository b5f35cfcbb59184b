package devidp

import (
	"crypto/subtle"
	"errors"
	"html/template"
	"net/http"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// ConsentPath is the consent page of an IdP started with Options.Consent.
const ConsentPath = "/consent"

// loggedIn continues a browser authorization once userID signed in: to the
// OP's callback (a code for the client), or, with Options.Consent and not
// for Token's ticket logins, to the consent page.
func (p *IdP) loggedIn(w http.ResponseWriter, r *http.Request, id, userID string) {
	if p.consent {
		token, err := p.store.awaitConsent(id, userID)
		switch {
		case err != nil:
			p.renderLogin(w, id, "", err.Error(), http.StatusBadRequest)
			return
		case token != "":
			http.Redirect(w, r, ConsentPath+"?authRequestID="+id, http.StatusFound)
			return
		}
	}
	if err := p.store.completeLogin(id, userID); err != nil {
		p.renderLogin(w, id, "", err.Error(), http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, op.AuthCallbackURL(p.provider)(r.Context(), id), http.StatusFound)
}

// awaitConsent records that userID signed in for the authorization request
// and returns the token its consent form must carry; "" (no consent asked)
// for Token's ticket logins.
func (s *store) awaitConsent(id, userID string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[id]
	switch {
	case !ok:
		return "", errors.New("unknown or expired login request")
	case ar.done:
		return "", errors.New("this login request is already complete")
	case ar.ticketSecret != "" || ar.clientID == loginClientID:
		return "", nil
	}
	tok, err := randomID()
	if err != nil {
		return "", err
	}
	ar.userID, ar.consentToken = userID, tok
	return tok, nil
}

// consentPage is one plain form: its hidden fields plus decision=allow
// approve, decision=deny refuses.
var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>{{.Issuer}} — allow access?</title></head>
<body style="font-family:sans-serif;max-width:32em;margin:3em auto">
<h1>Allow access?</h1>
<p>Signed in as <strong>{{.User}}</strong>.</p>
<p>The application <strong>{{.Client}}</strong> asks to act as you with these permissions:</p>
<ul>{{range .Scopes}}<li><code>{{.}}</code></li>{{end}}</ul>
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<input type="hidden" name="consent" value="{{.Token}}">
<p><button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button></p>
</form></body></html>`))

// serveConsent shows the consent form (GET) and takes its decision (POST).
func (p *IdP) serveConsent(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("authRequestID")
		p.store.mu.Lock()
		ar, ok := p.store.authRequests[id]
		var data struct {
			Issuer, User, Client, Action, ID, Token string
			Scopes                                  []string
		}
		if ok && ar.consentToken != "" && !ar.done {
			data.User, data.Client, data.ID, data.Token = ar.userID, ar.clientID, id, ar.consentToken
			data.Scopes = append([]string(nil), ar.scopes...)
			if u := p.store.usersByID[ar.userID]; u != nil {
				data.User = u.Username
				if u.Email != "" {
					data.User += " (" + u.Email + ")"
				}
			}
		}
		p.store.mu.Unlock()
		if data.ID == "" {
			consentError(w, "unknown or expired consent request", http.StatusBadRequest)
			return
		}
		data.Issuer, data.Action = p.issuer, ConsentPath
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		_ = consentPage.Execute(w, data)
	case http.MethodPost:
		if err := r.ParseForm(); err != nil {
			consentError(w, "cannot parse form", http.StatusBadRequest)
			return
		}
		id, decision := r.PostForm.Get("authRequestID"), r.PostForm.Get("decision")
		if decision != "allow" && decision != "deny" {
			consentError(w, "decision must be allow or deny", http.StatusBadRequest)
			return
		}
		ar, err := p.store.decideConsent(id, r.PostForm.Get("consent"), decision == "allow")
		if err != nil {
			p.log.InfoContext(r.Context(), "consent refused", "error", err)
			consentError(w, err.Error(), http.StatusBadRequest)
			return
		}
		p.log.InfoContext(r.Context(), "consent", "subject", ar.userID, "client_id", ar.clientID, "decision", decision)
		if decision == "deny" {
			op.AuthRequestError(w, r, ar, oidc.ErrAccessDenied().WithDescription("the user denied access"), p.provider)
			return
		}
		http.Redirect(w, r, op.AuthCallbackURL(p.provider)(r.Context(), id), http.StatusFound)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// decideConsent checks the consent form's token (once: it is spent) and,
// when allowed, completes the login.
func (s *store) decideConsent(id, token string, allow bool) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[id]
	if !ok || ar.consentToken == "" || ar.done {
		return nil, errors.New("unknown, expired or already decided consent request")
	}
	if subtle.ConstantTimeCompare([]byte(ar.consentToken), []byte(token)) != 1 {
		return nil, errors.New("invalid consent form")
	}
	ar.consentToken = ""
	if allow {
		ar.done = true
		ar.authTime = time.Now()
	}
	return ar, nil
}

func consentError(w http.ResponseWriter, msg string, status int) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Consent</title></head><body><p>" +
		template.HTMLEscapeString(msg) + "</p></body></html>\n"))
}
