package authserver

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

// Defaults of the lifetimes the consent page names (Config documents them).
const (
	defaultConsentTTL      = 90 * 24 * time.Hour
	defaultAccessTokenTTL  = 10 * time.Minute
	defaultRefreshTokenTTL = 30 * 24 * time.Hour
)

// consentForm is the consent form's sealed request: the client's request,
// the IdP session and user it was shown to, and the browser it was shown
// in.
type consentForm struct {
	Req     authzRequest `json:"req"`
	SID     string       `json:"sid"`
	Issuer  string       `json:"iss"`
	Subject string       `json:"sub"`
	Browser string       `json:"b"`
}

const csrfLabel = "mandate/consent-csrf"

// consentPage shows the consent page for client and the signed-in user.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request, client *clients.Client, req authzRequest, sid string, id *identity.Identity) {
	browser := cookieValue(r, s.login.cookies.browser)
	if len(browser) < 32 {
		browser = randomString(32)
	}
	sealed, err := s.login.seal.seal(sealConsent, consentForm{
		Req: req, SID: sid, Issuer: id.Issuer, Subject: id.Subject, Browser: sha256B64(browser),
	}, s.now().Add(pendingTTL))
	if err != nil {
		s.errorPage(w, r, http.StatusInternalServerError, "Sign-in failed", "Mandate could not show the consent page.", "")
		return
	}
	s.login.cookies.set(w, s.login.cookies.browser, browser, pendingTTL)
	kind, originLabel, origin := describeClient(client, req.RedirectURI)
	user := id.Subject
	if id.Email != "" {
		user = id.Email + " (" + id.Subject + ")"
	}
	v := &consentView{
		ClientName:  clientName(client),
		Kind:        kind,
		OriginLabel: originLabel,
		Origin:      origin,
		User:        user,
		Scope:       req.Scope,
		AccessTTL:   humanDuration(orDefault(s.cfg.AccessTokenTTL, defaultAccessTokenTTL)),
		RenewTTL:    humanDuration(orDefault(s.cfg.RefreshTokenTTL, defaultRefreshTokenTTL)),
		Remember:    humanDuration(s.consentTTL()),
		Unverified:  client.Kind == clients.KindDynamic,
		Action:      s.opts.Issuer + PathConsent,
		Request:     sealed,
		CSRF:        s.login.seal.mac(csrfLabel, browser),
	}
	targets := []string{"'self'"}
	if src := cspSource(req.RedirectURI); src != "" {
		targets = append(targets, src)
	}
	renderPage(w, http.StatusOK, pageData{Title: "Allow " + v.ClientName + "?", Consent: v}, targets...)
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func (s *Server) consentTTL() time.Duration { return orDefault(s.cfg.ConsentTTL, defaultConsentTTL) }

