package authserver

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/identity"
)

// Token endpoint.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// maxTokenRequestBytes bounds a token or revocation request body.
	maxTokenRequestBytes = 64 << 10
)

// tokenError is an RFC 6749 §5.2 error response.
type tokenError struct {
	Status      int
	Code        string
	Description string
	// challenge is the WWW-Authenticate header (a Basic challenge after
	// failed client_secret_basic authentication).
	challenge string
}

func tokErr(status int, code, format string, args ...any) *tokenError {
	return &tokenError{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

func tokInvalidGrant(format string, args ...any) *tokenError {
	return tokErr(http.StatusBadRequest, "invalid_grant", format, args...)
}

func tokInvalidRequest(format string, args ...any) *tokenError {
	return tokErr(http.StatusBadRequest, "invalid_request", format, args...)
}

func tokServerError(format string, args ...any) *tokenError {
	return tokErr(http.StatusInternalServerError, "server_error", format, args...)
}

func writeTokenError(w http.ResponseWriter, e *tokenError) {
	if e.challenge != "" {
		w.Header().Set("WWW-Authenticate", e.challenge)
	}
	writeTokenJSON(w, e.Status, map[string]string{"error": e.Code, "error_description": e.Description})
}

func writeTokenJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// parseTokenForm reads a form-encoded POST body (bounded) and refuses
// repeated parameters (RFC 6749 §3.2).
func parseTokenForm(w http.ResponseWriter, r *http.Request) *tokenError {
	if r.Method != http.MethodPost {
		return tokErr(http.StatusMethodNotAllowed, "invalid_request", "use POST")
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return tokInvalidRequest("the request body must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequestBytes)
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return tokErr(http.StatusRequestEntityTooLarge, "invalid_request", "request body too large")
		}
		return tokInvalidRequest("malformed form body")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 && k != "resource" {
			return tokInvalidRequest("parameter %s is repeated", k)
		}
	}
	for k := range r.URL.Query() {
		if k == "client_secret" || k == "code" || k == "refresh_token" || k == "assertion" || k == "code_verifier" {
			return tokInvalidRequest("parameter %s must be in the request body, not the URL", k)
		}
	}
	return nil
}

// authenticateClient authenticates the client at the token and revocation
// endpoints.
func (s *Server) authenticateClient(r *http.Request) (*clients.Client, *tokenError) {
	c, e := s.clients.Authenticate(r)
	if e != nil {
		te := &tokenError{Status: e.Status, Code: e.Code, Description: e.Description, challenge: e.WWWAuthenticate}
		if te.Status == 0 {
			te.Status = http.StatusUnauthorized
		}
		return nil, te
	}
	return c, nil
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	start := s.now()
	if e := parseTokenForm(w, r); e != nil {
		writeTokenError(w, e)
		return
	}
	client, e := s.authenticateClient(r)
	if e != nil {
		writeTokenError(w, e)
		return
	}
	var resp *tokenResponse
	switch gt := r.PostForm.Get("grant_type"); gt {
	case GrantAuthorizationCode:
		resp, e = s.grantCode(r, client, start)
	case GrantRefreshToken:
		resp, e = s.grantRefresh(r, client, start)
	case GrantJWTBearer:
		if !s.cfg.EnterpriseManaged.Enabled {
			e = tokErr(http.StatusBadRequest, "unsupported_grant_type", "the jwt-bearer grant (ID-JAG) is not enabled (authorization_server.enterprise_managed.enabled)")
			break
		}
		resp, e = s.grantIDJAG(r, client, start)
	case "":
		e = tokInvalidRequest("grant_type is required")
	default:
		e = tokErr(http.StatusBadRequest, "unsupported_grant_type", "grant_type %q is not supported", truncDesc(gt, 100))
	}
	if e != nil {
		writeTokenError(w, e)
		return
	}
	writeTokenJSON(w, http.StatusOK, resp)
}

// allowsRefresh: the client registered the refresh_token grant (or no
// grant types at all).
func allowsRefresh(c *clients.Client) bool {
	return len(c.GrantTypes) == 0 || slices.Contains(c.GrantTypes, GrantRefreshToken)
}

func (s *Server) refreshTTL() time.Duration {
	if s.cfg.RefreshTokenTTL > 0 {
		return s.cfg.RefreshTokenTTL
	}
	return DefaultRefreshTokenTTL
}

// checkTokenResource checks the resource parameters of a token request (RFC
// 8707): none, or exactly the MCP resource.
func (s *Server) checkTokenResource(r *http.Request, granted string) *tokenError {
	res := r.PostForm["resource"]
	switch {
	case len(res) == 0:
		return nil
	case len(res) > 1:
		return tokErr(http.StatusBadRequest, "invalid_target", "only one resource may be requested: %s", s.opts.Resource)
	case res[0] != s.opts.Resource:
		return tokErr(http.StatusBadRequest, "invalid_target", "resource %q is not served here; the only resource is %s", truncDesc(res[0], 200), s.opts.Resource)
	case granted != "" && res[0] != granted:
		return tokErr(http.StatusBadRequest, "invalid_target", "resource %q differs from the one authorized", truncDesc(res[0], 200))
	}
	return nil
}

func (s *Server) grantCode(r *http.Request, client *clients.Client, start time.Time) (*tokenResponse, *tokenError) {
	ctx := r.Context()
	code := r.PostForm.Get("code")
	if code == "" {
		return nil, tokInvalidRequest("code is required")
	}
	sum := sha256.Sum256([]byte(code))
	c, err := s.opts.Store.TakeCode(ctx, sum[:], s.now())
	switch {
	case errors.Is(err, store.ErrUsed):
		if rerr := s.revokeFamily(ctx, c.FamilyID); rerr != nil {
			s.log.Error("revoking the tokens of a reused authorization code failed", "error", rerr)
		}
		s.auditTok(ctx, &audit.Record{Method: audit.MethodOAuthCodeReuse, OAuthClient: client.ID, RemoteAddr: r.RemoteAddr,
			Outcome: audit.OutcomeDenied, ErrorClass: "invalid_grant", Error: "authorization code presented again; the tokens it issued are revoked"}, start)
		return nil, tokInvalidGrant("the authorization code was already used; the tokens issued for it are revoked")
	case errors.Is(err, store.ErrNotFound):
		return nil, tokInvalidGrant("the authorization code is invalid or expired")
	case err != nil:
		s.log.Error("redeeming an authorization code", "error", err)
		return nil, tokServerError("the authorization code could not be redeemed; try again")
	}
	if c.ClientID != client.ID {
		return nil, tokInvalidGrant("the authorization code was issued to another client")
	}
	if r.PostForm.Get("redirect_uri") != c.RedirectURI {
		return nil, tokInvalidGrant("redirect_uri does not match the one of the authorization request")
	}
	if e := checkPKCE(r.PostForm.Get("code_verifier"), c.CodeChallenge); e != nil {
		return nil, e
	}
	if c.Resource != s.opts.Resource {
		return nil, tokErr(http.StatusBadRequest, "invalid_target", "the authorization code was issued for another resource")
	}
	if e := s.checkTokenResource(r, c.Resource); e != nil {
		return nil, e
	}
	id, err := s.sessions.identity(ctx, c.SessionID)
	if err != nil {
		return nil, s.sessionError(ctx, err, c.FamilyID)
	}
	resp, e := s.issueAccess(ctx, client, id, c.SessionID, c.FamilyID, c.Scope, time.Time{})
	if e != nil {
		return nil, e
	}
	if allowsRefresh(client) {
		rt := randomToken(32)
		h := sha256.Sum256([]byte(rt))
		now := s.now()
		if err := s.opts.Store.PutRefresh(ctx, store.Refresh{Hash: h[:], FamilyID: c.FamilyID, ClientID: client.ID,
			SessionID: c.SessionID, Issuer: id.Issuer, Subject: id.Subject, Scope: c.Scope, Resource: c.Resource,
			IssuedAt: now, ExpiresAt: now.Add(s.refreshTTL())}); err != nil {
			s.log.Error("storing a refresh token", "error", err)
			return nil, tokServerError("the refresh token could not be stored; try again")
		}
		resp.RefreshToken = rt
	}
	s.auditTok(ctx, &audit.Record{Method: audit.MethodOAuthToken, User: audit.UserFromIdentity(id), OAuthClient: client.ID, Outcome: audit.OutcomeOK}, start)
	return resp, nil
}

// checkPKCE checks code_verifier against the S256 code challenge
// (RFC 7636 §4.6).
func checkPKCE(verifier, challenge string) *tokenError {
	if verifier == "" {
		return tokInvalidGrant("code_verifier is required (PKCE)")
	}
	if len(verifier) < 43 || len(verifier) > 128 {
		return tokInvalidGrant("code_verifier must be 43 to 128 characters (RFC 7636)")
	}
	for i := 0; i < len(verifier); i++ {
		ch := verifier[i]
		if !(ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
			return tokInvalidGrant("code_verifier has characters RFC 7636 does not allow")
		}
	}
	sum := sha256.Sum256([]byte(verifier))
	got := base64.RawURLEncoding.EncodeToString(sum[:])
	if challenge == "" || subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) != 1 {
		return tokInvalidGrant("code_verifier does not match the code challenge (S256)")
	}
	return nil
}

// sessionError maps a session lookup failure at the token endpoint; an
// ended IdP sign-in revokes family fam.
func (s *Server) sessionError(ctx context.Context, err error, fam string) *tokenError {
	if errors.Is(err, ErrSessionEnded) {
		if fam != "" {
			if rerr := s.revokeFamily(ctx, fam); rerr != nil {
				s.log.Error("revoking the tokens of an ended IdP session failed", "error", rerr)
			}
		}
		return tokInvalidGrant("the sign-in at the identity provider has ended; sign in again")
	}
	s.log.Error("loading the IdP session", "error", err)
	return tokErr(http.StatusServiceUnavailable, "temporarily_unavailable", "the sign-in session could not be loaded; try again")
}

// issueAccess mints an access token for the session's user. notAfter, when set,
// caps its expiry.
func (s *Server) issueAccess(ctx context.Context, client *clients.Client, id *identity.Identity, sid, fam, scope string, notAfter time.Time) (*tokenResponse, *tokenError) {
	now := s.now()
	exp := now.Add(s.accessTTL())
	if !notAfter.IsZero() && notAfter.Before(exp) {
		exp = notAfter
	}
	at, err := s.mintAccessToken(accessClaims{Sub: id.Subject, Exp: exp.Unix(), Iat: now.Unix(),
		ClientID: client.ID, Scope: scope, Sid: sid, Fam: fam})
	if err != nil {
		s.log.Error("signing an access token", "error", err)
		return nil, tokServerError("the access token could not be signed")
	}
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(exp.Sub(now).Round(time.Second) / time.Second), Scope: scope}, nil
}

