package testhydra

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-gw/mandate/internal/testenv/testproc"
)

// GrantTypeJWTBearer is the RFC 7523 grant type a client must be allowed to use.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// EnvBinary names the environment variable that points at a hydra binary.
const EnvBinary = "MANDATE_HYDRA_BIN"

// PublicURLPlaceholder in an Options.Env value is replaced by Hydra's
// public URL.
const PublicURLPlaceholder = "{{public_url}}"

// DefaultStartTimeout bounds Start when ctx has no earlier deadline.
const DefaultStartTimeout = 60 * time.Second

// Options configures Start. The zero value works: it finds the binary via
// $MANDATE_HYDRA_BIN or <repo>/bin/hydra and discards progress logs.
type Options struct {
	// Binary is the path of the hydra executable. Empty: $MANDATE_HYDRA_BIN,
	// else bin/hydra at the root of the Mandate repository.
	Binary string
	// Logger receives start/stop events (never Hydra's own output, never
	// secrets). Nil discards them.
	Logger *slog.Logger
	// Env adds Hydra configuration as KEY=VALUE environment entries (for
	// example "OAUTH2_GRANT_JWT_JTI_OPTIONAL=true"); they override the
	// defaults Start sets, except the listen addresses and URLs.
	// PublicURLPlaceholder in a value stands for the public URL (with its
	// trailing slash), which is known only once the ports are chosen.
	Env []string
}

// binary is how the hydra executable is found.
var binary = testproc.Binary{Name: "hydra", EnvVar: EnvBinary, BuildScript: "internal/testenv/testhydra/build/build.sh"}

// Hydra is a running Hydra process. Its methods are safe for concurrent use.
type Hydra struct {
	proc      *testproc.Process
	publicURL string // with trailing slash; also the issuer
	adminURL  string // with trailing slash
	tokenURL  string
	jwksURL   string
	logger    *slog.Logger
	http      *http.Client
	closeOnce sync.Once
	closeErr  error
}

// Available reports the hydra binary Start would run and whether it exists
// as an executable regular file.
func Available(opts Options) (path string, ok bool) {
	return binary.Available(opts.Binary)
}

// Start runs `hydra serve all --dev` on two free loopback ports and waits
// until it is ready. ctx bounds only the start-up (DefaultStartTimeout if it
// has no deadline); the process lives until Close.
func Start(ctx context.Context, opts Options) (*Hydra, error) {
	bin, err := binary.Find(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("testhydra: %w", err)
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return testproc.StartRetrying(ctx, DefaultStartTimeout, func(ctx context.Context) (*Hydra, error) {
		return start(ctx, bin, opts, logger)
	})
}

func start(ctx context.Context, bin string, opts Options, logger *slog.Logger) (*Hydra, error) {
	began := time.Now()
	ports, err := testproc.FreePorts(2)
	if err != nil {
		return nil, fmt.Errorf("testhydra: %w", err)
	}
	pubPort, admPort := ports[0], ports[1]
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("testhydra: generating system secret: %w", err)
	}
	publicURL := "http://127.0.0.1:" + strconv.Itoa(pubPort) + "/"
	adminURL := "http://127.0.0.1:" + strconv.Itoa(admPort) + "/"

	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + os.TempDir(),
		"TMPDIR=" + os.TempDir(),
		"DSN=memory",
		"SECRETS_SYSTEM=" + hex.EncodeToString(secret),
		"STRATEGIES_ACCESS_TOKEN=jwt",
		"LOG_LEVEL=info",
		"LOG_FORMAT=text",
		"SQA_OPT_OUT=true",
	}
	for _, e := range opts.Env {
		env = append(env, strings.ReplaceAll(e, PublicURLPlaceholder, publicURL))
	}
	env = append(env,
		"URLS_SELF_ISSUER="+publicURL,
		"URLS_SELF_PUBLIC="+publicURL,
		"URLS_SELF_ADMIN="+adminURL,
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT="+strconv.Itoa(pubPort),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT="+strconv.Itoa(admPort),
	)

	proc, err := testproc.Start(testproc.Command{
		Name: "hydra",
		Path: bin,
		Args: []string{"serve", "all", "--dev", "--sqa-opt-out"},
		Env:  env,
		Dir:  os.TempDir(),
	})
	if err != nil {
		return nil, fmt.Errorf("testhydra: %w", err)
	}
	h := &Hydra{
		proc:      proc,
		publicURL: publicURL,
		adminURL:  adminURL,
		tokenURL:  publicURL + "oauth2/token",
		jwksURL:   publicURL + ".well-known/jwks.json",
		logger:    logger,
		http:      &http.Client{Timeout: 30 * time.Second},
	}

	// /health/ready on both listeners.
	err = proc.WaitHTTP(ctx, adminURL+"health/ready", publicURL+"health/ready")
	ready := time.Since(began)
	if err != nil {
		_ = h.Close()
		return nil, fmt.Errorf("testhydra: %w", err)
	}
	if err := h.installSigningKeys(ctx); err != nil {
		_ = h.Close()
		return nil, err
	}
	if err := h.discover(ctx); err != nil {
		_ = h.Close()
		return nil, err
	}
	logger.Info("hydra started", "public_url", h.publicURL, "admin_url", h.adminURL,
		"pid", proc.Pid(), "ready_after", ready.Round(time.Millisecond),
		"startup", time.Since(began).Round(time.Millisecond))
	return h, nil
}

