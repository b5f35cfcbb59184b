package sandbox

import (
	"crypto/rsa"
	"crypto/subtle"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// GrantTypeJWTBearer is the RFC 7523 grant type.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

const maxAssertionBytes = 16 << 10

type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

func writeOAuthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Signature   string `json:"signature,omitempty"`
	Scope       string `json:"scope"`
	InstanceURL string `json:"instance_url"`
	ID          string `json:"id"`
	TokenType   string `json:"token_type"`
	IssuedAt    string `json:"issued_at"`
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "must use HTTP POST")
		return
	}
	if err := readForm(w, r); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "invalid request body")
		return
	}
	switch gt := r.PostForm.Get("grant_type"); gt {
	case GrantTypeJWTBearer:
		s.jwtBearer(w, r)
	case "client_credentials":
		s.clientCredentials(w, r)
	case "":
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant type not supported")
	}
}

// jwtBearer implements Salesforce's OAuth 2.0 JWT bearer flow.
func (s *Server) jwtBearer(w http.ResponseWriter, r *http.Request) {
	assertion := r.PostForm.Get("assertion")
	if assertion == "" || len(assertion) > maxAssertionBytes {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	// Salesforce accepts RS256 only; anything else (HS256, none, ES256) is
	// refused before the signature is looked at.
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "unparseable or not RS256")
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	s.mu.RLock()
	app := s.apps[unverified.Issuer]
	s.mu.RUnlock()
	if app == nil {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "unknown consumer key")
		writeOAuthError(w, http.StatusBadRequest, "invalid_client_id", "client identifier invalid")
		return
	}
	pub, ok := app.PublicKey.(*rsa.PublicKey)
	if !ok {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "app has no RSA certificate", "app", app.ConsumerKey)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	var claims jwt.Claims
	if err := tok.Claims(pub, &claims); err != nil {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "bad signature", "app", app.ConsumerKey)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	if !s.audienceOK(claims.Audience) {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "audience", "app", app.ConsumerKey)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "audience is invalid")
		return
	}
	now := s.now()
	if claims.Expiry == nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	exp := claims.Expiry.Time()
	if !now.Before(exp) {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "expired", "app", app.ConsumerKey)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "expired authorization code")
		return
	}
	if exp.Sub(now) > MaxAssertionLifetime {
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "exp more than 3 minutes ahead", "app", app.ConsumerKey)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	if claims.NotBefore != nil && now.Before(claims.NotBefore.Time()) {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "invalid assertion")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.usernames[strings.ToLower(claims.Subject)]
	if u == nil || !slices.ContainsFunc(app.PreAuthorized, func(n string) bool { return strings.EqualFold(n, u.Username) }) {
		// Salesforce does not tell an unknown username from an unapproved one.
		s.log.Debug("salesforce sandbox: assertion refused", "reason", "user unknown or not pre-authorized", "app", app.ConsumerKey)
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "user hasn't approved this consumer")
		return
	}
	if u.Inactive {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "inactive user")
		return
	}
	scope := appScope(app)
	access := s.newSessionLocked(u, app.ConsumerKey, scope)
	s.log.Info("salesforce sandbox: token issued", "flow", "jwt_bearer", "app", app.ConsumerKey, "username", u.Username)
	base := s.base(r)
	writeJSONNoStore(w, tokenResponse{
		AccessToken: access, Scope: scope, InstanceURL: base,
		ID: base + "/id/" + s.orgID + "/" + u.ID, TokenType: "Bearer",
		IssuedAt: strconv.FormatInt(now.UnixMilli(), 10),
	})
}

func writeJSONNoStore(w http.ResponseWriter, v any) {
	w.Header().Set("Cache-Control", "no-cache,must-revalidate,max-age=0,no-store,private")
	writeJSON(w, http.StatusOK, v)
}

func appScope(app *ConnectedApp) string {
	if len(app.Scopes) == 0 {
		return defaultScopes
	}
	return strings.Join(app.Scopes, " ")
}

// audienceOK: aud is exactly one of the org's login URLs, never the
// instance's own URL (see DefaultAudiences).
func (s *Server) audienceOK(aud jwt.Audience) bool {
	if len(aud) != 1 {
		return false
	}
	got := strings.TrimRight(aud[0], "/")
	for _, a := range s.audiences {
		if got == strings.TrimRight(a, "/") {
			return true
		}
	}
	return false
}

