package clients

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/store"
)

// MaxRegistrationBytes bounds a registration request's body.
const MaxRegistrationBytes = 64 << 10

// dynamicIDPrefix starts every client_id Mandate issues (so one can never
// be mistaken for a metadata document URL or a configured id).
const dynamicIDPrefix = "mcl_"

// registration is the RFC 7591 §3.2.1 response: the client information
// and the metadata as registered.
type registration struct {
	ClientID              string `json:"client_id"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	metadata
}

// RegisterHandler is the dynamic client registration endpoint (RFC 7591),
// under registration.policy: open (anyone), token (Authorization: Bearer
// <initial access token>) or off (403).
func (r *Registry) RegisterHandler() http.Handler {
	return http.HandlerFunc(r.register)
}

func (r *Registry) register(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: "invalid_request", Description: "use POST"})
		return
	}
	switch r.reg.Policy {
	case PolicyOff:
		writeError(w, &Error{Status: http.StatusForbidden, Code: "access_denied", Description: "dynamic client registration is disabled on this server; use a client ID metadata document or a pre-registered client"})
		return
	case PolicyToken:
		if !r.initialAccessTokenOK(req) {
			r.record(req.Context(), req, "", audit.OutcomeUnauthenticated, "invalid_token", "missing or wrong initial access token")
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="an initial access token is required to register"`)
			writeError(w, &Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: "registration needs an initial access token (Authorization: Bearer …); the one sent is missing or wrong"})
			return
		}
	}
	if mt, _, err := mime.ParseMediaType(req.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_client_metadata", Description: "the request body must be JSON (Content-Type: application/json)"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, MaxRegistrationBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: "invalid_client_metadata", Description: fmt.Sprintf("the request body is larger than %d KiB", MaxRegistrationBytes>>10)})
			return
		}
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_client_metadata", Description: "reading the request body failed"})
		return
	}
	md, err := decodeMetadata(body)
	if err != nil {
		writeError(w, &Error{Status: http.StatusBadRequest, Code: "invalid_client_metadata", Description: "the request body is " + err.Error()})
		return
	}
	md.ClientID = "" // Mandate chooses the id
	if e := md.check(false); e != nil {
		writeError(w, e)
		return
	}
	// Only registrations that would be stored spend the address's budget.
	if wait, ok := r.allowRegistration(req); !ok {
		r.record(req.Context(), req, "", audit.OutcomeDenied, "rate_limited", "too many registrations from this address")
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeError(w, &Error{Status: http.StatusTooManyRequests, Code: "invalid_request",
			Description: fmt.Sprintf("too many client registrations from your address; retry in %d s", int(wait.Seconds())+1)})
		return
	}

	now := r.now().UTC().Truncate(time.Second)
	resp := registration{ClientID: dynamicIDPrefix + randomString(16), ClientIDIssuedAt: now.Unix(), metadata: md}
	row := store.Client{ID: resp.ClientID, CreatedAt: now, LastUsedAt: now}
	if md.TokenEndpointAuthMethod != AuthNone {
		resp.ClientSecret = randomString(32)
		h := sha256.Sum256([]byte(resp.ClientSecret))
		row.SecretHash = h[:]
		var never int64
		resp.ClientSecretExpiresAt = &never
	}
	if row.Metadata, err = json.Marshal(md); err != nil {
		writeError(w, &Error{Status: http.StatusInternalServerError, Code: "server_error", Description: "encoding the registration failed"})
		return
	}
	if err := r.store.PutClient(req.Context(), row); err != nil {
		r.log.ErrorContext(req.Context(), "storing a client registration", "error", err)
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: "temporarily_unavailable", Description: "the registration could not be stored; try again"})
		return
	}
	r.record(req.Context(), req, resp.ClientID, audit.OutcomeOK, "", "")
	r.log.InfoContext(req.Context(), "client registered", "client_id", resp.ClientID, "client_name", clip(md.ClientName), "auth_method", md.TokenEndpointAuthMethod)
	writeJSON(w, http.StatusCreated, resp)
}

// initialAccessTokenOK compares the bearer token with the initial access
// token in constant time (of their hashes, so the length leaks nothing).
func (r *Registry) initialAccessTokenOK(req *http.Request) bool {
	scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], r.iatHash) == 1
}

func (r *Registry) record(ctx context.Context, req *http.Request, clientID, outcome, class, msg string) {
	if r.audit == nil {
		return
	}
	remote := req.RemoteAddr
	if h, _, err := net.SplitHostPort(remote); err == nil {
		remote = h
	}
	r.audit(ctx, &audit.Record{
		Time: r.now(), Method: audit.MethodOAuthRegister, OAuthClient: clientID, RemoteAddr: remote,
		Outcome: outcome, ErrorClass: class, Error: msg,
	})
}

func randomString(n int) string {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go ≥ 1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// Write writes e as an OAuth error response (RFC 6749 §5.2 JSON, no
// caching), with its WWW-Authenticate challenge if it has one.
func (e *Error) Write(w http.ResponseWriter) { writeError(w, e) }

func writeError(w http.ResponseWriter, e *Error) {
	if e.WWWAuthenticate != "" {
		w.Header().Set("WWW-Authenticate", e.WWWAuthenticate)
	}
	writeJSON(w, e.Status, struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{e.Code, e.Description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	w.Write(b)
}

// registrationLimitAddrs bounds the client addresses whose registration
// budgets are remembered (least recently used forgotten first).
const registrationLimitAddrs = 10000

// allowRegistration spends one of the client address's registrations
// (registration.per_minute a minute); when none is left it reports how
// long until the next. The address is the request's RemoteAddr, which the
// gateway sets to the client IP it trusts (server.trusted_proxies).
func (r *Registry) allowRegistration(req *http.Request) (time.Duration, bool) {
	if r.limits == nil {
		return 0, true
	}
	addr := req.RemoteAddr
	if host, _, err := net.SplitHostPort(addr); err == nil {
		addr = host
	}
	l, ok := r.limits.Get(addr)
	if !ok {
		n := r.reg.PerMinute
		l = rate.NewLimiter(rate.Every(time.Minute/time.Duration(n)), n)
		r.limits.Add(addr, l)
	}
	res := l.ReserveN(r.now(), 1)
	if d := res.DelayFrom(r.now()); d > 0 {
		res.CancelAt(r.now())
		return d, false
	}
	return 0, true
}
