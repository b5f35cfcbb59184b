package connect

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Lifetimes and names.
const (
	// LinkTTL is how long a connect link (Link) can be opened.
	LinkTTL = 10 * time.Minute
	// stateTTL bounds the time between leaving for the platform and its
	// callback.
	stateTTL = 10 * time.Minute
	// NotifyChannel carries grant changes between replicas
	// (store.Notify/Listen); the payload is a JSON array
	// [issuer, subject, upstream].
	NotifyChannel = "mandate_grants"
	// FlowAuthorizationCode is the credential flow of per-user grants, as
	// audit records name it.
	FlowAuthorizationCode = "authorization_code"

	sealTicket = "mandate/connect-ticket/v1"
	sealState  = "mandate/connect-state/v1"
	// usedStates is the UseJTI namespace of callback states (each is
	// redeemed once, on any replica).
	usedStates  = "mandate:connect-state"
	csrfPurpose = "connect/disconnect"
	// listenRetry is the pause before listening again after the
	// notification channel failed.
	listenRetry = time.Second
)

// ticket is a link's sealed content: who it was made for, for which
// upstream, and the elicitation it answers. It travels in the URL, sealed:
// nothing in it is readable there.
type ticket struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Upstream string `json:"up"`
	EID      string `json:"eid"`
	Reason   string `json:"r,omitempty"`
}

