package testhydra

import (
	"bufio"
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
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// GrantTypeJWTBearer is the RFC 7523 grant type a client must be allowed to use.
const GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// EnvBinary names the environment variable that points at a hydra binary.
const EnvBinary = "MANDATE_HYDRA_BIN"

// DefaultStartTimeout bounds Start when ctx has no earlier deadline.
const DefaultStartTimeout = 60 * time.Second

// maxLogBytes bounds the captured Hydra log; older output is dropped.
const maxLogBytes = 1 << 20

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
	Env []string
}

// Hydra is a running Hydra process. Its methods are safe for concurrent use.
type Hydra struct {
	cmd       *exec.Cmd
	publicURL string // with trailing slash; also the issuer
	adminURL  string // with trailing slash
	tokenURL  string
	jwksURL   string
	log       *tailBuffer
	logger    *slog.Logger
	http      *http.Client
	exited    chan struct{}
	waitErr   error // set before exited is closed
	closeOnce sync.Once
	closeErr  error
}

// Available reports the hydra binary Start would run and whether it exists
// as an executable regular file.
func Available(opts Options) (path string, ok bool) {
	path = resolveBinary(opts)
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return path, false
	}
	return path, true
}

func resolveBinary(opts Options) string {
	// Relative paths are made absolute: Hydra runs in a temporary directory.
	for _, p := range []string{opts.Binary, os.Getenv(EnvBinary)} {
		if p != "" {
			if abs, err := filepath.Abs(p); err == nil {
				return abs
			}
			return p
		}
	}
	if root, ok := repoRoot(); ok {
		return filepath.Join(root, "bin", "hydra")
	}
	return filepath.Join("bin", "hydra")
}

// repoRoot finds the main module's root: first upward from the working
// directory (tests run in their package directory), then from this source file.
func repoRoot() (string, bool) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if isMainModule(filepath.Join(dir, "go.mod")) {
				return dir, true
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", false
}

func isMainModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if rest, ok := strings.CutPrefix(line, "module "); ok {
			return strings.Trim(strings.TrimSpace(rest), `"`) == "github.com/mandate-gw/mandate"
		}
	}
	return false
}

// Start runs `hydra serve all --dev` on two free loopback ports and waits
// until it is ready. ctx bounds only the start-up (DefaultStartTimeout if it
// has no deadline); the process lives until Close.
func Start(ctx context.Context, opts Options) (*Hydra, error) {
	bin, ok := Available(opts)
	if !ok {
		return nil, fmt.Errorf("testhydra: no executable hydra binary at %s (build it with internal/testhydra/build/build.sh or set %s)", bin, EnvBinary)
	}
	if _, has := ctx.Deadline(); !has {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultStartTimeout)
		defer cancel()
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	// Free ports are found by binding and releasing them, so another process
	// may take one before Hydra binds it; retry a few times when that happens.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		h, err := start(ctx, bin, opts, logger)
		if err == nil {
			return h, nil
		}
		lastErr = err
		if !errors.Is(err, errAddrInUse) || ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

var errAddrInUse = errors.New("address already in use")

func start(ctx context.Context, bin string, opts Options, logger *slog.Logger) (*Hydra, error) {
	began := time.Now()
	pubPort, err := freePort()
	if err != nil {
		return nil, err
	}
	admPort, err := freePort()
	if err != nil {
		return nil, err
	}
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
	env = append(env, opts.Env...)
	env = append(env,
		"URLS_SELF_ISSUER="+publicURL,
		"URLS_SELF_PUBLIC="+publicURL,
		"URLS_SELF_ADMIN="+adminURL,
		"SERVE_PUBLIC_HOST=127.0.0.1",
		"SERVE_PUBLIC_PORT="+strconv.Itoa(pubPort),
		"SERVE_ADMIN_HOST=127.0.0.1",
		"SERVE_ADMIN_PORT="+strconv.Itoa(admPort),
	)

	logBuf := &tailBuffer{max: maxLogBytes}
	cmd := exec.Command(bin, "serve", "all", "--dev", "--sqa-opt-out")
	cmd.Env = env
	cmd.Dir = os.TempDir()
	cmd.Stdout = logBuf
	cmd.Stderr = logBuf
	setProcAttr(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testhydra: starting %s: %w", bin, err)
	}
	h := &Hydra{
		cmd:       cmd,
		publicURL: publicURL,
		adminURL:  adminURL,
		tokenURL:  publicURL + "oauth2/token",
		jwksURL:   publicURL + ".well-known/jwks.json",
		log:       logBuf,
		logger:    logger,
		http:      &http.Client{Timeout: 30 * time.Second},
		exited:    make(chan struct{}),
	}
	go func() {
		h.waitErr = cmd.Wait()
		close(h.exited)
	}()

	err = h.waitReady(ctx)
	ready := time.Since(began)
	if err != nil {
		_ = h.Close()
		if strings.Contains(logBuf.String(), "address already in use") {
			err = fmt.Errorf("%w: %w", errAddrInUse, err)
		}
		return nil, err
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
		"pid", cmd.Process.Pid, "ready_after", ready.Round(time.Millisecond),
		"startup", time.Since(began).Round(time.Millisecond))
	return h, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("testhydra: finding a free loopback port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("testhydra: releasing port %d: %w", port, err)
	}
	return port, nil
}

// waitReady polls /health/ready on both listeners until each answers 200.
func (h *Hydra) waitReady(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, base := range []string{h.adminURL, h.publicURL} {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"health/ready", nil)
			if err != nil {
				return fmt.Errorf("testhydra: %w", err)
			}
			resp, err := h.http.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-h.exited:
				return fmt.Errorf("testhydra: hydra exited before becoming ready (%v); its log:\n%s", h.waitErr, h.log.String())
			case <-ctx.Done():
				return fmt.Errorf("testhydra: waiting for %shealth/ready: %w; hydra log:\n%s", base, ctx.Err(), h.log.String())
			case <-tick.C:
			}
		}
	}
	return nil
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
func (h *Hydra) Log() string { return h.log.String() }

// Close kills Hydra and waits for it to exit. Calling it again is harmless.
func (h *Hydra) Close() error {
	h.closeOnce.Do(func() {
		select {
		case <-h.exited:
			// Exited on its own: that is worth reporting.
			if h.waitErr != nil {
				h.closeErr = fmt.Errorf("testhydra: hydra had already exited: %w", h.waitErr)
			}
		default:
			if err := h.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				h.closeErr = fmt.Errorf("testhydra: killing hydra: %w", err)
			}
			<-h.exited
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

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
