package authn

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/coreos/go-oidc/v3/oidc"
	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/mandate-gw/mandate/internal/identity"
)

// DefaultCacheSize bounds the verified-token cache.
const DefaultCacheSize = 50_000

// Options are the run-time dependencies of an Authenticator; the zero value works.
type Options struct {
	// HTTPClient fetches discovery and JWKS. Default: a client with a 10s timeout.
	HTTPClient *http.Client
	// Logger receives key-loading events. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// CacheSize bounds the verified-token cache. Default DefaultCacheSize.
	CacheSize int
}

// Authenticator verifies bearer tokens and maps them to identities. It is
// safe for concurrent use.
type Authenticator struct {
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	client   *http.Client
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	cache    *lru.Cache[[32]byte, *cached]
	lastErr  atomic.Pointer[string]
}

// cached is one verified token: its identity and the id of the key that
// signed it (dropped when the IdP stops publishing that key).
type cached struct {
	id  *identity.Identity
	key string
}

// New returns an Authenticator for cfg (defaults applied by the caller via
// Config.WithDefaults). Call Start to load the IdP's keys.
func New(cfg Config, opts Options) *Authenticator {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	a := &Authenticator{cfg: cfg, log: opts.Logger, now: opts.Now, client: opts.HTTPClient}
	a.keys = newKeySet(opts.HTTPClient, opts.Logger, opts.Now, cfg.Algorithms)
	a.keys.onRemove = a.dropKeys
	a.verifier = oidc.NewVerifier(cfg.Issuer, a.keys, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: cfg.Algorithms,
		SkipExpiryCheck:      true, // checked below with the configured skew
	})
	a.cache, _ = lru.New[[32]byte, *cached](opts.CacheSize)
	if cfg.JWKSURL != "" {
		a.keys.setURL(cfg.JWKSURL)
	}
	return a
}

// Forget drops cached verifications of one user's tokens (after a purge,
// their next request is verified afresh).
func (a *Authenticator) Forget(issuer, subject string) int {
	n := 0
	for _, k := range a.cache.Keys() {
		if e, ok := a.cache.Peek(k); ok && e.id.Issuer == issuer && e.id.Subject == subject {
			a.cache.Remove(k)
			n++
		}
	}
	return n
}

// dropKeys drops cached verifications of tokens signed by keys the IdP no
// longer publishes: a withdrawn (e.g. compromised) key stops working at
// once, not when the tokens it signed expire.
func (a *Authenticator) dropKeys(removed map[string]bool) {
	n := 0
	for _, k := range a.cache.Keys() {
		if e, ok := a.cache.Peek(k); ok && removed[e.key] {
			a.cache.Remove(k)
			n++
		}
	}
	a.log.Info("identity provider withdrew signing keys; dropped the tokens they signed from the verification cache", "keys", len(removed), "tokens", n)
}

// Config returns the configuration in use.
func (a *Authenticator) Config() Config { return a.cfg }

// Ready reports whether the IdP's signing keys are loaded.
func (a *Authenticator) Ready() bool { return a.keys.loaded() }

// Status describes the key-loading state for /readyz.
func (a *Authenticator) Status() string {
	if a.keys.loaded() {
		return "ok"
	}
	if e := a.lastErr.Load(); e != nil {
		return *e
	}
	return "loading signing keys"
}

// Start loads the IdP's discovery document (unless jwks_url is set) and its
// keys, retrying with exponential back-off until ctx ends; then it refreshes
// the keys periodically. It returns at once; work happens in a goroutine.
func (a *Authenticator) Start(ctx context.Context) {
	go a.run(ctx)
}

func (a *Authenticator) run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for {
		err := a.load(ctx)
		if err == nil {
			break
		}
		msg := err.Error()
		a.lastErr.Store(&msg)
		a.log.Warn("identity provider not reachable; retrying", "issuer", a.cfg.Issuer, "error", msg, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff + rand.N(backoff/4+1)):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	a.log.Info("identity provider keys loaded", "issuer", a.cfg.Issuer)
	t := time.NewTicker(KeyRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.keys.refresh(ctx, MinKeyRefreshInterval); err != nil {
				a.log.Warn("refreshing signing keys failed; keeping cached keys", "error", err)
			}
		}
	}
}