// clientCredentials implements the client credentials flow: the token runs
// as the app's run-as user.
func (s *Server) clientCredentials(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.apps[id]
	if app == nil || app.ConsumerSecret == "" || subtle.ConstantTimeCompare([]byte(secret), []byte(app.ConsumerSecret)) != 1 {
		writeOAuthError(w, http.StatusBadRequest, "invalid_client", "invalid client credentials")
		return
	}
	if app.RunAsUsername == "" {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "no client credentials user enabled")
		return
	}
	u := s.usernames[strings.ToLower(app.RunAsUsername)]
	if u == nil || u.Inactive {
		writeOAuthError(w, http.StatusBadRequest, "invalid_grant", "inactive user")
		return
	}
	scope := appScope(app)
	access := s.newSessionLocked(u, app.ConsumerKey, scope)
	s.log.Info("salesforce sandbox: token issued", "flow", "client_credentials", "app", app.ConsumerKey, "username", u.Username)
	base := s.base(r)
	writeJSONNoStore(w, tokenResponse{
		AccessToken: access, Signature: randomString(43), Scope: scope, InstanceURL: base,
		ID: base + "/id/" + s.orgID + "/" + u.ID, TokenType: "Bearer",
		IssuedAt: strconv.FormatInt(s.now().UnixMilli(), 10),
	})
}

// handleRevoke implements POST /services/oauth2/revoke (token=…).
func (s *Server) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "must use HTTP POST")
		return
	}
	if err := readForm(w, r); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "invalid request body")
		return
	}
	tok := r.PostForm.Get("token")
	s.mu.Lock()
	_, ok := s.sessions[tok]
	delete(s.sessions, tok)
	s.mu.Unlock()
	if !ok {
		writeOAuthError(w, http.StatusBadRequest, "unsupported_token_type", "this token type is not supported")
		return
	}
	w.WriteHeader(http.StatusOK)
}

func (s *Server) handleUserInfo(w http.ResponseWriter, r *http.Request) {
	u, _ := s.authenticate(r)
	if u == nil {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeText(w, http.StatusForbidden, "Bad_OAuth_Token")
		return
	}
	base := s.base(r)
	given, family, _ := strings.Cut(u.Name, " ")
	writeJSON(w, http.StatusOK, map[string]any{
		"sub":                base + "/id/" + s.orgID + "/" + u.ID,
		"user_id":            u.ID,
		"organization_id":    s.orgID,
		"preferred_username": u.Username,
		"nickname":           strings.Split(u.Username, "@")[0],
		"name":               u.Name,
		"given_name":         given,
		"family_name":        family,
		"email":              u.Email,
		"email_verified":     true,
		"zoneinfo":           "America/Los_Angeles",
		"active":             !u.Inactive,
		"user_type":          "STANDARD",
		"language":           "en_US",
		"locale":             "en_US",
		"updated_at":         s.now().UTC().Format(time.RFC3339),
	})
}

// handleIdentity serves the identity URL /id/{orgId}/{userId}; a token may
// read only its own identity.
func (s *Server) handleIdentity(w http.ResponseWriter, r *http.Request) {
	u, _ := s.authenticate(r)
	if u == nil {
		writeText(w, http.StatusForbidden, "Bad_OAuth_Token")
		return
	}
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/id/"), "/")
	if len(parts) != 2 || parts[0] != s.orgID || !idEqual(parts[1], u.ID) {
		writeText(w, http.StatusForbidden, "Bad_Id")
		return
	}
	base := s.base(r)
	writeJSON(w, http.StatusOK, map[string]any{
		"id":              base + "/id/" + s.orgID + "/" + u.ID,
		"asserted_user":   true,
		"user_id":         u.ID,
		"organization_id": s.orgID,
		"username":        u.Username,
		"nick_name":       strings.Split(u.Username, "@")[0],
		"display_name":    u.Name,
		"email":           u.Email,
		"active":          !u.Inactive,
		"user_type":       "STANDARD",
		"language":        "en_US",
		"locale":          "en_US",
		"utcOffset":       -28800000,
		"urls": map[string]string{
			"rest":     base + "/services/data/v{version}/",
			"query":    base + "/services/data/v{version}/query/",
			"search":   base + "/services/data/v{version}/search/",
			"sobjects": base + "/services/data/v{version}/sobjects/",
		},
	})
}

// writeText writes the plain-text bodies the identity endpoints use for
// errors (Bad_OAuth_Token, Bad_Id).
func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}