// Hydra's signing key sets. Left alone, Hydra generates a 4096-bit RSA key
// for each on first use, which takes 3–20 s on a busy two-core machine.
var signingKeySets = []string{"hydra.openid.id-token", "hydra.jwt.access-token"}

// installSigningKeys gives Hydra 2048-bit RS256 signing keys generated here,
// which is much faster than letting it generate 4096-bit ones.
func (h *Hydra) installSigningKeys(ctx context.Context) error {
	for _, set := range signingKeySets {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return fmt.Errorf("testhydra: generating a signing key for %s: %w", set, err)
		}
		kid := make([]byte, 8)
		if _, err := rand.Read(kid); err != nil {
			return fmt.Errorf("testhydra: %w", err)
		}
		jwks := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: key, KeyID: set + "-" + hex.EncodeToString(kid), Algorithm: string(jose.RS256), Use: "sig",
		}}}
		if err := h.do(ctx, http.MethodPut, h.adminURL+"admin/keys/"+set, jwks, http.StatusOK, nil); err != nil {
			return fmt.Errorf("testhydra: installing signing key set %s: %w", set, err)
		}
	}
	return nil
}

// discover reads the token endpoint from OpenID discovery so TokenURL is the
// exact string Hydra compares an assertion's aud against.
func (h *Hydra) discover(ctx context.Context) error {
	var doc struct {
		Issuer        string `json:"issuer"`
		TokenEndpoint string `json:"token_endpoint"`
		JWKSURI       string `json:"jwks_uri"`
	}
	if err := h.do(ctx, http.MethodGet, h.publicURL+".well-known/openid-configuration", nil, http.StatusOK, &doc); err != nil {
		return fmt.Errorf("testhydra: reading discovery document: %w", err)
	}
	if doc.TokenEndpoint == "" || doc.JWKSURI == "" {
		return fmt.Errorf("testhydra: discovery document lacks token_endpoint or jwks_uri")
	}
	h.tokenURL = doc.TokenEndpoint
	h.jwksURL = doc.JWKSURI
	// Hydra generates its signing keys on first use, which takes seconds;
	// reading the JWKS does it now rather than in a test's first token request.
	var jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := h.do(ctx, http.MethodGet, h.jwksURL, nil, http.StatusOK, &jwks); err != nil {
		return fmt.Errorf("testhydra: reading JWKS: %w", err)
	}
	if len(jwks.Keys) == 0 {
		return fmt.Errorf("testhydra: JWKS at %s has no keys", h.jwksURL)
	}
	return nil
}

// PublicURL is the base of Hydra's public API, with a trailing slash. It is
// also the issuer (iss) of the tokens Hydra issues.
func (h *Hydra) PublicURL() string { return h.publicURL }

// AdminURL is the base of Hydra's admin API, with a trailing slash.
func (h *Hydra) AdminURL() string { return h.adminURL }

// TokenURL is the OAuth 2.0 token endpoint; an RFC 7523 assertion's aud must
// contain exactly this string.
func (h *Hydra) TokenURL() string { return h.tokenURL }

// JWKSURL publishes the keys that sign Hydra's JWT access tokens.
func (h *Hydra) JWKSURL() string { return h.jwksURL }

