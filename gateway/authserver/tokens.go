package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/internal/identity"
)

// Access tokens.
const (
	// accessTokenSkew is the tolerance on exp and nbf.
	accessTokenSkew = 30 * time.Second
	// verifiedCacheSize bounds the cache of verified access tokens.
	verifiedCacheSize = 50_000
	// maxForeignHeaders bounds the set of JOSE headers known not to be
	// Mandate's (IdP tokens: one per IdP key).
	maxForeignHeaders = 1024
)

// accessClaims are the claims of a Mandate access token (RFC 9068 plus
// sid, the IdP session, and fam, the refresh-token family).
type accessClaims struct {
	Iss      string `json:"iss"`
	Aud      string `json:"aud"`
	Sub      string `json:"sub"`
	Exp      int64  `json:"exp"`
	Iat      int64  `json:"iat"`
	Nbf      int64  `json:"nbf,omitempty"`
	Jti      string `json:"jti"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	Sid      string `json:"sid"`
	Fam      string `json:"fam"`
}

// verified is one access token whose signature and claims were checked.
type verified struct {
	exp      time.Time
	sid, fam string
	clientID string
	kid      string
	// derived is the identity last returned for this token, built from
	// the session identity base: reused while the session's identity is
	// the same pointer, so a warm call allocates nothing.
	derived atomic.Pointer[derivedID]
}

type derivedID struct {
	base, id *identity.Identity
}

// tokenState is the in-memory state of the access-token verifier.
type tokenState struct {
	cache *lru.Cache[string, *verified]
	// foreign are JOSE header segments of tokens that are not Mandate's
	// (IdP tokens), so they go to the IdP verifier after one map lookup.
	foreignMu sync.Mutex
	foreign   atomic.Pointer[map[string]struct{}] // copy on write
	// revoked are revoked refresh-token families (fam) → when this replica
	// learnt it; copy on write.
	revokedMu sync.Mutex
	revoked   atomic.Pointer[map[string]time.Time]
}

func newTokenState() *tokenState {
	t := &tokenState{}
	t.cache, _ = lru.New[string, *verified](verifiedCacheSize)
	m := map[string]time.Time{}
	t.revoked.Store(&m)
	t.forgetForeign()
	return t
}

func (t *tokenState) forgetForeign() {
	t.foreignMu.Lock()
	defer t.foreignMu.Unlock()
	t.foreign.Store(&map[string]struct{}{})
}

func (t *tokenState) isForeign(header string) bool {
	_, ok := (*t.foreign.Load())[header]
	return ok
}

func (t *tokenState) addForeign(header string) {
	t.foreignMu.Lock()
	defer t.foreignMu.Unlock()
	old := *t.foreign.Load()
	if _, ok := old[header]; ok || len(old) >= maxForeignHeaders {
		return
	}
	m := make(map[string]struct{}, len(old)+1)
	for h := range old {
		m[h] = struct{}{}
	}
	m[strings.Clone(header)] = struct{}{}
	t.foreign.Store(&m)
}

// isRevoked reports whether family fam is revoked.
func (t *tokenState) isRevoked(fam string) bool {
	_, ok := (*t.revoked.Load())[fam]
	return ok
}

// addRevoked records revoked families; prunes those revoked longer ago
// than any access token lives.
func (t *tokenState) addRevoked(now time.Time, fams ...string) {
	t.revokedMu.Lock()
	defer t.revokedMu.Unlock()
	old := *t.revoked.Load()
	added := false
	for _, f := range fams {
		if _, ok := old[f]; !ok && f != "" {
			added = true
		}
	}
	cutoff := now.Add(-(MaxAccessTokenTTL + 2*accessTokenSkew))
	prune := false
	for _, at := range old {
		if at.Before(cutoff) {
			prune = true
			break
		}
	}
	if !added && !prune {
		return
	}
	m := make(map[string]time.Time, len(old)+len(fams))
	for f, at := range old {
		if !at.Before(cutoff) {
			m[f] = at
		}
	}
	for _, f := range fams {
		if _, ok := m[f]; !ok && f != "" {
			m[f] = now
		}
	}
	t.revoked.Store(&m)
}

func (s *Server) accessTTL() time.Duration {
	switch ttl := s.cfg.AccessTokenTTL; {
	case ttl <= 0:
		return DefaultAccessTokenTTL
	case ttl > MaxAccessTokenTTL:
		return MaxAccessTokenTTL
	default:
		return ttl
	}
}

// mintAccessToken signs an access token with the active key.
func (s *Server) mintAccessToken(c accessClaims) (string, error) {
	sk := s.keys.cur.Load().active
	if sk == nil {
		return "", errors.New("no active signing key")
	}
	c.Iss, c.Aud = s.opts.Issuer, s.opts.Resource
	if c.Jti == "" {
		c.Jti = randomToken(16)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	input := sk.header + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	r, ss, err := ecdsa.Sign(rand.Reader, sk.priv, sum[:])
	if err != nil {
		return "", err
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

func invalidToken(format string, args ...any) *authn.Error {
	return &authn.Error{Status: http.StatusUnauthorized, Code: "invalid_token", Description: fmt.Sprintf(format, args...)}
}

// verifyAccessToken is the hot path (every MCP request with a bearer
// token, before the IdP verifier). A token is Mandate's when its JOSE
// header is one Mandate signs with (one map lookup) or, for an unknown
// header, when its iss is Mandate's; anything else is ok=false and goes to
// the IdP verifier. A warm call is two map lookups, an LRU lookup of the
// token, the revocation set and the session cache: no allocation, no
// database.
func (s *Server) verifyAccessToken(ctx context.Context, raw string) (*identity.Identity, bool, *authn.Error) {
	dot := strings.IndexByte(raw, '.')
	if dot <= 0 {
		return nil, false, nil
	}
	sk := s.keys.cur.Load().byHeader[raw[:dot]]
	if sk == nil {
		if s.keys.tok.isForeign(raw[:dot]) {
			return nil, false, nil
		}
	}
	if v, hit := s.keys.tok.cache.Get(raw); hit {
		id, e := s.finishAccess(ctx, v)
		return id, true, e
	}
	v, ours, e := s.checkAccessToken(ctx, raw, dot, sk)
	if !ours {
		return nil, false, nil
	}
	if e != nil {
		return nil, true, e
	}
	s.keys.tok.cache.Add(raw, v)
	id, e := s.finishAccess(ctx, v)
	return id, true, e
}

// finishAccess checks what may change after a token was verified (expiry,
// revocation, the IdP session) and returns the identity.
func (s *Server) finishAccess(ctx context.Context, v *verified) (*identity.Identity, *authn.Error) {
	now := s.now()
	if now.After(v.exp.Add(accessTokenSkew)) {
		return nil, invalidToken("token expired")
	}
	if s.keys.tok.isRevoked(v.fam) {
		return nil, invalidToken("token has been revoked")
	}
	if s.keys.cur.Load().byID[v.kid] == nil {
		return nil, invalidToken("token signed with a key that is no longer published")
	}
	base, err := s.sessions.identity(ctx, v.sid)
	if err != nil {
		if errors.Is(err, ErrSessionEnded) {
			return nil, invalidToken("the sign-in at the identity provider has ended; sign in again")
		}
		s.log.Warn("loading the IdP session of an access token failed", "error", err)
		return nil, &authn.Error{Status: http.StatusServiceUnavailable, Description: "the sign-in session could not be loaded; try again"}
	}
	if d := v.derived.Load(); d != nil && d.base == base {
		return d.id, nil
	}
	c := *base
	c.OAuthClient = v.clientID
	if c.Expiry.IsZero() || v.exp.Before(c.Expiry) {
		c.Expiry = v.exp
	}
	v.derived.Store(&derivedID{base: base, id: &c})
	return &c, nil
}

// checkAccessToken verifies a token not in the cache. sk is the key whose
// exact header the token carries, or nil. ours is false when the token is
// not Mandate's.
func (s *Server) checkAccessToken(ctx context.Context, raw string, dot int, sk *signingKey) (v *verified, ours bool, e *authn.Error) {
	if len(raw) > authn.MaxTokenBytes {
		return nil, sk != nil, invalidToken("bearer token too large")
	}
	rest := raw[dot+1:]
	dot2 := strings.IndexByte(rest, '.')
	if dot2 < 0 || strings.IndexByte(rest[dot2+1:], '.') >= 0 {
		return nil, sk != nil, invalidToken("malformed token")
	}
	payloadB64, sigB64 := rest[:dot2], rest[dot2+1:]
	payload, err := base64.RawURLEncoding.DecodeString(payloadB64)
	if err != nil {
		return nil, sk != nil, invalidToken("malformed token")
	}
	if sk == nil {
		var iss struct {
			Iss string `json:"iss"`
		}
		if json.Unmarshal(payload, &iss) != nil {
			return nil, false, nil
		}
		if iss.Iss != s.opts.Issuer {
			// Not Mandate's: remember its header unless it looks like
			// ours (an ES256 at+jwt key we may not have loaded yet).
			if hdr, ok := decodeHeader(raw[:dot]); ok && !(hdr.Alg == algES256 && typEqual(hdr.Typ, typAT)) {
				s.keys.tok.addForeign(raw[:dot])
			}
			return nil, false, nil
		}
		hdr, ok := decodeHeader(raw[:dot])
		if !ok {
			return nil, true, invalidToken("malformed token header")
		}
		if !typEqual(hdr.Typ, typAT) {
			return nil, true, invalidToken("token type (JOSE typ %q) is not %s", hdr.Typ, typAT)
		}
		if hdr.Alg != algES256 {
			return nil, true, invalidToken("token signature algorithm %q is not allowed", hdr.Alg)
		}
		if sk = s.keys.cur.Load().byID[hdr.Kid]; sk == nil {
			if sk = s.keys.reloadForUnknown(ctx, hdr.Kid); sk == nil {
				return nil, true, invalidToken("token signed with an unknown key")
			}
		}
	}
	var c accessClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, true, invalidToken("token claims are malformed")
	}
	if c.Iss != s.opts.Issuer {
		return nil, true, invalidToken("token issuer is not this authorization server")
	}
	if !verifyES256(sk.pub, raw[:dot+1+dot2], sigB64) {
		return nil, true, invalidToken("token signature is invalid")
	}
	now := s.now()
	switch {
	case c.Aud != s.opts.Resource:
		return nil, true, invalidToken("token audience is not this resource")
	case c.Exp == 0:
		return nil, true, invalidToken("token has no exp claim")
	case now.After(time.Unix(c.Exp, 0).Add(accessTokenSkew)):
		return nil, true, invalidToken("token expired")
	case c.Nbf != 0 && now.Add(accessTokenSkew).Before(time.Unix(c.Nbf, 0)):
		return nil, true, invalidToken("token not valid yet (nbf)")
	case c.Sid == "" || c.Fam == "":
		return nil, true, invalidToken("token has no session")
	}
	return &verified{exp: time.Unix(c.Exp, 0), sid: c.Sid, fam: c.Fam, clientID: c.ClientID, kid: sk.id}, true, nil
}

// parseOwnAccessToken verifies the signature, issuer and audience of a
// Mandate access token, ignoring expiry, revocation and the session (for
// revocation, RFC 7009). ok is false for anything else.
func (s *Server) parseOwnAccessToken(raw string) (accessClaims, bool) {
	var c accessClaims
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return c, false
	}
	hdr, ok := decodeHeader(parts[0])
	if !ok || hdr.Alg != algES256 || !typEqual(hdr.Typ, typAT) {
		return c, false
	}
	sk := s.keys.cur.Load().byID[hdr.Kid]
	if sk == nil || !verifyES256(sk.pub, parts[0]+"."+parts[1], parts[2]) {
		return c, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil || json.Unmarshal(payload, &c) != nil || c.Iss != s.opts.Issuer || c.Aud != s.opts.Resource {
		return c, false
	}
	return c, true
}

type joseHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

func decodeHeader(seg string) (joseHeader, bool) {
	var h joseHeader
	if len(seg) > 1024 {
		return h, false
	}
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil || json.Unmarshal(b, &h) != nil {
		return h, false
	}
	return h, true
}

// typEqual compares JOSE typ values per RFC 7515 §4.1.9: case-
// insensitively, the "application/" prefix optional.
func typEqual(got, want string) bool {
	if len(got) > 12 && strings.EqualFold(got[:12], "application/") {
		got = got[12:]
	}
	return strings.EqualFold(got, want)
}

// verifyES256 checks a JWS ES256 signature (r || s, 64 bytes) over input.
func verifyES256(pub *ecdsa.PublicKey, input, sigB64 string) bool {
	if base64.RawURLEncoding.DecodedLen(len(sigB64)) != 64 {
		return false
	}
	var sig [64]byte
	if n, err := base64.RawURLEncoding.Decode(sig[:], unsafe.Slice(unsafe.StringData(sigB64), len(sigB64))); err != nil || n != 64 {
		return false
	}
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(input), len(input)))
	r := new(big.Int).SetBytes(sig[:32])
	ss := new(big.Int).SetBytes(sig[32:])
	return ecdsa.Verify(pub, sum[:], r, ss)
}
