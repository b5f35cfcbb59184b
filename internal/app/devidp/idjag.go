package devidp

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// Identity Assertion JWT Authorization Grant (ID-JAG, Cross App Access):
// zitadel v3.52.0's token exchange refuses requested_token_type id-jag, so
// the IdP answers those requests itself, before zitadel sees them.
const (
	// TokenTypeIDJAG is the requested and issued token type of an ID-JAG.
	TokenTypeIDJAG = "urn:ietf:params:oauth:token-type:id-jag"
	// TypIDJAG is the JOSE typ header of an ID-JAG.
	TypIDJAG = "oauth-id-jag+jwt"
	// IDJAGLifetime is how long an ID-JAG is valid.
	IDJAGLifetime = 5 * time.Minute

	tokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
)

// wantsIDJAG reports whether the token request r (a parsed POST) asks for
// an ID-JAG.
func wantsIDJAG(r *http.Request) bool {
	return r.PostForm.Get("grant_type") == string(oidc.GrantTypeTokenExchange) &&
		r.PostForm.Get("requested_token_type") == TokenTypeIDJAG
}

// serveIDJAG issues an ID-JAG by RFC 8693 token exchange: the client
// authenticates (client_secret_basic or client_secret_post), the subject
// token is an access token (or ID token) this IdP issued to one of its
// users, audience names the resource authorization server (its issuer,
// exactly one). The JWT is signed with the IdP's key: typ
// oauth-id-jag+jwt; iss, sub, aud (the audience), client_id (the
// requesting client), jti, iat, exp (IDJAGLifetime), resource and scope
// when requested, email. Options.ExchangePolicy decides it like any
// exchange (audience = [the audience]).
func (p *IdP) serveIDJAG(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	clientID, secret, basic := r.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: form-urlencoded before base64.
		var e1, e2 error
		clientID, e1 = url.QueryUnescape(clientID)
		secret, e2 = url.QueryUnescape(secret)
		if e1 != nil || e2 != nil {
			clientID, secret = "", ""
		}
	} else {
		clientID, secret = f.Get("client_id"), f.Get("client_secret")
	}
	if _, err := p.store.authenticate(clientID, secret); err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="devidp"`)
		jagError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	if len(f["audience"]) != 1 || f.Get("audience") == "" {
		jagError(w, http.StatusBadRequest, "invalid_request", "an ID-JAG needs exactly one audience: the resource authorization server's issuer")
		return
	}
	audience := f.Get("audience")
	tokType := f.Get("subject_token_type")
	if tokType != string(oidc.AccessTokenType) && tokType != tokenTypeIDToken {
		jagError(w, http.StatusBadRequest, "invalid_request", "subject_token_type must be "+string(oidc.AccessTokenType)+" or "+tokenTypeIDToken)
		return
	}
	sub, errDesc := p.verifySubjectToken(f.Get("subject_token"), tokType, clientID)
	if errDesc != "" {
		jagError(w, http.StatusBadRequest, "invalid_grant", errDesc)
		return
	}
	u, ok := p.store.user(sub)
	if !ok {
		jagError(w, http.StatusBadRequest, "invalid_grant", "subject_token does not belong to a user of this IdP")
		return
	}
	scopes := strings.Fields(f.Get("scope"))
	if p.store.policy != nil {
		ctx := r.Context()
		pctx := withUser(ctx, u)
		if err := p.store.policy(pctx, clientID, u.ID, []string{audience}, slices.Clone(scopes)); err != nil {
			p.log.InfoContext(ctx, "ID-JAG refused", "client_id", clientID, "subject", u.ID, "audience", audience, "error", err)
			oe, _ := asOAuthError(err).(*oidc.Error)
			jagError(w, http.StatusBadRequest, string(oe.ErrorType), oe.Description)
			return
		}
	}
	jti, err := randomID()
	if err != nil {
		jagError(w, http.StatusInternalServerError, "server_error", "random")
		return
	}
	now := time.Now()
	claims := map[string]any{
		"iss": p.issuer, "sub": u.ID, "aud": audience, "client_id": clientID, "jti": jti,
		"iat": now.Unix(), "exp": now.Add(IDJAGLifetime).Unix(),
	}
	switch res := f["resource"]; len(res) {
	case 0:
	case 1:
		claims["resource"] = res[0]
	default:
		claims["resource"] = res
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	if u.Email != "" {
		claims[ClaimEmail] = u.Email
	}
	jag, err := p.signTyped(claims, TypIDJAG)
	if err != nil {
		jagError(w, http.StatusInternalServerError, "server_error", "signing the ID-JAG failed")
		return
	}
	p.store.mu.Lock()
	p.store.exchanges = append(p.store.exchanges, Exchange{ClientID: clientID, Subject: u.ID,
		Audience: []string{audience}, Scopes: scopes, Time: now, IssuedTokenType: TokenTypeIDJAG})
	p.store.mu.Unlock()
	p.log.InfoContext(r.Context(), "ID-JAG issued", "client_id", clientID, "subject", u.ID, "audience", audience)
	resp := map[string]any{"access_token": jag, "issued_token_type": TokenTypeIDJAG, "token_type": "N_A",
		"expires_in": int(IDJAGLifetime / time.Second)}
	if len(scopes) > 0 {
		resp["scope"] = strings.Join(scopes, " ")
	}
	writeJAGJSON(w, http.StatusOK, resp)
}

// verifySubjectToken checks that raw is a JWT this IdP signed, current,
// and returns its sub; an access token must not be revoked, an ID token
// must be for clientID. The error is an error_description.
func (p *IdP) verifySubjectToken(raw, tokType, clientID string) (string, string) {
	if raw == "" {
		return "", "subject_token is required"
	}
	tok, err := jwt.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return "", "subject_token is not a JWT of this IdP"
	}
	var c jwt.Claims
	if err := tok.Claims(&p.store.key.PublicKey, &c); err != nil {
		return "", "subject_token is not signed by this IdP"
	}
	exp := jwt.Expected{Issuer: p.issuer, Time: time.Now()}
	if tokType == tokenTypeIDToken {
		exp.AnyAudience = jwt.Audience{clientID}
	}
	if err := c.ValidateWithLeeway(exp, 0); err != nil || c.Subject == "" || c.Expiry == nil {
		return "", "subject_token is expired, not yet valid, for another issuer or audience, or has no subject"
	}
	if _, ok := p.store.user(c.Subject); !ok {
		return c.Subject, "" // the caller refuses unknown users
	}
	if tokType == string(oidc.AccessTokenType) {
		if _, err := p.store.tokenRecord(c.ID); err != nil {
			return "", "subject_token is invalid or revoked"
		}
	}
	return c.Subject, ""
}

// signTyped signs claims with the IdP's key and JOSE typ typ.
func (p *IdP) signTyped(claims map[string]any, typ string) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.store.key, KeyID: p.store.keyID}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)),
	)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func jagError(w http.ResponseWriter, status int, code, desc string) {
	writeJAGJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJAGJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