func (a *Authenticator) load(ctx context.Context) error {
	if a.keys.url.Load() == nil {
		pctx := oidc.ClientContext(ctx, a.client)
		p, err := oidc.NewProvider(pctx, a.cfg.Issuer)
		if err != nil {
			return fmt.Errorf("OIDC discovery for %s: %w", a.cfg.Issuer, err)
		}
		var meta struct {
			JWKSURI string `json:"jwks_uri"`
		}
		if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
			return fmt.Errorf("OIDC discovery for %s: no jwks_uri", a.cfg.Issuer)
		}
		a.keys.setURL(meta.JWKSURI)
	}
	return a.keys.refresh(ctx, 0)
}

// Error is an authentication or authorization failure, shaped for an OAuth
// bearer challenge (RFC 6750 §3).
type Error struct {
	// Status is the HTTP status: 400, 401, 403 or 503.
	Status int
	// Code is the RFC 6750 error code: "" (no credentials presented),
	// invalid_request, invalid_token or insufficient_scope.
	Code string
	// Description is a human-readable reason, safe to show the client.
	Description string
	// Scopes are the scopes the resource needs (for insufficient_scope).
	Scopes []string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Description
	}
	return e.Code + ": " + e.Description
}

func fail(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Description: fmt.Sprintf(format, args...)}
}

