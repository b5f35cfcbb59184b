package sandbox

import (
	"context"
	"crypto"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// GrantTypeJWTBearer is the RFC 7523 grant type.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

const (
	maxFormBytes      = 64 << 10
	maxAssertionBytes = 16 << 10
	maxJWKSBytes      = 1 << 20
	jwksRefetchEvery  = 10 * time.Second
	defaultScope      = "useraccount"
)

// OAuthApp is an OAuth application registry entry.
type OAuthApp struct {
	Name string
	// ClientID and ClientSecret authenticate the client. The JWT bearer
	// grant requires the secret too when it is set (ServiceNow does).
	ClientID     string
	ClientSecret string
	// JWTKeys verify JWT bearer assertions (the JWT provider's verifier
	// map); RSA public keys. Empty disables the JWT bearer grant.
	JWTKeys []crypto.PublicKey
	// Issuer is the required iss of assertions; empty means ClientID.
	Issuer string
	// Audiences are the accepted aud values; empty means ClientID only,
	// as ServiceNow requires ("Create an OAuth JWT API endpoint for
	// external clients": aud must match the value of the Client ID).
	Audiences []string
	// UserField is the sys_user field the assertion's sub is matched
	// against: user_name (default), email or sys_id.
	UserField string
	// RunAsUser is the user_name a client_credentials token runs as; empty
	// disables the client credentials grant.
	RunAsUser string
	// Scope returned with tokens; default "useraccount".
	Scope string
}

// OIDCProvider is a trusted external OIDC issuer ("Configure an OIDC
// provider to verify ID tokens") whose JWTs the Table API accepts directly.
type OIDCProvider struct {
	Name string
	// Issuer must equal the token's iss exactly.
	Issuer string
	// ClientID must be one of the token's aud values.
	ClientID string
	// Keys are static verification keys; when nil the keys come from
	// JWKSURL, or from the jwks_uri of MetadataURL (the discovery document).
	Keys        *jose.JSONWebKeySet
	JWKSURL     string
	MetadataURL string
	// UserClaim names the claim identifying the user (default "email");
	// UserField the sys_user field it is matched against (default "email";
	// also user_name or sys_id).
	UserClaim string
	UserField string
	// Algorithms allowed; default RS256 and ES256.
	Algorithms []jose.SignatureAlgorithm
	// ClockSkew tolerated on exp/nbf; default 0.
	ClockSkew time.Duration
}

type oidcProvider struct {
	cfg OIDCProvider

	mu      sync.Mutex
	keys    *jose.JSONWebKeySet
	fetched time.Time
}

func validUserField(f string) bool { return f == "user_name" || f == "email" || f == "sys_id" }

// RegisterApp registers (or replaces) an OAuth application.
func (s *Server) RegisterApp(app OAuthApp) error {
	if app.ClientID == "" {
		return errors.New("sandbox: OAuth app needs a client id")
	}
	if app.UserField == "" {
		app.UserField = "user_name"
	}
	if !validUserField(app.UserField) {
		return fmt.Errorf("sandbox: OAuth app %s: user field %q is not user_name, email or sys_id", app.ClientID, app.UserField)
	}
	app.JWTKeys = slices.Clone(app.JWTKeys)
	app.Audiences = slices.Clone(app.Audiences)
	s.mu.Lock()
	defer s.mu.Unlock()
	if app.RunAsUser != "" && s.userByLocked("user_name", app.RunAsUser) == nil {
		return fmt.Errorf("sandbox: OAuth app %s: run-as user %s does not exist", app.ClientID, app.RunAsUser)
	}
	s.apps[app.ClientID] = &app
	return nil
}

// AddOIDCProvider trusts an external OIDC issuer.
func (s *Server) AddOIDCProvider(p OIDCProvider) error {
	if p.Issuer == "" || p.ClientID == "" {
		return errors.New("sandbox: OIDC provider needs an issuer and a client id")
	}
	if p.Keys == nil && p.JWKSURL == "" && p.MetadataURL == "" {
		return fmt.Errorf("sandbox: OIDC provider %s needs keys, a JWKS URL or a metadata URL", p.Issuer)
	}
	if p.UserClaim == "" {
		p.UserClaim = "email"
	}
	if p.UserField == "" {
		p.UserField = "email"
	}
	if !validUserField(p.UserField) {
		return fmt.Errorf("sandbox: OIDC provider %s: user field %q is not user_name, email or sys_id", p.Issuer, p.UserField)
	}
	if len(p.Algorithms) == 0 {
		p.Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256}
	}
	p.Algorithms = slices.Clone(p.Algorithms)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.providers = append(s.providers, &oidcProvider{cfg: p, keys: p.Keys})
	return nil
}

