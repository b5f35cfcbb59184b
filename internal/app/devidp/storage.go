package devidp

import (
	"context"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// authRequestTTL bounds how long an unfinished authorization request is kept.
const authRequestTTL = 10 * time.Minute

// RefreshTokenLifetime is how long a refresh token of the IdP stays valid
// without use (each use rotates it and starts a new lifetime).
const RefreshTokenLifetime = 30 * 24 * time.Hour

// store implements zitadel's op.Storage (plus client_credentials and token
// exchange) in memory, for one IdP instance. It holds no package-level state,
// so any number of IdPs can run in one process.
type store struct {
	log              *slog.Logger
	key              *rsa.PrivateKey
	keyID            string
	policy           ExchangePolicy
	exchangeLifetime time.Duration

	mu           sync.Mutex
	usersByID    map[string]*User
	usersByName  map[string]*User
	clients      map[string]*client
	authRequests map[string]*authRequest
	codes        map[string]string // code -> auth request id
	tokens       map[string]*tokenRecord
	refresh      map[string]*refreshRecord // refresh token -> record
	tickets      map[string]*ticket        // state -> ticket, for Token's programmatic login
	exchanges    []Exchange
}

// ticket is a pending programmatic login started by IdP.Token.
type ticket struct {
	secret   string
	userID   string
	audience []string
	lifetime time.Duration
}

var (
	_ op.Storage                        = (*store)(nil)
	_ op.ClientCredentialsStorage       = (*store)(nil)
	_ op.TokenExchangeStorage           = (*store)(nil)
	_ op.CanGetPrivateClaimsFromRequest = (*store)(nil)
	_ op.CanSetUserinfoFromRequest      = (*store)(nil)
)

type resourceKey struct{}
type userKey struct{}

// withResources records the RFC 8707 resource parameters of an authorization
// request; zitadel's oidc.AuthRequest does not carry them.
func withResources(ctx context.Context, resources []string) context.Context {
	return context.WithValue(ctx, resourceKey{}, resources)
}

// UserFromContext returns the subject user of the token exchange being
// decided; it is set in the context passed to Options.ExchangePolicy.
func UserFromContext(ctx context.Context) (User, bool) {
	u, ok := ctx.Value(userKey{}).(User)
	return u, ok
}

func withUser(ctx context.Context, u User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

func (s *store) user(id string) (User, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.usersByID[id]
	if !ok {
		return User{}, false
	}
	return u.clone(), true
}

// ---- authorization code flow ----

func (s *store) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired()
	}
	id, err := randomID()
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	now := time.Now()
	ar := &authRequest{
		id:           id,
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       slices.Clone([]string(req.Scopes)),
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
		created:      now,
		loginHint:    req.LoginHint,
	}
	if req.CodeChallenge != "" {
		ar.codeChallenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	resources, _ := ctx.Value(resourceKey{}).([]string)

	s.mu.Lock()
	defer s.mu.Unlock()
	for k, old := range s.authRequests {
		if now.Sub(old.created) > authRequestTTL {
			s.deleteAuthRequestLocked(k)
		}
	}
	if t, ok := s.tickets[req.State]; ok && req.ClientID == loginClientID {
		delete(s.tickets, req.State) // one auth request per ticket
		ar.ticketSecret = t.secret
		ar.ticketUser = t.userID
		ar.audience = t.audience
		ar.lifetime = t.lifetime
	} else if c, ok := s.clients[req.ClientID]; ok && len(c.audience) > 0 {
		// A client with a fixed audience (Mandate's): its tokens are for
		// that audience, plus the client so the ID token is valid for it.
		ar.audience = append(slices.Clone(c.audience), req.ClientID)
	} else {
		// Browser flows: the audience is the RFC 8707 resources plus the client,
		// so the ID token stays valid for the client.
		ar.audience = append(slices.Clone(resources), req.ClientID)
	}
	s.authRequests[id] = ar
	return ar, nil
}

func (s *store) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[id]
	if !ok {
		return nil, errors.New("auth request not found")
	}
	return ar, nil
}

func (s *store) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or expired")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *store) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *store) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteAuthRequestLocked(id)
	return nil
}