// BearerToken extracts the token from the Authorization header values. A
// missing header or another scheme gives ok=false with no error (the client
// presented no bearer credentials); malformed bearer headers give an error.
func BearerToken(values []string) (token string, err *Error) {
	if len(values) == 0 {
		return "", fail(http.StatusUnauthorized, "", "bearer token required")
	}
	if len(values) > 1 {
		return "", fail(http.StatusBadRequest, "invalid_request", "more than one Authorization header")
	}
	scheme, rest, _ := strings.Cut(values[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", fail(http.StatusUnauthorized, "", "bearer token required")
	}
	tok := strings.TrimSpace(rest)
	switch {
	case tok == "":
		return "", fail(http.StatusUnauthorized, "invalid_token", "empty bearer token")
	case len(tok) > MaxTokenBytes:
		return "", fail(http.StatusUnauthorized, "invalid_token", "bearer token too large")
	case strings.Count(tok, ".") != 2:
		return "", fail(http.StatusUnauthorized, "invalid_token", "bearer token is not a JWT")
	}
	return tok, nil
}

// Authenticate verifies the Authorization header values and returns the
// caller's identity.
func (a *Authenticator) Authenticate(ctx context.Context, authorization []string) (*identity.Identity, *Error) {
	tok, e := BearerToken(authorization)
	if e != nil {
		return nil, e
	}
	id, e := a.verify(ctx, tok)
	if e != nil {
		return nil, e
	}
	if e := a.cfg.CheckScopes(id); e != nil {
		return nil, e
	}
	return id, nil
}

// CheckScopes refuses an identity whose scopes lack one of the
// RequiredScopes: 403 insufficient_scope, naming the missing ones. The
// Authenticator checks every identity with it (cached ones too), and
// `mandate explain` reports its refusal as the gateway would answer it.
func (c Config) CheckScopes(id *identity.Identity) *Error {
	if missing := missingScopes(id.Scopes, c.RequiredScopes); len(missing) > 0 {
		return &Error{Status: http.StatusForbidden, Code: "insufficient_scope",
			Description: "token lacks required scope(s): " + strings.Join(missing, " "),
			Scopes:      c.RequiredScopes}
	}
	return nil
}

func (a *Authenticator) verify(ctx context.Context, tok string) (*identity.Identity, *Error) {
	now := a.now()
	// Hash the token's bytes in place: []byte(tok) would copy ~1 KB per
	// request. Sum256 neither keeps nor modifies its input.
	key := sha256.Sum256(unsafe.Slice(unsafe.StringData(tok), len(tok)))
	if e, ok := a.cache.Get(key); ok {
		if now.After(e.id.Expiry.Add(a.cfg.ClockSkew)) {
			a.cache.Remove(key)
			return nil, fail(http.StatusUnauthorized, "invalid_token", "token expired")
		}
		return e.id, nil
	}
	info := new(verifyInfo)
	t, err := a.verifier.Verify(context.WithValue(ctx, verifyInfoKey{}, info), tok)
	if err != nil {
		if !a.keys.loaded() {
			return nil, fail(http.StatusServiceUnavailable, "", "%v", ErrKeysUnavailable)
		}
		return nil, fail(http.StatusUnauthorized, "invalid_token", "%s", describe(err))
	}
	if want := a.cfg.RequireTyp; want != "" && !typMatches(info.typ, want) {
		return nil, fail(http.StatusUnauthorized, "invalid_token", "token type (JOSE typ %q) is not %s: only access tokens are accepted", info.typ, want)
	}
	payload := info.payload
	if payload == nil { // not verified by our key set (cannot happen); ask go-oidc
		var raw json.RawMessage
		if err := t.Claims(&raw); err != nil {
			return nil, fail(http.StatusUnauthorized, "invalid_token", "token claims are not a JSON object")
		}
		payload = raw
	}
	claims, err := DecodeClaims(payload)
	if err != nil {
		return nil, fail(http.StatusUnauthorized, "invalid_token", "token claims are not a JSON object")
	}
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return nil, fail(http.StatusUnauthorized, "invalid_token", "token has no exp claim")
	}
	if now.After(exp.Add(a.cfg.ClockSkew)) {
		return nil, fail(http.StatusUnauthorized, "invalid_token", "token expired")
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(a.cfg.ClockSkew).Before(nbf) {
		return nil, fail(http.StatusUnauthorized, "invalid_token", "token not valid yet (nbf)")
	}
	mapped, e := a.cfg.IdentityFromClaims(claims)
	if e != nil {
		return nil, e
	}
	id := mapped.WithRawToken(tok)
	a.cache.Add(key, &cached{id: id, key: info.key})
	// A key withdrawn while this token was being verified: its purge may
	// have run before the Add above.
	if !a.keys.has(info.key) {
		a.cache.Remove(key)
	}
	return id, nil
}

// DecodeClaims decodes a JWT payload into a claims map whose numbers are
// json.Number: integers keep their exact value (1234567, not
// 1.234567e+06) and two large integers never collapse into one float64.
func DecodeClaims(payload []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	var claims map[string]any
	if err := d.Decode(&claims); err != nil {
		return nil, err
	}
	if claims == nil {
		return nil, errors.New("claims are null")
	}
	return claims, nil
}

// typMatches compares JOSE typ values as RFC 7515 §4.1.9 says: case-
// insensitively, with the "application/" prefix optional.
func typMatches(got, want string) bool {
	trim := func(s string) string {
		if len(s) > 12 && strings.EqualFold(s[:12], "application/") {
			return s[12:]
		}
		return s
	}
	return strings.EqualFold(trim(got), trim(want))
}

// IdentityFromClaims is the one mapping from a token's claims to the
// caller's identity under c (defaults applied): Issuer from iss, Subject
// from the Claims.Subject claim (a non-empty string, else 401; an
// email-like subject only when email_verified is true or
// TrustUnverifiedEmail, else 401), Email and EmailTrusted (email_verified,
// or TrustUnverifiedEmail), Roles and Groups (Lookup, then Strings),
// Scopes (scope; else scp, a string or a list, as Entra v2 sends it),
// Claims, and Expiry from exp (zero when absent). Refusals are 401
// invalid_token errors.
//
// The Authenticator maps every token it verifies with it (after checking
// signature, iss, aud, exp and nbf), and `mandate explain` maps a claims
// file with it, so both see the same user.
func (c Config) IdentityFromClaims(claims map[string]any) (identity.Identity, *Error) {
	cc := c.Claims
	raw := Lookup(claims, cc.Subject)
	sub, isString := raw.(string)
	switch {
	case raw != nil && !isString:
		return identity.Identity{}, fail(http.StatusUnauthorized, "invalid_token", "the token's %q claim is not a string", cc.Subject)
	case sub == "":
		return identity.Identity{}, fail(http.StatusUnauthorized, "invalid_token", "token has no %q claim", cc.Subject)
	}
	trusted := c.TrustUnverifiedEmail || emailVerified(claims)
	if !trusted && c.SubjectIsEmailLike() {
		return identity.Identity{}, fail(http.StatusUnauthorized, "invalid_token", "the subject claim %q is an email-like name the user may be able to change, and the token does not mark it verified (email_verified is not true); the gateway's identity.claims.subject should name an immutable claim such as sub or oid", cc.Subject)
	}
	iss, _ := claims["iss"].(string)
	exp, _ := numericDate(claims["exp"])
	email, _ := Lookup(claims, cc.Email).(string)
	return identity.Identity{
		Issuer:       iss,
		Subject:      sub,
		Email:        email,
		EmailTrusted: trusted,
		Roles:        Strings(Lookup(claims, cc.Roles)),
		Groups:       Strings(Lookup(claims, cc.Groups)),
		Scopes:       scopes(claims),
		Claims:       claims,
		Expiry:       exp,
	}, nil
}

// emailVerified reports whether the token's email_verified claim is true
// (a JSON boolean, or the string "true" some IdPs send).
func emailVerified(claims map[string]any) bool {
	switch v := claims["email_verified"].(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

// describe turns a go-oidc verification error into a short, client-safe reason.
func describe(err error) string {
	msg := strings.TrimPrefix(err.Error(), "oidc: ")
	switch {
	case strings.Contains(msg, "issued by a different provider"):
		return "token issuer is not trusted"
	case strings.Contains(msg, "expected audience"):
		return "token audience does not include this resource"
	case strings.Contains(msg, "unexpected signature algorithm"):
		return "token signature algorithm is not allowed"
	case strings.Contains(msg, "no signing key"):
		return "token signed with an unknown key"
	case strings.Contains(msg, "malformed jwt") || strings.Contains(msg, "malformed JWS"):
		return "malformed token"
	case strings.Contains(msg, "signature"):
		return "token signature is invalid"
	}
	if len(msg) > 120 {
		msg = msg[:120]
	}
	return msg
}

// Lookup returns the value at a dotted path in claims ("realm_access.roles"),
// or nil. An exact key containing dots wins over the nested path.
func Lookup(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	var cur any = claims
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		if cur, ok = m[part]; !ok {
			return nil
		}
	}
	return cur
}

// Strings turns a claim value (string, space-free list, or []any of strings)
// into a list; other types give nil.
func Strings(v any) []string {
	switch t := v.(type) {
	case string:
		if t == "" {
			return nil
		}
		return []string{t}
	case []string:
		return t
	case []any:
		out := make([]string, 0, len(t))
		for _, x := range t {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case map[string]any:
		// Some IdPs (zitadel project roles) encode roles as an object keyed by role.
		out := make([]string, 0, len(t))
		for k := range t {
			out = append(out, k)
		}
		slices.Sort(out)
		return out
	}
	return nil
}

func scopes(claims map[string]any) []string {
	if s, ok := claims["scope"].(string); ok {
		return strings.Fields(s)
	}
	switch v := claims["scp"].(type) {
	case string:
		return strings.Fields(v)
	case []any:
		return Strings(v)
	}
	return nil
}

func missingScopes(have, need []string) []string {
	var missing []string
outer:
	for _, n := range need {
		for _, h := range have {
			if h == n {
				continue outer
			}
		}
		missing = append(missing, n)
	}
	return missing
}

func numericDate(v any) (time.Time, bool) {
	switch n := v.(type) {
	case float64:
		return time.Unix(int64(n), 0), true
	case json.Number:
		f, err := n.Float64()
		return time.Unix(int64(f), 0), err == nil
	}
	return time.Time{}, false
}
