package authserver

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/authserver/clients"
)

// Identity Assertion JWT Authorization Grants (ID-JAG, the MCP
// Enterprise-Managed Authorization extension).
const (
	typIDJAG = "oauth-id-jag+jwt"
	// maxJAGLifetime refuses assertions meant to live longer (exp - iat).
	maxJAGLifetime = 10 * time.Minute
	jagSkew        = 30 * time.Second
)

// jagAlgorithms are the signature algorithms accepted on an ID-JAG.
var jagAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jagState is the IdP's key set, built on first use (discovery happens
// then, not at start-up).
type jagState struct {
	mu   sync.Mutex
	keys *oidc.RemoteKeySet
}

func (s *Server) jagIssuer() string {
	if iss := s.cfg.EnterpriseManaged.Issuer; iss != "" {
		return iss
	}
	return s.opts.IdPIssuer
}

func (s *Server) jagKeys(ctx context.Context) (*oidc.RemoteKeySet, error) {
	j := &s.keys.jag
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.keys != nil {
		return j.keys, nil
	}
	client := s.opts.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	// The key set outlives this request: its context only carries the
	// HTTP client.
	kctx := oidc.ClientContext(context.Background(), client)
	url := s.cfg.EnterpriseManaged.JWKSURL
	if url == "" {
		p, err := oidc.NewProvider(oidc.ClientContext(ctx, client), s.jagIssuer())
		if err != nil {
			return nil, fmt.Errorf("OIDC discovery for the ID-JAG issuer: %w", err)
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
			return nil, fmt.Errorf("OIDC discovery for the ID-JAG issuer %s: no jwks_uri", s.jagIssuer())
		}
		url = meta.JWKSURI
	}
	j.keys = oidc.NewRemoteKeySet(kctx, url)
	return j.keys, nil
}