// callbackState is the platform's state parameter, sealed: the ticket's
// user and upstream, this consent's PKCE verifier, a nonce that makes it
// single-use, and the browser it is bound to.
type callbackState struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Upstream string `json:"up"`
	EID      string `json:"eid"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	Browser  string `json:"b"`
}

// Service is the connect pages. Build it with New, mount Routes (under
// the public URL's path prefix), and Run it. Safe for concurrent use.
type Service struct {
	opts   Options
	log    *slog.Logger
	now    func() time.Time
	seal   *authserver.Sealer
	prefix string // the public URL's path prefix ("" or "/x")
	origin string // scheme://host[:port] of the public URL

	// Completed, when set (before serving), is called after a user
	// connected their account at upstream through a link, with the link's
	// elicitation id (the gateway sends notifications/elicitation/complete).
	Completed func(elicitationID string, id *identity.Identity, upstream string)
}

// New builds the service.
func New(ctx context.Context, opts Options) (*Service, error) {
	_ = ctx
	if opts.Auth == nil || opts.Store == nil {
		return nil, errors.New("connect: the authorization server and the storage are required")
	}
	if opts.Connector == nil {
		opts.Connector = func(string) (credentials.Connector, bool) { return nil, false }
	}
	if opts.Upstreams == nil {
		opts.Upstreams = func() []string { return nil }
	}
	u, err := url.Parse(opts.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("connect: issuer %q is not an absolute http(s) URL", opts.Issuer)
	}
	s := &Service{opts: opts, log: opts.Logger, now: opts.Now,
		prefix: strings.TrimSuffix(u.Path, "/"), origin: u.Scheme + "://" + u.Host}
	s.opts.Issuer = strings.TrimSuffix(opts.Issuer, "/")
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.seal, err = authserver.NewSealer(opts.StateKey); err != nil {
		return nil, fmt.Errorf("connect: state key: %w", err)
	}
	return s, nil
}

// Routes are the pages to mount (paths relative to the public URL's path
// prefix).
func (s *Service) Routes() []authserver.Route {
	return []authserver.Route{
		{Method: http.MethodGet, Path: PathStart, Handler: http.HandlerFunc(s.handleStart)},
		{Method: http.MethodGet, Path: PathCallback, Handler: http.HandlerFunc(s.handleCallback)},
		{Method: http.MethodGet, Path: PathConnections, Handler: http.HandlerFunc(s.handleConnections)},
		{Method: http.MethodPost, Path: PathDisconnect, Handler: http.HandlerFunc(s.handleDisconnect)},
	}
}

// Link is the page that connects id's account at upstream: an absolute
// URL on Mandate's origin, valid LinkTTL, bound to id (the ticket in it is
// sealed: no personal data in the clear), and the elicitation id it
// carries. reason ("no_grant", "broken", "insufficient_scope") is kept for
// the audit record.
func (s *Service) Link(id *identity.Identity, upstream, reason string) (link, elicitationID string, err error) {
	if id == nil || id.Subject == "" {
		return "", "", errors.New("connect: a link needs the user it is for")
	}
	if _, ok := s.opts.Connector(upstream); !ok {
		return "", "", fmt.Errorf("connect: upstream %s does not use per-user grants", upstream)
	}
	eid := random(16)
	t, err := s.seal.Seal(sealTicket, ticket{Issuer: id.Issuer, Subject: id.Subject, Upstream: upstream, EID: eid, Reason: reason}, s.now().Add(LinkTTL))
	if err != nil {
		return "", "", fmt.Errorf("connect: sealing the link: %w", err)
	}
	return s.opts.Issuer + PathStart + "?t=" + t, eid, nil
}

// Run listens for grant changes made on any replica (this one included)
// and calls Options.OnChange for each, until ctx ends; OnChange("", "",
// "") when notifications may have been lost (every user may have changed). A failed or closed
// listener is opened again after a pause.
func (s *Service) Run(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := s.opts.Store.Listen(ctx, NotifyChannel)
		if err != nil {
			s.log.Warn("listening for grant changes failed; retrying", "error", err)
		} else {
			for p := range ch {
				if p == "" {
					// Notifications may have been lost: every user's
					// grants may have changed.
					if s.opts.OnChange != nil {
						s.opts.OnChange("", "", "")
					}
					continue
				}
				var v []string
				if json.Unmarshal([]byte(p), &v) != nil || len(v) != 3 {
					s.log.Warn("ignoring a malformed grant change notification")
					continue
				}
				if s.opts.OnChange != nil {
					s.opts.OnChange(v[0], v[1], v[2])
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(listenRetry):
		}
	}
}

// changed tells every replica (and this one, at once) that the user's
// grant at upstream changed: they drop cached platform tokens.
func (s *Service) changed(ctx context.Context, issuer, subject, upstream string) {
	if s.opts.OnChange != nil {
		s.opts.OnChange(issuer, subject, upstream)
	}
	p, _ := json.Marshal([]string{issuer, subject, upstream})
	if err := s.opts.Store.Notify(context.WithoutCancel(ctx), NotifyChannel, string(p)); err != nil {
		s.log.Error("notifying other replicas of a grant change failed; they keep cached tokens until they expire",
			"upstream", upstream, "error", err)
	}
}

// handleStart is the link: sign in, check the user is the one the link was
// made for, then off to the platform's consent.
func (s *Service) handleStart(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query().Get("t")
	var t ticket
	switch err := s.seal.Open(sealTicket, raw, s.now(), &t); {
	case errors.Is(err, authserver.ErrSealExpired):
		s.page(w, r, http.StatusBadRequest, "This link has expired",
			"Connection links work for "+humanMinutes(LinkTTL)+". Go back to your AI client and try again: it will give you a new link.", "")
		return
	case err != nil:
		s.page(w, r, http.StatusBadRequest, "This link is not valid",
			"The link is incomplete or was altered. Go back to your AI client and try again.", "")
		return
	}
	id, ok := s.opts.Auth.BrowserIdentity(r)
	if !ok {
		s.opts.Auth.SignInThen(w, r, s.prefix+PathStart+"?t="+url.QueryEscape(raw), "")
		return
	}
	if id.Issuer != t.Issuer || id.Subject != t.Subject {
		s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectGrant, User: audit.UserFromIdentity(id), Upstream: t.Upstream,
			Outcome: audit.OutcomeDenied, ErrorClass: "wrong_user", Error: "a connect link made for another user was opened"})
		s.page(w, r, http.StatusForbidden, "This link was made for someone else",
			"You are signed in as "+displayName(id)+", but this link was made for another person, so Mandate connected nothing. "+
				"If it was meant for you, ask your AI client for a new link while signed in as yourself.", "")
		return
	}
	conn, ok := s.opts.Connector(t.Upstream)
	if !ok {
		s.page(w, r, http.StatusNotFound, "Nothing to connect",
			t.Upstream+" does not ask for your own connection any more (the configuration changed).", "")
		return
	}
	verifier := random(32)
	sum := sha256.Sum256([]byte(verifier))
	st := callbackState{Issuer: t.Issuer, Subject: t.Subject, Upstream: t.Upstream, EID: t.EID,
		Verifier: verifier, Nonce: random(16), Browser: s.opts.Auth.BindBrowser(w, r, stateTTL)}
	state, err := s.seal.Seal(sealState, st, s.now().Add(stateTTL))
	if err != nil {
		s.page(w, r, http.StatusInternalServerError, "Connection failed", "Mandate could not start the connection.", "")
		return
	}
	to, err := conn.AuthCodeURL(r.Context(), state, base64.RawURLEncoding.EncodeToString(sum[:]), s.callbackURL(), "")
	if err != nil {
		s.log.WarnContext(r.Context(), "building the platform's authorization URL failed", "upstream", t.Upstream, "error", err)
		s.page(w, r, http.StatusBadGateway, t.Upstream+" is unavailable",
			"Mandate cannot reach "+t.Upstream+"'s sign-in right now. Try the link again in a minute.", "")
		return
	}
	noStore(w)
	http.Redirect(w, r, to, http.StatusFound)
}

func (s *Service) callbackURL() string { return s.opts.Issuer + PathCallback }

// handleCallback is the platform's redirect back: the state checked (its
// seal, expiry, single use, this browser, the signed-in user), the code
// redeemed and the grant stored by the Connector, every replica told.
func (s *Service) handleCallback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var st callbackState
	switch err := s.seal.Open(sealState, q.Get("state"), s.now(), &st); {
	case errors.Is(err, authserver.ErrSealExpired):
		s.page(w, r, http.StatusBadRequest, "This connection attempt expired",
			"It took too long to come back from the platform. Go back to your AI client and try again.", "")
		return
	case err != nil:
		s.page(w, r, http.StatusBadRequest, "Bad answer from the platform",
			"This answer does not belong to a connection Mandate started (its state is missing or altered).", "")
		return
	}
	if !s.opts.Auth.BrowserBound(r, st.Browser) {
		s.page(w, r, http.StatusBadRequest, "Connection started elsewhere",
			"This connection was not started in this browser (its cookie is missing), so Mandate stops here.",
			"Mandate needs cookies for its own address. Open the link again in the browser you use.")
		return
	}
	id, ok := s.opts.Auth.BrowserIdentity(r)
	if !ok || id.Issuer != st.Issuer || id.Subject != st.Subject {
		s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectGrant, User: audit.UserRef{Issuer: st.Issuer, Subject: st.Subject},
			Upstream: st.Upstream, Outcome: audit.OutcomeDenied, ErrorClass: "wrong_user", Error: "the platform's answer reached a browser no longer signed in as the user"})
		s.page(w, r, http.StatusForbidden, "Signed in as someone else",
			"You are no longer signed in to Mandate as the person who started this connection, so Mandate connected nothing.", "")
		return
	}
	// Single use, on every replica: a replayed answer stores nothing.
	fresh, err := s.opts.Store.UseJTI(r.Context(), usedStates, st.Nonce, s.now().Add(stateTTL))
	if err != nil {
		s.log.ErrorContext(r.Context(), "recording a connect state failed", "error", err)
		s.page(w, r, http.StatusServiceUnavailable, "Connection failed", "Mandate's storage is unavailable. Try again in a minute.", "")
		return
	}
	if !fresh {
		s.page(w, r, http.StatusBadRequest, "Already used",
			"This answer from the platform was already used. If your account is not connected, open the link again.", "")
		return
	}
	user := audit.UserFromIdentity(id)
	if e := q.Get("error"); e != "" {
		class := safeClass(e)
		s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectGrant, User: user, Upstream: st.Upstream,
			Outcome: audit.OutcomeDenied, ErrorClass: "platform_" + class, Error: st.Upstream + " refused the consent: " + class})
		msg := st.Upstream + " did not grant Mandate access (" + class + "). Nothing was connected."
		if class == "access_denied" {
			msg = "You (or " + st.Upstream + ") declined. Nothing was connected."
		}
		s.page(w, r, http.StatusForbidden, "Not connected", msg, "Go back to your AI client; it will offer the link again when it needs it.")
		return
	}
	code := q.Get("code")
	if code == "" {
		s.page(w, r, http.StatusBadRequest, "Bad answer from the platform", "The platform's answer carries no code.", "")
		return
	}
	conn, ok := s.opts.Connector(st.Upstream)
	if !ok {
		s.page(w, r, http.StatusNotFound, "Nothing to connect", st.Upstream+" does not ask for your own connection any more.", "")
		return
	}
	g, err := conn.Redeem(r.Context(), conn.Key(id.Issuer, id.Subject), code, st.Verifier, s.callbackURL())
	if err != nil {
		s.log.WarnContext(r.Context(), "redeeming the platform's code failed", "upstream", st.Upstream, "error", err)
		s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectGrant, User: user, Upstream: st.Upstream,
			Credential: &audit.CredentialRef{Flow: FlowAuthorizationCode},
			Outcome:    audit.OutcomeError, ErrorClass: "redeem_failed", Error: err.Error()})
		s.page(w, r, http.StatusBadGateway, "Connection failed",
			"Mandate could not complete the connection at "+st.Upstream+". Open the link again to retry.", "")
		return
	}
	s.record(r.Context(), r, &audit.Record{Method: audit.MethodConnectGrant, User: user, Upstream: st.Upstream,
		Credential: &audit.CredentialRef{Flow: FlowAuthorizationCode, PlatformSubject: g.PlatformSubject},
		Outcome:    audit.OutcomeOK})
	s.changed(r.Context(), id.Issuer, id.Subject, st.Upstream)
	if s.Completed != nil && st.EID != "" {
		s.Completed(st.EID, id, st.Upstream)
	}
	s.page(w, r, http.StatusOK, "Your "+st.Upstream+" account is connected",
		"Your "+st.Upstream+" account is connected. Go back to your AI client: it can now act at "+st.Upstream+" as you.",
		"You can see and remove your connections on My connections ("+s.opts.Issuer+PathConnections+").")
}

// record writes an audit record (time and client address filled in).
func (s *Service) record(ctx context.Context, r *http.Request, rec *audit.Record) {
	if s.opts.Audit == nil {
		return
	}
	rec.Time = s.now()
	rec.RemoteAddr = r.RemoteAddr
	s.opts.Audit(context.WithoutCancel(ctx), rec)
}

// page writes a message page (authserver's chrome and headers).
func (s *Service) page(w http.ResponseWriter, r *http.Request, status int, title, msg, hint string) {
	if status >= 400 {
		s.log.InfoContext(r.Context(), "connect page", "path", r.URL.Path, "status", status, "title", title)
	}
	authserver.WriteMessage(w, status, title, msg, hint)
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// displayName names the signed-in user to themselves.
func displayName(id *identity.Identity) string {
	if id.Email != "" {
		return id.Email
	}
	if pu, _ := id.Claims["preferred_username"].(string); pu != "" {
		return pu
	}
	return id.Subject
}

// safeClass keeps a platform-provided error code printable and short.
func safeClass(e string) string {
	if len(e) > 64 {
		e = e[:64]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.' {
			return r
		}
		return '_'
	}, e)
}

func humanMinutes(d time.Duration) string { return fmt.Sprintf("%d minutes", int(d/time.Minute)) }

// UserRemoved tells every replica (OnChange with upstream "") that a
// user's grants were removed (DELETE /admin/users/{subject}: the store's
// RevokeUser deletes them).
func (s *Service) UserRemoved(ctx context.Context, issuer, subject string) {
	s.changed(ctx, issuer, subject, "")
}