func (s *store) deleteAuthRequestLocked(id string) {
	delete(s.authRequests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
}

// completeLogin marks an auth request as authenticated for userID.
func (s *store) completeLogin(authRequestID, userID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ar, ok := s.authRequests[authRequestID]
	if !ok {
		return errors.New("auth request not found")
	}
	ar.userID = userID
	ar.done = true
	ar.authTime = time.Now()
	return nil
}

// ---- tokens ----

func (s *store) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	var clientID string
	lifetime := DefaultTokenLifetime
	switch r := req.(type) {
	case *authRequest:
		clientID = r.clientID
		if r.lifetime > 0 {
			lifetime = r.lifetime
		}
	case op.TokenExchangeRequest:
		clientID = r.GetClientID()
		lifetime = s.exchangeLifetime
	case *clientTokenRequest:
		clientID = r.clientID
		lifetime = s.exchangeLifetime
	case *refreshRecord:
		clientID = r.clientID
	}
	id, err := randomID()
	if err != nil {
		return "", time.Time{}, oidc.ErrServerError().WithParent(err)
	}
	now := time.Now()
	rec := &tokenRecord{
		id:       id,
		subject:  req.GetSubject(),
		clientID: clientID,
		audience: slices.Clone(req.GetAudience()),
		scopes:   slices.Clone(req.GetScopes()),
		expiry:   now.Add(lifetime),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tokens {
		if now.After(t.expiry) {
			delete(s.tokens, k)
		}
	}
	s.tokens[id] = rec
	return id, rec.expiry, nil
}

// CreateAccessAndRefreshTokens issues an access token and a new refresh
// token: at the code exchange when offline_access was granted, and at every
// refresh (rotation: currentRefreshToken stops working).
func (s *store) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, currentRefreshToken string) (string, string, time.Time, error) {
	now := time.Now()
	rec := &refreshRecord{expiry: now.Add(RefreshTokenLifetime)}
	switch r := req.(type) {
	case *authRequest:
		rec.userID, rec.clientID, rec.authTime = r.userID, r.clientID, r.authTime
		rec.scopes, rec.audience, rec.amr = slices.Clone(r.scopes), slices.Clone(r.audience), r.GetAMR()
	case *refreshRecord:
		rec.userID, rec.clientID, rec.authTime = r.userID, r.clientID, r.authTime
		rec.scopes, rec.audience, rec.amr = slices.Clone(r.scopes), slices.Clone(r.audience), slices.Clone(r.amr)
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType().WithDescription("devidp issues refresh tokens only with the authorization code grant")
	}
	var err error
	if rec.token, err = randomID(); err != nil {
		return "", "", time.Time{}, oidc.ErrServerError().WithParent(err)
	}
	if currentRefreshToken != "" {
		s.mu.Lock()
		old, ok := s.refresh[currentRefreshToken]
		delete(s.refresh, currentRefreshToken)
		s.mu.Unlock()
		if !ok || now.After(old.expiry) || old.clientID != rec.clientID {
			return "", "", time.Time{}, oidc.ErrInvalidGrant().WithDescription("refresh token is invalid, expired or already used")
		}
	}
	accessID, exp, err := s.CreateAccessToken(ctx, req)
	if err != nil {
		return "", "", time.Time{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, r := range s.refresh {
		if now.After(r.expiry) {
			delete(s.refresh, k)
		}
	}
	s.refresh[rec.token] = rec
	return accessID, rec.token, exp, nil
}

// TokenRequestByRefreshToken returns a copy of the refresh token's record
// (zitadel sets the requested scopes on it).
func (s *store) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[token]
	if !ok || time.Now().After(r.expiry) {
		return nil, errors.New("refresh token is invalid, expired or already used")
	}
	c := *r
	c.current = nil
	return &c, nil
}

func (s *store) GetRefreshTokenInfo(_ context.Context, clientID, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[token]
	if !ok || r.clientID != clientID {
		return "", "", op.ErrInvalidRefreshToken
	}
	return r.userID, token, nil
}

// endSessions revokes userID's refresh and access tokens.
func (s *store) endSessions(userID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.refresh {
		if r.userID == userID {
			delete(s.refresh, k)
			n++
		}
	}
	for k, t := range s.tokens {
		if t.subject == userID {
			delete(s.tokens, k)
		}
	}
	return n
}

func (s *store) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, k)
		}
	}
	for k, r := range s.refresh {
		if r.userID == userID && r.clientID == clientID {
			delete(s.refresh, k)
		}
	}
	return nil
}