// grantIDJAG redeems an ID-JAG (RFC 7523 jwt-bearer grant): no browser,
// no consent, no refresh token.
func (s *Server) grantIDJAG(r *http.Request, client *clients.Client, start time.Time) (*tokenResponse, *tokenError) {
	ctx := r.Context()
	jag := r.PostForm.Get("assertion")
	if jag == "" {
		return nil, tokInvalidRequest("assertion is required")
	}
	if len(jag) > authn.MaxTokenBytes {
		return nil, tokInvalidGrant("the assertion is too large")
	}
	parts := strings.Split(jag, ".")
	if len(parts) != 3 {
		return nil, tokInvalidGrant("the assertion is not a signed JWT")
	}
	hdr, ok := decodeHeader(parts[0])
	if !ok {
		return nil, tokInvalidGrant("the assertion's header is malformed")
	}
	if !typEqual(hdr.Typ, typIDJAG) {
		return nil, tokInvalidGrant("the assertion's type (JOSE typ %q) is not %s", truncDesc(hdr.Typ, 50), typIDJAG)
	}
	if !slices.Contains(jagAlgorithms, hdr.Alg) {
		return nil, tokInvalidGrant("the assertion's signature algorithm %q is not allowed", truncDesc(hdr.Alg, 20))
	}
	// Cheap claim checks before fetching keys: the issuer decides which
	// keys to use.
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, tokInvalidGrant("the assertion's claims are malformed")
	}
	claims, err := authn.DecodeClaims(raw)
	if err != nil {
		return nil, tokInvalidGrant("the assertion's claims are not a JSON object")
	}
	if iss, _ := claims["iss"].(string); iss != s.jagIssuer() {
		return nil, tokInvalidGrant("the assertion's issuer %q is not the trusted identity provider", truncDesc(iss, 200))
	}
	keys, err := s.jagKeys(ctx)
	if err != nil {
		s.log.Warn("loading the ID-JAG issuer's keys", "error", err)
		return nil, tokErr(http.StatusServiceUnavailable, "temporarily_unavailable", "the identity provider's keys could not be loaded; try again")
	}
	payload, err := keys.VerifySignature(ctx, jag)
	if err != nil {
		return nil, tokInvalidGrant("the assertion's signature is invalid or made with an unknown key")
	}
	if claims, err = authn.DecodeClaims(payload); err != nil {
		return nil, tokInvalidGrant("the assertion's claims are not a JSON object")
	}
	if iss, _ := claims["iss"].(string); iss != s.jagIssuer() {
		return nil, tokInvalidGrant("the assertion's issuer is not the trusted identity provider")
	}
	switch aud := claims["aud"].(type) {
	case string:
		if aud != s.opts.Issuer {
			return nil, tokInvalidGrant("the assertion's audience is not this authorization server (%s)", s.opts.Issuer)
		}
	case []any:
		if a, _ := singleString(aud); a != s.opts.Issuer {
			return nil, tokInvalidGrant("the assertion's audience must be exactly this authorization server (%s)", s.opts.Issuer)
		}
	default:
		return nil, tokInvalidGrant("the assertion has no audience")
	}
	if cid, _ := claims["client_id"].(string); cid != client.ID {
		return nil, tokInvalidGrant("the assertion was issued to another client")
	}
	if res, _ := claims["resource"].(string); res != s.opts.Resource {
		if arr, ok := claims["resource"].([]any); !ok || !singleIs(arr, s.opts.Resource) {
			return nil, tokErr(http.StatusBadRequest, "invalid_grant", "the assertion's resource is not %s", s.opts.Resource)
		}
	}
	now := s.now()
	exp, okExp := claimTime(claims["exp"])
	iat, okIat := claimTime(claims["iat"])
	jti, _ := claims["jti"].(string)
	sub, _ := claims["sub"].(string)
	switch {
	case !okExp || !okIat:
		return nil, tokInvalidGrant("the assertion must have exp and iat")
	case sub == "":
		return nil, tokInvalidGrant("the assertion has no sub")
	case jti == "":
		return nil, tokInvalidGrant("the assertion has no jti")
	case !now.Before(exp.Add(jagSkew)):
		return nil, tokInvalidGrant("the assertion has expired")
	case iat.After(now.Add(jagSkew)):
		return nil, tokInvalidGrant("the assertion was issued in the future (iat)")
	case exp.Sub(iat) > maxJAGLifetime:
		return nil, tokInvalidGrant("the assertion lives longer than %s (exp - iat)", maxJAGLifetime)
	}
	if nbf, ok := claimTime(claims["nbf"]); ok && now.Add(jagSkew).Before(nbf) {
		return nil, tokInvalidGrant("the assertion is not valid yet (nbf)")
	}
	// Scope: the assertion's (if any) limited to what Mandate grants; the
	// request may narrow it.
	granted := s.Scopes()
	if sc, ok := claims["scope"].(string); ok {
		var in []string
		for _, x := range strings.Fields(sc) {
			if slices.Contains(granted, x) {
				in = append(in, x)
			}
		}
		granted = in
	}
	if sc := r.PostForm.Get("scope"); sc != "" {
		for _, want := range strings.Fields(sc) {
			if !slices.Contains(granted, want) {
				return nil, tokErr(http.StatusBadRequest, "invalid_scope", "scope %q is not granted by the assertion", truncDesc(want, 100))
			}
		}
		granted = strings.Fields(sc)
	}
	mapped, e := s.opts.Identity.IdentityFromClaims(claims)
	if e != nil {
		return nil, tokInvalidGrant("the assertion's claims do not identify a user: %s", e.Description)
	}
	fresh, err := s.opts.Store.UseJTI(ctx, s.jagIssuer(), jti, exp.Add(jagSkew))
	if err != nil {
		s.log.Error("recording an ID-JAG jti", "error", err)
		return nil, tokServerError("the assertion could not be recorded; try again")
	}
	if !fresh {
		return nil, tokInvalidGrant("the assertion was already used (jti)")
	}
	sid, err := s.sessions.create(ctx, SessionKindIDJAG, &oauth2.Token{AccessToken: jag, Expiry: exp}, "", claims)
	if err != nil {
		s.log.Error("storing the ID-JAG session", "error", err)
		return nil, tokServerError("the sign-in could not be stored; try again")
	}
	id := mapped.WithRawToken(jag)
	resp, te := s.issueAccess(ctx, client, id, sid, randomToken(16), strings.Join(granted, " "), exp)
	if te != nil {
		return nil, te
	}
	s.auditTok(ctx, &audit.Record{Method: audit.MethodOAuthToken, User: audit.UserFromIdentity(id), OAuthClient: client.ID, Outcome: audit.OutcomeOK}, start)
	return resp, nil
}

func singleString(a []any) (string, bool) {
	if len(a) != 1 {
		return "", false
	}
	s, ok := a[0].(string)
	return s, ok
}

func singleIs(a []any, want string) bool {
	s, ok := singleString(a)
	return ok && s == want
}

func claimTime(v any) (time.Time, bool) {
	switch n := v.(type) {
	case json.Number:
		f, err := n.Float64()
		return time.Unix(int64(f), 0), err == nil
	case float64:
		return time.Unix(int64(n), 0), true
	}
	return time.Time{}, false
}