func (s *Server) grantRefresh(r *http.Request, client *clients.Client, start time.Time) (*tokenResponse, *tokenError) {
	ctx := r.Context()
	rt := r.PostForm.Get("refresh_token")
	if rt == "" {
		return nil, tokInvalidRequest("refresh_token is required")
	}
	old := sha256.Sum256([]byte(rt))
	row, err := s.opts.Store.LookupRefresh(ctx, old[:])
	// ErrUsed (a rotated token: RotateRefresh below detects the reuse and
	// revokes the family), ErrRevoked and ErrNotFound are decided by
	// RotateRefresh.
	if err != nil && !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrUsed) && !errors.Is(err, store.ErrRevoked) {
		s.log.Error("looking up a refresh token", "error", err)
		return nil, tokServerError("the refresh token could not be checked; try again")
	}
	if err == nil {
		// Checks that must not burn the token.
		if row.ClientID != client.ID {
			return nil, tokInvalidGrant("the refresh token was issued to another client")
		}
		if e := s.checkTokenResource(r, row.Resource); e != nil {
			return nil, e
		}
		if sc := r.PostForm.Get("scope"); sc != "" {
			have := strings.Fields(row.Scope)
			for _, want := range strings.Fields(sc) {
				if !slices.Contains(have, want) {
					return nil, tokErr(http.StatusBadRequest, "invalid_scope", "scope %q was not granted to this refresh token", truncDesc(want, 100))
				}
			}
		}
	}
	next := randomToken(32)
	nh := sha256.Sum256([]byte(next))
	now := s.now()
	prev, err := s.opts.Store.RotateRefresh(ctx, old[:], store.Refresh{Hash: nh[:], FamilyID: row.FamilyID, ClientID: row.ClientID,
		SessionID: row.SessionID, Issuer: row.Issuer, Subject: row.Subject, Scope: row.Scope, Resource: row.Resource,
		IssuedAt: now, ExpiresAt: now.Add(s.refreshTTL())}, now)
	switch {
	case errors.Is(err, store.ErrReused):
		s.keys.tok.addRevoked(s.now(), prev.FamilyID)
		s.auditTok(ctx, &audit.Record{Method: audit.MethodOAuthRefreshReuse, OAuthClient: client.ID, RemoteAddr: r.RemoteAddr,
			User:    audit.UserRef{Issuer: prev.Issuer, Subject: prev.Subject},
			Outcome: audit.OutcomeDenied, ErrorClass: "invalid_grant", Error: "refresh token presented again; its family is revoked"}, start)
		return nil, tokInvalidGrant("the refresh token was already used; every token of this grant is revoked")
	case errors.Is(err, store.ErrRevoked):
		return nil, tokInvalidGrant("the refresh token was revoked")
	case errors.Is(err, store.ErrNotFound):
		return nil, tokInvalidGrant("the refresh token is invalid or expired")
	case err != nil:
		s.log.Error("rotating a refresh token", "error", err)
		return nil, tokServerError("the refresh token could not be rotated; try again")
	}
	if prev.ClientID != client.ID { // the row changed between lookup and rotation
		return nil, tokInvalidGrant("the refresh token was issued to another client")
	}
	id, err := s.sessions.identity(ctx, prev.SessionID)
	if err != nil {
		return nil, s.sessionError(ctx, err, prev.FamilyID)
	}
	scope := prev.Scope
	if sc := r.PostForm.Get("scope"); sc != "" {
		scope = strings.Join(strings.Fields(sc), " ")
	}
	resp, e := s.issueAccess(ctx, client, id, prev.SessionID, prev.FamilyID, scope, time.Time{})
	if e != nil {
		return nil, e
	}
	resp.RefreshToken = next
	s.auditTok(ctx, &audit.Record{Method: audit.MethodOAuthRefresh, User: audit.UserFromIdentity(id), OAuthClient: client.ID, Outcome: audit.OutcomeOK}, start)
	return resp, nil
}

// revokeFamily revokes a refresh-token family in the store and at once in
// memory (other replicas learn it within the sync interval).
func (s *Server) revokeFamily(ctx context.Context, fam string) error {
	if fam == "" {
		return nil
	}
	s.keys.tok.addRevoked(s.now(), fam)
	return s.opts.Store.RevokeFamily(ctx, fam)
}

// auditTok records an authorization-server event.
func (s *Server) auditTok(ctx context.Context, rec *audit.Record, start time.Time) {
	if s.opts.Audit == nil {
		return
	}
	rec.Time = start
	rec.LatencyMS = float64(s.now().Sub(start).Microseconds()) / 1000
	s.opts.Audit(ctx, rec)
}

func truncDesc(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