func (s *store) RevokeToken(_ context.Context, tokenOrID, _ string, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.refresh[tokenOrID]; ok {
		if r.clientID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		delete(s.refresh, tokenOrID)
		return nil
	}
	t, ok := s.tokens[tokenOrID]
	if !ok {
		return nil // unknown tokens count as revoked (RFC 7009)
	}
	if t.clientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
	}
	delete(s.tokens, tokenOrID)
	return nil
}

// ---- keys ----

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return &k.key.PublicKey }

func (s *store) SigningKey(context.Context) (op.SigningKey, error) {
	return &signingKey{id: s.keyID, key: s.key}, nil
}

func (s *store) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *store) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{&publicKey{signingKey{id: s.keyID, key: s.key}}}, nil
}

// ---- clients ----

func (s *store) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return nil, fmt.Errorf("client %q not found", id)
	}
	return c, nil
}

func (s *store) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	_, err := s.authenticate(id, secret)
	return err
}

func (s *store) authenticate(id, secret string) (*client, error) {
	s.mu.Lock()
	c, ok := s.clients[id]
	s.mu.Unlock()
	if !ok || c.secret == "" || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return nil, errors.New("wrong client id or secret")
	}
	return c, nil
}

func (s *store) ClientCredentials(_ context.Context, id, secret string) (op.Client, error) {
	return s.authenticate(id, secret)
}

func (s *store) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	return &clientTokenRequest{clientID: id, scopes: slices.Clone(scopes)}, nil
}

// ---- claims ----

// userClaims are the private claims every user access token carries.
func userClaims(u User) map[string]any {
	c := make(map[string]any, len(u.Claims)+8)
	for k, v := range u.Claims {
		c[k] = v
	}
	c[ClaimEmail] = u.Email
	c["email_verified"] = true
	c["preferred_username"] = u.Username
	if name := strings.TrimSpace(u.GivenName + " " + u.FamilyName); name != "" {
		c["name"] = name
	}
	if u.GivenName != "" {
		c["given_name"] = u.GivenName
	}
	if u.FamilyName != "" {
		c["family_name"] = u.FamilyName
	}
	c[ClaimRoles] = cloneStrings(u.Roles)
	c[ClaimGroups] = cloneStrings(u.Groups)
	return c
}

func (s *store) privateClaims(subject string, scopes []string) map[string]any {
	var c map[string]any
	if u, ok := s.user(subject); ok {
		c = userClaims(u)
	} else {
		c = make(map[string]any, 1)
	}
	if len(scopes) > 0 {
		c[ClaimScope] = strings.Join(scopes, " ")
	}
	return c
}

func (s *store) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, _ []string) (map[string]any, error) {
	return s.privateClaims(req.GetSubject(), req.GetScopes()), nil
}

func (s *store) GetPrivateClaimsFromScopes(_ context.Context, userID, _ string, scopes []string) (map[string]any, error) {
	return s.privateClaims(userID, scopes), nil
}

func (s *store) setUserinfo(ui *oidc.UserInfo, userID string) error {
	u, ok := s.user(userID)
	if !ok {
		return fmt.Errorf("user %q not found", userID)
	}
	ui.Subject = u.ID
	ui.Email = u.Email
	ui.EmailVerified = true
	ui.PreferredUsername = u.Username
	ui.GivenName = u.GivenName
	ui.FamilyName = u.FamilyName
	ui.Name = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
	for k, v := range u.Claims {
		ui.AppendClaims(k, v)
	}
	ui.AppendClaims(ClaimRoles, cloneStrings(u.Roles))
	ui.AppendClaims(ClaimGroups, cloneStrings(u.Groups))
	return nil
}

// SetUserinfoFromScopes is deprecated in zitadel; SetUserinfoFromRequest does the work.
func (s *store) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *store) SetUserinfoFromRequest(_ context.Context, ui *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	return s.setUserinfo(ui, req.GetSubject())
}