type tokenResponse struct {
	AccessToken string `json:"access_token"`
	Scope       string `json:"scope"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// accessDenied is ServiceNow's opaque token endpoint failure.
func accessDenied(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error_description": "access_denied", "error": "server_error"})
}

func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "Method not Supported", "Method "+clip(r.Method)+" is not supported for this resource")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error_description": "invalid request", "error": "invalid_request"})
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.RLock()
	app := s.apps[id]
	s.mu.RUnlock()
	refuse := func(reason string) {
		s.log.Debug("servicenow sandbox: token request refused", "reason", reason, "client_id", clip(id))
		accessDenied(w)
	}
	if app == nil {
		refuse("unknown client_id")
		return
	}
	if app.ClientSecret != "" && subtle.ConstantTimeCompare([]byte(secret), []byte(app.ClientSecret)) != 1 {
		refuse("wrong client_secret")
		return
	}
	var u *User
	var reason string
	switch gt := r.PostForm.Get("grant_type"); gt {
	case "client_credentials":
		if app.ClientSecret == "" || app.RunAsUser == "" {
			refuse("client credentials grant not enabled for this app")
			return
		}
		s.mu.RLock()
		u = s.userByLocked("user_name", app.RunAsUser)
		s.mu.RUnlock()
		reason = "run-as user missing"
	case GrantTypeJWTBearer:
		u, reason = s.verifyAssertion(app, r.PostForm.Get("assertion"))
	default:
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusBadRequest, map[string]string{"error_description": "unsupported grant type", "error": "unsupported_grant_type"})
		return
	}
	if u == nil {
		refuse(reason)
		return
	}
	if u.Inactive {
		refuse("user inactive")
		return
	}
	s.mu.Lock()
	tok := s.newSessionLocked(u)
	s.mu.Unlock()
	scope := app.Scope
	if scope == "" {
		scope = defaultScope
	}
	s.log.Info("servicenow sandbox: token issued", "grant_type", r.PostForm.Get("grant_type"), "client_id", app.ClientID, "user", u.UserName)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, tokenResponse{AccessToken: tok, Scope: scope, TokenType: "Bearer", ExpiresIn: int(s.lifetime.Seconds()) - 1})
}

// verifyAssertion checks a JWT bearer assertion; it returns the user or the
// reason for refusal.
func (s *Server) verifyAssertion(app *OAuthApp, assertion string) (*User, string) {
	if len(app.JWTKeys) == 0 {
		return nil, "JWT bearer grant not enabled for this app"
	}
	if assertion == "" || len(assertion) > maxAssertionBytes {
		return nil, "missing or oversized assertion"
	}
	tok, err := jwt.ParseSigned(assertion, []jose.SignatureAlgorithm{jose.RS256, jose.RS384, jose.RS512})
	if err != nil || len(tok.Headers) != 1 {
		return nil, "assertion unparseable or algorithm not allowed"
	}
	var claims jwt.Claims
	verified := false
	for _, k := range app.JWTKeys {
		if err := tok.Claims(k, &claims); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, "bad signature"
	}
	iss := app.Issuer
	if iss == "" {
		iss = app.ClientID
	}
	if claims.Issuer != iss {
		return nil, "wrong issuer"
	}
	// aud must match the application's Client ID; the instance answers
	// anything else with the same opaque access_denied as every other
	// refusal. https://docs.servicenow.com/bundle/tokyo-platform-security/page/administer/security/task/create-jwt-endpoint.html
	auds := app.Audiences
	if len(auds) == 0 {
		auds = []string{app.ClientID}
	}
	if !slices.ContainsFunc(auds, func(a string) bool { return claims.Audience.Contains(a) }) {
		return nil, "wrong audience (not the client id)"
	}
	now := s.now()
	if claims.Expiry == nil {
		return nil, "exp missing"
	}
	if !now.Before(claims.Expiry.Time()) {
		return nil, "assertion expired"
	}
	if claims.NotBefore != nil && now.Before(claims.NotBefore.Time()) {
		return nil, "assertion not yet valid"
	}
	s.mu.RLock()
	u := s.userByLocked(app.UserField, claims.Subject)
	s.mu.RUnlock()
	if u == nil {
		return nil, "no sys_user with " + app.UserField + " matching sub"
	}
	return u, ""
}

// verifyExternal authenticates a bearer JWT from a trusted OIDC provider.
func (s *Server) verifyExternal(ctx context.Context, raw string) (*User, string) {
	if len(raw) > maxAssertionBytes {
		return nil, "token too large"
	}
	s.mu.RLock()
	providers := slices.Clone(s.providers)
	s.mu.RUnlock()
	if len(providers) == 0 {
		return nil, "unknown access token and no OIDC provider configured"
	}
	var algs []jose.SignatureAlgorithm
	for _, p := range providers {
		for _, a := range p.cfg.Algorithms {
			if !slices.Contains(algs, a) {
				algs = append(algs, a)
			}
		}
	}
	tok, err := jwt.ParseSigned(raw, algs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, "unparseable JWT or algorithm not allowed"
	}
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, "unparseable claims"
	}
	var p *oidcProvider
	for _, cand := range providers {
		if cand.cfg.Issuer == unverified.Issuer {
			p = cand
			break
		}
	}
	if p == nil {
		return nil, "issuer not trusted"
	}
	if !slices.Contains(p.cfg.Algorithms, jose.SignatureAlgorithm(tok.Headers[0].Algorithm)) {
		return nil, "algorithm not allowed for this provider"
	}
	keys, err := p.keysFor(ctx, s.client, tok.Headers[0].KeyID, s.now())
	if err != nil {
		return nil, "fetching provider keys: " + err.Error()
	}
	var claims jwt.Claims
	var extra map[string]any
	verified := false
	for _, k := range keys {
		if err := tok.Claims(k.Key, &claims, &extra); err == nil {
			verified = true
			break
		}
	}
	if !verified {
		return nil, "bad signature"
	}
	if claims.Expiry == nil {
		return nil, "exp missing"
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: p.cfg.Issuer, AnyAudience: jwt.Audience{p.cfg.ClientID}, Time: s.now()}, p.cfg.ClockSkew); err != nil {
		return nil, "claims: " + err.Error()
	}
	val, _ := extra[p.cfg.UserClaim].(string)
	if val == "" {
		return nil, "user claim " + p.cfg.UserClaim + " missing"
	}
	s.mu.RLock()
	u := s.userByLocked(p.cfg.UserField, val)
	s.mu.RUnlock()
	if u == nil {
		return nil, "no sys_user with " + p.cfg.UserField + " matching claim " + p.cfg.UserClaim
	}
	if u.Inactive {
		return nil, "user inactive"
	}
	return u, ""
}

// keysFor returns candidate keys for kid, fetching the JWKS when it has
// none cached or does not know kid (at most every jwksRefetchEvery).
func (p *oidcProvider) keysFor(ctx context.Context, client *http.Client, kid string, now time.Time) ([]jose.JSONWebKey, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pick := func() []jose.JSONWebKey {
		if p.keys == nil {
			return nil
		}
		if kid == "" {
			return p.keys.Keys
		}
		return p.keys.Key(kid)
	}
	if ks := pick(); len(ks) > 0 || p.cfg.Keys != nil {
		return ks, nil
	}
	if !p.fetched.IsZero() && now.Sub(p.fetched) < jwksRefetchEvery {
		return nil, errors.New("no matching key")
	}
	p.fetched = now
	jwksURL := p.cfg.JWKSURL
	if jwksURL == "" {
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := getJSON(ctx, client, p.cfg.MetadataURL, &meta); err != nil {
			return nil, err
		}
		if meta.JWKSURI == "" {
			return nil, errors.New("discovery document has no jwks_uri")
		}
		jwksURL = meta.JWKSURI
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, client, jwksURL, &set); err != nil {
		return nil, err
	}
	p.keys = &set
	if ks := pick(); len(ks) > 0 {
		return ks, nil
	}
	return nil, errors.New("no matching key")
}

func getJSON(ctx context.Context, client *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}