// Log returns Hydra's captured output (the last MiB of it).
func (h *Hydra) Log() string { return h.proc.Log() }

// Close kills Hydra and waits for it to exit. Calling it again is harmless.
func (h *Hydra) Close() error {
	h.closeOnce.Do(func() {
		if err := h.proc.Close(); err != nil {
			h.closeErr = fmt.Errorf("testhydra: %w", err)
		}
		h.http.CloseIdleConnections()
		h.logger.Info("hydra stopped", "public_url", h.publicURL)
	})
	return h.closeErr
}

// CreateClient registers an OAuth 2.0 client via POST /admin/clients.
// tokenEndpointAuthMethod is one of client_secret_basic, client_secret_post,
// private_key_jwt or none; empty means Hydra's default, client_secret_basic.
// A client that redeems RFC 7523 assertions needs GrantTypeJWTBearer in
// grantTypes, and a secret (Hydra requires client authentication for it).
func (h *Hydra) CreateClient(ctx context.Context, id, secret string, grantTypes, scopes []string, tokenEndpointAuthMethod string) error {
	if id == "" {
		return errors.New("testhydra: CreateClient: empty client id")
	}
	body := map[string]any{
		"client_id":      id,
		"grant_types":    grantTypes,
		"response_types": []string{"token"},
		"scope":          strings.Join(scopes, " "),
	}
	if secret != "" {
		body["client_secret"] = secret
	}
	if tokenEndpointAuthMethod != "" {
		body["token_endpoint_auth_method"] = tokenEndpointAuthMethod
	}
	// The response echoes the secret: decode nothing from it.
	if err := h.do(ctx, http.MethodPost, h.adminURL+"admin/clients", body, http.StatusCreated, nil); err != nil {
		return fmt.Errorf("testhydra: creating client %q: %w", id, err)
	}
	return nil
}

// TrustIssuer lets assertions signed by publicJWK with iss = issuer redeem
// the jwt-bearer grant (POST /admin/trust/grants/jwt-bearer/issuers).
// subject "" trusts any subject; otherwise only assertions whose sub equals
// it. scopes bounds what such a grant may request. publicJWK must have a
// KeyID (Hydra looks the key up by iss, sub and the assertion's kid); a
// private key is reduced to its public half before it is sent.
func (h *Hydra) TrustIssuer(ctx context.Context, issuer, subject string, scopes []string, publicJWK jose.JSONWebKey, expiresAt time.Time) error {
	if issuer == "" {
		return errors.New("testhydra: TrustIssuer: empty issuer")
	}
	if publicJWK.KeyID == "" {
		return errors.New("testhydra: TrustIssuer: the JWK needs a kid (Hydra requires one)")
	}
	pub := publicJWK.Public()
	if !pub.Valid() {
		return errors.New("testhydra: TrustIssuer: the JWK has no usable public key")
	}
	if scopes == nil {
		scopes = []string{}
	}
	body := map[string]any{
		"issuer":     issuer,
		"scope":      scopes,
		"jwk":        pub,
		"expires_at": expiresAt.UTC().Format(time.RFC3339),
	}
	if subject == "" {
		body["allow_any_subject"] = true
	} else {
		body["subject"] = subject
	}
	if err := h.do(ctx, http.MethodPost, h.adminURL+"admin/trust/grants/jwt-bearer/issuers", body, http.StatusCreated, nil); err != nil {
		return fmt.Errorf("testhydra: trusting issuer %q: %w", issuer, err)
	}
	return nil
}

// do sends a JSON request and expects status want; out, if not nil,
// receives the decoded response.
func (h *Hydra) do(ctx context.Context, method, u string, in any, want int, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	resp, err := h.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: reading response: %w", method, redactURL(u), err)
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: HTTP %d (want %d): %s", method, redactURL(u), resp.StatusCode, want, describeError(raw))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decoding response: %w", method, redactURL(u), err)
		}
	}
	return nil
}

func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "<bad url>"
	}
	p.RawQuery = ""
	return p.String()
}

// describeError renders Hydra's error body: {"error", "error_description"}.
func describeError(raw []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return e.Error + ": " + e.Description
	}
	const max = 512
	if len(raw) > max {
		raw = raw[:max]
	}
	return strconv.Quote(string(raw))
}
