package testhydra

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/internal/testenv/testproc"
)

const (
	brokerIssuer = "https://mandate.test/broker"
	alice        = "alice@acme.example"
	clientID     = "mandate-broker"
	clientSecret = "broker-secret-0123456789"
)

// startHydra starts Hydra for one test, or skips when the binary is absent
// and MANDATE_E2E is unset; with MANDATE_E2E set a missing binary fails.
func startHydra(t *testing.T) *Hydra {
	t.Helper()
	binary.Require(t)
	ctx, cancel := context.WithTimeout(t.Context(), DefaultStartTimeout)
	defer cancel()
	began := time.Now()
	h, err := Start(ctx, Options{})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("hydra ready in %v at public %s admin %s", time.Since(began).Round(time.Millisecond), h.PublicURL(), h.AdminURL())
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("hydra log (tail):\n%s", h.proc.LogTail(16<<10))
		}
	})
	return h
}

func newRSAKey(t *testing.T, kid string) jose.JSONWebKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return jose.JSONWebKey{Key: k, KeyID: kid, Algorithm: string(jose.RS256), Use: "sig"}
}

type assertion struct {
	iss, sub, jti string
	aud           []string
	exp, iat      time.Time
}

func sign(t *testing.T, key jose.JSONWebKey, a assertion) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), key.KeyID))
	if err != nil {
		t.Fatal(err)
	}
	claims := jwt.Claims{
		Issuer:   a.iss,
		Subject:  a.sub,
		Audience: a.aud,
		Expiry:   jwt.NewNumericDate(a.exp),
		IssuedAt: jwt.NewNumericDate(a.iat),
		ID:       a.jti,
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomJTI(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

type tokenResponse struct {
	status      int
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// redeem posts the jwt-bearer grant with client_secret_basic authentication.
func redeem(t *testing.T, h *Hydra, id, secret, assertionJWT, scope string) tokenResponse {
	t.Helper()
	form := url.Values{"grant_type": {GrantTypeJWTBearer}, "assertion": {assertionJWT}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, h.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var tr tokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil {
		t.Fatalf("token response (HTTP %d) is not JSON: %q", resp.StatusCode, raw)
	}
	tr.status = resp.StatusCode
	return tr
}

// verifyAccessToken checks the JWT access token's signature against Hydra's
// JWKS and returns its claims.
func verifyAccessToken(t *testing.T, h *Hydra, token string) map[string]any {
	t.Helper()
	resp, err := http.Get(h.JWKSURL())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var jwks jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&jwks); err != nil {
		t.Fatalf("decoding JWKS: %v", err)
	}
	parsed, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256, jose.ES256})
	if err != nil {
		t.Fatalf("access token is not a JWT: %v", err)
	}
	if len(parsed.Headers) != 1 {
		t.Fatalf("access token has %d signatures", len(parsed.Headers))
	}
	keys := jwks.Key(parsed.Headers[0].KeyID)
	if len(keys) == 0 {
		t.Fatalf("access token kid %q is not in Hydra's JWKS", parsed.Headers[0].KeyID)
	}
	var claims map[string]any
	if err := parsed.Claims(keys[0].Public(), &claims); err != nil {
		t.Fatalf("access token signature: %v", err)
	}
	return claims
}

func introspect(t *testing.T, h *Hydra, token string) map[string]any {
	t.Helper()
	resp, err := http.PostForm(h.AdminURL()+"admin/oauth2/introspect", url.Values{"token": {token}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection: HTTP %d", resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestJWTBearerGrant(t *testing.T) {
	t.Parallel()
	h := startHydra(t)
	ctx := t.Context()

	if err := h.CreateClient(ctx, clientID, clientSecret, []string{GrantTypeJWTBearer}, []string{"api", "profile"}, "client_secret_basic"); err != nil {
		t.Fatal(err)
	}
	// A client that may not use the grant at all.
	if err := h.CreateClient(ctx, "other-client", clientSecret, []string{"client_credentials"}, []string{"api"}, "client_secret_basic"); err != nil {
		t.Fatal(err)
	}
	trusted := newRSAKey(t, "broker-key-1")
	if err := h.TrustIssuer(ctx, brokerIssuer, alice, []string{"api", "profile"}, trusted.Public(), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	valid := func() assertion {
		now := time.Now()
		return assertion{iss: brokerIssuer, sub: alice, aud: []string{h.TokenURL()},
			exp: now.Add(2 * time.Minute), iat: now, jti: randomJTI(t)}
	}

	t.Run("valid assertion then replay", func(t *testing.T) {
		t.Parallel()
		a := sign(t, trusted, valid())
		tr := redeem(t, h, clientID, clientSecret, a, "api")
		if tr.status != http.StatusOK || tr.AccessToken == "" {
			t.Fatalf("redeem: HTTP %d %s: %s", tr.status, tr.Error, tr.Description)
		}
		if !strings.EqualFold(tr.TokenType, "bearer") || tr.ExpiresIn <= 0 || tr.Scope != "api" {
			t.Errorf("token response: token_type %q expires_in %d scope %q; want bearer, >0, api", tr.TokenType, tr.ExpiresIn, tr.Scope)
		}
		claims := verifyAccessToken(t, h, tr.AccessToken)
		if claims["sub"] != alice {
			t.Errorf("access token sub = %v, want %s", claims["sub"], alice)
		}
		if claims["iss"] != strings.TrimSuffix(h.PublicURL(), "/") && claims["iss"] != h.PublicURL() {
			t.Errorf("access token iss = %v, want %s", claims["iss"], h.PublicURL())
		}
		if claims["client_id"] != clientID {
			t.Errorf("access token client_id = %v, want %s", claims["client_id"], clientID)
		}
		if strings.Contains(h.Log(), "generating new key pair") {
			t.Errorf("hydra generated its own signing keys; Start should have installed them")
		}
		in := introspect(t, h, tr.AccessToken)
		if in["active"] != true || in["sub"] != alice {
			t.Errorf("introspection: active %v sub %v; want true %s", in["active"], in["sub"], alice)
		}

		replay := redeem(t, h, clientID, clientSecret, a, "api")
		if replay.status != http.StatusBadRequest || replay.Error != "jti_known" {
			t.Fatalf("replay: HTTP %d error %q (%s); want 400 jti_known", replay.status, replay.Error, replay.Description)
		}
	})

	t.Run("client_secret_post client", func(t *testing.T) {
		t.Parallel()
		if err := h.CreateClient(ctx, "post-client", clientSecret, []string{GrantTypeJWTBearer}, []string{"api"}, "client_secret_post"); err != nil {
			t.Fatal(err)
		}
		form := url.Values{
			"grant_type":    {GrantTypeJWTBearer},
			"assertion":     {sign(t, trusted, valid())},
			"client_id":     {"post-client"},
			"client_secret": {clientSecret},
		}
		resp, err := http.PostForm(h.TokenURL(), form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tr tokenResponse
		if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
			t.Fatalf("HTTP %d %s: %s", resp.StatusCode, tr.Error, tr.Description)
		}
		if sub := verifyAccessToken(t, h, tr.AccessToken)["sub"]; sub != alice {
			t.Errorf("access token sub = %v, want %s", sub, alice)
		}
	})

	refusals := []struct {
		name     string
		key      jose.JSONWebKey
		mutate   func(*assertion)
		id, sec  string
		scope    string
		status   int
		code     string
		descPart string
	}{
		{
			name: "wrong audience", key: trusted, id: clientID, sec: clientSecret,
			mutate: func(a *assertion) { a.aud = []string{"https://login.salesforce.com"} },
			status: http.StatusBadRequest, code: "invalid_grant", descPart: "'aud'",
		},
		{
			name: "untrusted key with trusted kid", key: newRSAKey(t, "broker-key-1"), id: clientID, sec: clientSecret,
			status: http.StatusBadRequest, code: "invalid_grant", descPart: "integrity",
		},
		{
			name: "untrusted key with unknown kid", key: newRSAKey(t, "intruder"), id: clientID, sec: clientSecret,
			status: http.StatusBadRequest, code: "invalid_grant", descPart: "No public JWK",
		},
		{
			name: "subject not trusted", key: trusted, id: clientID, sec: clientSecret,
			mutate: func(a *assertion) { a.sub = "bob@acme.example" },
			status: http.StatusBadRequest, code: "invalid_grant", descPart: "No public JWK",
		},
		{
			name: "expired", key: trusted, id: clientID, sec: clientSecret,
			mutate: func(a *assertion) { a.iat = time.Now().Add(-10 * time.Minute); a.exp = time.Now().Add(-time.Minute) },
			status: http.StatusBadRequest, code: "invalid_grant", descPart: "expired",
		},
		{
			name: "missing jti", key: trusted, id: clientID, sec: clientSecret,
			mutate: func(a *assertion) { a.jti = "" },
			status: http.StatusBadRequest, code: "invalid_grant", descPart: "'jti'",
		},
		{
			name: "scope beyond the trust relationship", key: trusted, id: clientID, sec: clientSecret, scope: "admin",
			status: http.StatusBadRequest, code: "invalid_scope",
		},
		{
			name: "no client authentication", key: trusted,
			status: http.StatusBadRequest, code: "invalid_request", descPart: "Client credentials missing",
		},
		{
			name: "wrong client secret", key: trusted, id: clientID, sec: "not-the-secret-000000",
			status: http.StatusUnauthorized, code: "invalid_client",
		},
		{
			name: "client not allowed the grant", key: trusted, id: "other-client", sec: clientSecret,
			status: http.StatusBadRequest, code: "unauthorized_client",
		},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := valid()
			if tc.mutate != nil {
				tc.mutate(&a)
			}
			tr := redeem(t, h, tc.id, tc.sec, sign(t, tc.key, a), tc.scope)
			if tr.status != tc.status || tr.Error != tc.code {
				t.Fatalf("HTTP %d error %q (%s); want %d %s", tr.status, tr.Error, tr.Description, tc.status, tc.code)
			}
			if tr.AccessToken != "" {
				t.Errorf("refusal carried an access token")
			}
			if !strings.Contains(tr.Description, tc.descPart) {
				t.Errorf("error_description %q does not mention %q", tr.Description, tc.descPart)
			}
		})
	}
}

func TestTrustIssuerRejectsKeyWithoutKID(t *testing.T) {
	t.Parallel()
	h := &Hydra{} // validation happens before any request
	key := newRSAKey(t, "")
	err := h.TrustIssuer(t.Context(), brokerIssuer, alice, nil, key.Public(), time.Now().Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), "kid") {
		t.Fatalf("TrustIssuer without kid: err = %v, want one naming kid", err)
	}
}

func TestCloseStopsHydra(t *testing.T) {
	t.Parallel()
	h := startHydra(t)
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if h.proc.State() == nil {
		t.Fatal("Close returned before the process was reaped")
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(h.AdminURL() + "health/alive")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("admin API still answers after Close: HTTP %d", resp.StatusCode)
	}
}

// TestAvailable checks the wiring to testproc.Binary (whose own tests cover
// the lookup rules): the variable is MANDATE_HYDRA_BIN, an explicit path
// wins over it, and the default is <repo>/bin/hydra.
func TestAvailable(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "hydra")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	root, ok := testproc.RepoRoot()
	if !ok {
		t.Fatal("RepoRoot: main module not found above the test directory")
	}
	tests := []struct {
		name, env string
		opts      Options
		wantPath  string
	}{
		{name: "env", env: exe, wantPath: exe},
		{name: "explicit wins over env", env: filepath.Join(dir, "other"), opts: Options{Binary: exe}, wantPath: exe},
		{name: "default", wantPath: filepath.Join(root, "bin", "hydra")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvBinary, tc.env)
			path, ok := Available(tc.opts)
			if path != tc.wantPath {
				t.Errorf("path = %s, want %s", path, tc.wantPath)
			}
			if tc.wantPath == exe && !ok {
				t.Errorf("ok = false for the executable %s", exe)
			}
		})
	}
}

func TestStartWithoutBinary(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "hydra")
	_, err := Start(t.Context(), Options{Binary: missing})
	if err == nil || !strings.Contains(err.Error(), missing) || !strings.Contains(err.Error(), "build.sh") {
		t.Fatalf("Start without binary: err = %v; want one naming %s and build.sh", err, missing)
	}
}

func TestStartReportsEarlyExit(t *testing.T) {
	t.Parallel()
	fake := filepath.Join(t.TempDir(), "hydra")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'fake hydra: config broken' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(t.Context(), Options{Binary: fake})
	if err == nil || !strings.Contains(err.Error(), "exited before becoming ready") || !strings.Contains(err.Error(), "config broken") {
		t.Fatalf("Start with a failing binary: err = %v; want early-exit error carrying its log", err)
	}
}