func (s *store) tokenRecord(id string) (*tokenRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok {
		return nil, errors.New("token is invalid or revoked")
	}
	if time.Now().After(t.expiry) {
		return nil, errors.New("token is expired")
	}
	return t, nil
}

func (s *store) SetUserinfoFromToken(_ context.Context, ui *oidc.UserInfo, tokenID, subject, _ string) error {
	if _, err := s.tokenRecord(tokenID); err != nil {
		return err
	}
	return s.setUserinfo(ui, subject)
}

func (s *store) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, _ string) error {
	t, err := s.tokenRecord(tokenID)
	if err != nil {
		return err
	}
	resp.Subject = subject
	if u, ok := s.user(subject); ok {
		ui := new(oidc.UserInfo)
		if err := s.setUserinfo(ui, u.ID); err != nil {
			return err
		}
		resp.SetUserInfo(ui)
	}
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Audience = t.audience
	resp.Expiration = oidc.FromTime(t.expiry)
	return nil
}

func (s *store) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("devidp does not support private_key_jwt or the JWT profile grant")
}

func (s *store) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("devidp does not support the JWT profile grant")
}

func (s *store) Health(context.Context) error { return nil }

// ---- RFC 8693 token exchange ----

func (s *store) ValidateTokenExchangeRequest(ctx context.Context, req op.TokenExchangeRequest) error {
	switch req.GetRequestedTokenType() {
	case "":
		// RFC 8693 leaves the default to the server; zitadel's example picks a
		// refresh token. An access token is what every caller here wants.
		req.SetRequestedTokenType(oidc.AccessTokenType)
	case oidc.AccessTokenType, oidc.IDTokenType:
	default:
		return oidc.ErrInvalidRequest().WithDescription("requested_token_type %s is not supported; use %s", req.GetRequestedTokenType(), oidc.AccessTokenType)
	}
	u, ok := s.user(req.GetExchangeSubject())
	if !ok {
		return oidc.ErrInvalidRequest().WithDescription("subject_token does not belong to a user of this IdP")
	}
	for _, r := range req.GetResourses() {
		if !slices.Contains(req.GetAudience(), r) {
			return oidc.ErrInvalidTarget().WithDescription("devidp puts only audience values into aud; send resource %q as audience too", r)
		}
	}
	if s.policy != nil {
		pctx := withUser(ctx, u)
		if err := s.policy(pctx, req.GetClientID(), u.ID, slices.Clone(req.GetAudience()), slices.Clone(req.GetScopes())); err != nil {
			s.log.InfoContext(ctx, "token exchange refused",
				"client_id", req.GetClientID(), "subject", u.ID, "audience", req.GetAudience(), "error", err)
			return asOAuthError(err)
		}
	}
	s.mu.Lock()
	s.exchanges = append(s.exchanges, Exchange{
		ClientID: req.GetClientID(),
		Subject:  u.ID,
		Audience: slices.Clone(req.GetAudience()),
		Scopes:   slices.Clone(req.GetScopes()),
		Time:     time.Now(),
	})
	s.mu.Unlock()
	s.log.InfoContext(ctx, "token exchange allowed",
		"client_id", req.GetClientID(), "subject", u.ID, "audience", req.GetAudience())
	return nil
}

// asOAuthError keeps an *oidc.Error as it is and turns any other refusal
// into access_denied, so a policy error never surfaces as a 500.
func asOAuthError(err error) error {
	var oe *oidc.Error
	if errors.As(err, &oe) {
		return oe
	}
	return oidc.ErrAccessDenied().WithDescription("%s", err.Error())
}

func (s *store) CreateTokenExchangeRequest(context.Context, op.TokenExchangeRequest) error {
	return nil
}

func (s *store) GetPrivateClaimsFromTokenExchangeRequest(_ context.Context, req op.TokenExchangeRequest) (map[string]any, error) {
	c := s.privateClaims(req.GetSubject(), req.GetScopes())
	if actor := req.GetExchangeActor(); actor != "" {
		c["act"] = map[string]any{"sub": actor}
	}
	return c, nil
}

func (s *store) SetUserinfoFromTokenExchangeRequest(_ context.Context, ui *oidc.UserInfo, req op.TokenExchangeRequest) error {
	return s.setUserinfo(ui, req.GetSubject())
}