func clientName(c *clients.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

// describeClient names the kind of client and where it comes from: the
// metadata document's host (Mandate fetched it from there), else the
// origin of the redirect URI the browser will return to.
func describeClient(c *clients.Client, redirectURI string) (kind, originLabel, origin string) {
	switch c.Kind {
	case clients.KindMetadataDocument:
		kind = "metadata document"
	case clients.KindDynamic:
		kind = "registered itself"
	default:
		kind = "pre-registered by your organisation"
	}
	if c.Kind == clients.KindMetadataDocument {
		if u, err := url.Parse(c.ID); err == nil && u.Host != "" {
			return kind, "Published by", u.Host
		}
	}
	origin = redirectURI
	if u, err := url.Parse(redirectURI); err == nil {
		switch {
		case u.Scheme == "http" || u.Scheme == "https":
			origin = u.Scheme + "://" + u.Host
		case u.Scheme != "":
			origin = u.Scheme + ": (an app on your device)"
		}
	}
	return kind, "Returns you to", origin
}

// handleConsent is the consent form's POST.
func (s *Server) handleConsent(w http.ResponseWriter, r *http.Request) {
	if !s.sameOriginPost(r) {
		s.errorPage(w, r, http.StatusForbidden, "Request refused", "This approval was sent from another site, so Mandate ignored it.", "")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "The form could not be read.", "")
		return
	}
	browser := cookieValue(r, s.login.cookies.browser)
	csrf := r.PostForm.Get("csrf_token")
	if browser == "" || csrf == "" || subtle.ConstantTimeCompare([]byte(csrf), []byte(s.login.seal.mac(csrfLabel, browser))) != 1 {
		s.errorPage(w, r, http.StatusForbidden, "Request refused", "This approval does not come from the page Mandate showed in this browser, so Mandate ignored it.", "Start again from the application.")
		return
	}
	var f consentForm
	switch err := s.login.seal.open(sealConsent, r.PostForm.Get("request"), s.now(), &f); {
	case errors.Is(err, errSealExpired):
		s.errorPage(w, r, http.StatusBadRequest, "This page has expired", "The approval page was open too long. Go back to the application and connect again.", "")
		return
	case err != nil:
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "The approval form was altered or is not Mandate's.", "")
		return
	}
	if f.Browser != sha256B64(browser) {
		s.errorPage(w, r, http.StatusForbidden, "Request refused", "This approval page was shown in another browser.", "")
		return
	}
	req := f.Req
	client, cerr := s.clients.Resolve(r.Context(), req.ClientID)
	if cerr != nil || !client.RedirectAllowed(req.RedirectURI) {
		s.errorPage(w, r, http.StatusBadRequest, "Unknown application", "The application is no longer registered with Mandate.", "")
		return
	}
	user := audit.UserRef{Issuer: f.Issuer, Subject: f.Subject}
	switch r.PostForm.Get("decision") {
	case "deny":
		s.recordAuthz(r.Context(), &audit.Record{Method: audit.MethodOAuthConsent, User: user, OAuthClient: req.ClientID,
			Outcome: audit.OutcomeDenied, ErrorClass: "consent_denied", Error: "the user denied the application"})
		s.redirectError(w, r, req, oauthError{"access_denied", "the user denied the request"})
		return
	case "allow":
	default:
		s.errorPage(w, r, http.StatusBadRequest, "Bad request", "Choose Allow or Deny.", "")
		return
	}
	id, err := s.sessions.identity(r.Context(), f.SID)
	if err != nil || id.Issuer != f.Issuer || id.Subject != f.Subject {
		s.redirectError(w, r, req, oauthError{"access_denied", "the sign-in at the identity provider has ended"})
		return
	}
	now := s.now()
	if err := s.opts.Store.PutConsent(r.Context(), store.Consent{
		Issuer: f.Issuer, Subject: f.Subject, ClientID: req.ClientID, Scope: req.Scope,
		GrantedAt: now, ExpiresAt: now.Add(s.consentTTL()),
	}); err != nil {
		s.log.ErrorContext(r.Context(), "storing consent failed", "error", err)
		s.redirectError(w, r, req, oauthError{"server_error", "Mandate could not store the consent"})
		return
	}
	s.recordAuthz(r.Context(), &audit.Record{Method: audit.MethodOAuthConsent, User: audit.UserFromIdentity(id),
		OAuthClient: req.ClientID, Outcome: audit.OutcomeOK})
	s.issueCode(w, r, req, f.SID, id)
}

// sameOriginPost refuses form posts from other sites: Sec-Fetch-Site must
// be same-origin when sent; an Origin header must be Mandate's origin
// ("null", which browsers send under Referrer-Policy: no-referrer, only
// with Sec-Fetch-Site: same-origin). Clients that send neither (not a
// browser) are left to the CSRF token.
func (s *Server) sameOriginPost(r *http.Request) bool {
	site := r.Header.Get("Sec-Fetch-Site")
	if site != "" && site != "same-origin" {
		return false
	}
	origin := r.Header.Get("Origin")
	switch {
	case origin == "":
		return true
	case origin == "null":
		return site == "same-origin"
	default:
		return origin == s.origin()
	}
}

// origin is the scheme://host[:port] of the issuer.
func (s *Server) origin() string {
	u, err := url.Parse(s.opts.Issuer)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
