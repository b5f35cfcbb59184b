// Command benchsignin signs the benchmark users in at Mandate's
// authorization server the way an MCP client does, without a browser, and
// measures Mandate's token endpoint.
//
// It reads Mandate's RFC 8414 metadata (-issuer, Mandate's public_url),
// registers one public client by dynamic registration (RFC 7591), then for
// every user of -usernames (one login name a line, as benchidp -usernames
// writes them): the authorization request with PKCE (S256), the MCP URL as
// resource and login_hint=<user> (the bench IdP signs a hinted user in
// without its picker), Mandate's consent form posted with decision=allow,
// and the code redeemed at the token endpoint. Then -refreshes
// refresh_token grants, round-robin over the users (each rotates that
// user's refresh token). It writes the users' latest Mandate-issued access
// tokens to -tokens, one per line in the order of -usernames (the format of
// benchidp's tokens.txt, which the load generator reads), and prints one
// JSON line: the latency of each sign-in, of every authorization_code
// redemption and of the refresh grants (count, p50, p90, p99, max, mean in
// ms). Token-endpoint latencies are the time from sending the request to
// reading the whole response. With -parallel 1 (the default) requests are
// sequential, so the numbers are latencies, not queueing.
//
//	benchsignin -issuer http://127.0.0.1:19103 -usernames users.txt \
//	            -tokens mandate-tokens.txt -refreshes 200
//
// It never prints tokens, codes or secrets.
package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mandate-gw/mandate/internal/app/bench"
)

// config is what one run does.
type config struct {
	issuer      string   // Mandate's issuer (public_url)
	resource    string   // the MCP URL; default issuer + /mcp
	scope       string   // requested scope
	redirectURI string   // the client's redirect URI (never served: the flow stops at it)
	users       []string // login names
	refreshes   int      // refresh_token grants to measure
	parallel    int      // concurrent sign-ins / refreshes
	timeout     time.Duration
	label       string
}

// msStats is a latency summary in milliseconds.
type msStats struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
}

func toMS(lat []time.Duration) msStats {
	s := bench.Summarize(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return msStats{Count: s.Count, P50: ms(s.P50), P90: ms(s.P90), P99: ms(s.P99), Max: ms(s.Max), Mean: ms(s.Mean)}
}

// result is the JSON line benchsignin prints.
type result struct {
	Label    string  `json:"label"`
	Issuer   string  `json:"issuer"`
	ClientID string  `json:"client_id"`
	Users    int     `json:"users"`
	Parallel int     `json:"parallel"`
	SignIn   msStats `json:"signin"`        // the whole sign-in, code redemption included
	Code     msStats `json:"token_code"`    // authorization_code grants
	Refresh  msStats `json:"token_refresh"` // refresh_token grants
	Seconds  float64 `json:"seconds"`
}

// metadata is the part of RFC 8414 metadata benchsignin uses.
type metadata struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
	RegistrationEndpoint  string `json:"registration_endpoint"`
}

// tokens is one user's grant.
type tokens struct {
	mu      sync.Mutex // serialises refreshes of this user's refresh token
	access  string
	refresh string
}

type runner struct {
	cfg      config
	meta     metadata
	clientID string
	tr       *http.Transport
	api      *http.Client // registration and token endpoints (keep-alive)
}

func main() {
	var c config
	flag.StringVar(&c.issuer, "issuer", "", "Mandate's issuer URL (its server.public_url); required")
	flag.StringVar(&c.resource, "resource", "", "the MCP URL sent as resource; default issuer + /mcp")
	flag.StringVar(&c.scope, "scope", "mcp", "scope requested")
	flag.StringVar(&c.redirectURI, "redirect-uri", "http://127.0.0.1:9/benchsignin/callback", "the client's redirect URI (loopback; never contacted)")
	usernames := flag.String("usernames", "", "file of login names, one a line (benchidp -usernames); required")
	tokensPath := flag.String("tokens", "", "file to write the users' Mandate access tokens to, one a line in -usernames order; required")
	flag.IntVar(&c.refreshes, "refreshes", 200, "refresh_token grants to measure, round-robin over the users")
	flag.IntVar(&c.parallel, "parallel", 1, "concurrent sign-ins and refreshes (1: sequential latencies)")
	flag.DurationVar(&c.timeout, "timeout", 20*time.Second, "bound of each HTTP request")
	flag.StringVar(&c.label, "label", "token-endpoint/mandate", "label of the JSON line")
	flag.Parse()
	if c.issuer == "" || *usernames == "" || *tokensPath == "" {
		fmt.Fprintln(os.Stderr, "benchsignin: -issuer, -usernames and -tokens are required")
		flag.Usage()
		os.Exit(2)
	}
	users, err := readLines(*usernames)
	if err != nil {
		fatal(err)
	}
	c.users = users
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, toks, err := run(ctx, c)
	if err != nil {
		fatal(err)
	}
	if err := writeTokens(*tokensPath, toks); err != nil {
		fatal(err)
	}
	b, _ := json.Marshal(res)
	fmt.Println(string(b))
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchsignin:", err)
	os.Exit(1)
}

func readLines(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no user names", path)
	}
	return out, nil
}

// writeTokens writes tokens one a line, as benchidp writes tokens.txt.
func writeTokens(path string, toks []string) error {
	return os.WriteFile(path, []byte(strings.Join(toks, "\n")+"\n"), 0o600)
}

// run registers a client, signs every user in, runs the refresh grants and
// returns the statistics and the users' latest access tokens.
func run(ctx context.Context, c config) (result, []string, error) {
	if c.resource == "" {
		c.resource = strings.TrimSuffix(c.issuer, "/") + "/mcp"
	}
	c.parallel = max(c.parallel, 1)
	start := time.Now()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = c.parallel + 2
	tr.Proxy = nil
	defer tr.CloseIdleConnections()
	r := &runner{cfg: c, tr: tr, api: &http.Client{Transport: tr, Timeout: c.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if err := r.discover(ctx); err != nil {
		return result{}, nil, err
	}
	if err := r.register(ctx); err != nil {
		return result{}, nil, err
	}

	grants := make([]*tokens, len(c.users))
	signin := make([]time.Duration, len(c.users))
	code := make([]time.Duration, len(c.users))
	err := forEach(ctx, len(c.users), c.parallel, func(i int) error {
		t0 := time.Now()
		g, d, err := r.signIn(ctx, c.users[i])
		if err != nil {
			return fmt.Errorf("signing %s in: %w", c.users[i], err)
		}
		grants[i], code[i], signin[i] = g, d, time.Since(t0)
		return nil
	})
	if err != nil {
		return result{}, nil, err
	}
	refresh := make([]time.Duration, c.refreshes)
	err = forEach(ctx, c.refreshes, c.parallel, func(i int) error {
		u := i % len(grants)
		g := grants[u]
		g.mu.Lock()
		defer g.mu.Unlock()
		d, err := r.refresh(ctx, g)
		if err != nil {
			return fmt.Errorf("refresh %d (%s): %w", i+1, c.users[u], err)
		}
		refresh[i] = d
		return nil
	})
	if err != nil {
		return result{}, nil, err
	}
	toks := make([]string, len(grants))
	for i, g := range grants {
		toks[i] = g.access
	}
	return result{Label: c.label, Issuer: r.meta.Issuer, ClientID: r.clientID, Users: len(c.users), Parallel: c.parallel,
		SignIn: toMS(signin), Code: toMS(code), Refresh: toMS(refresh), Seconds: time.Since(start).Seconds()}, toks, nil
}

// forEach runs f(0..n-1) on par goroutines and returns the first error
// (the rest of the work is skipped after one).
func forEach(ctx context.Context, n, par int, f func(int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(par, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// discover reads the RFC 8414 metadata of the issuer (path insertion when
// the issuer has a path) and checks its issuer.
func (r *runner) discover(ctx context.Context) error {
	u, err := url.Parse(r.cfg.issuer)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-issuer %q is not an absolute URL", r.cfg.issuer)
	}
	mu := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	var m metadata
	if _, err := r.doJSON(ctx, http.MethodGet, mu, "", nil, http.StatusOK, &m); err != nil {
		return fmt.Errorf("authorization server metadata: %w", err)
	}
	if m.Issuer != r.cfg.issuer {
		return fmt.Errorf("metadata at %s names issuer %q, want %q", mu, m.Issuer, r.cfg.issuer)
	}
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" || m.RegistrationEndpoint == "" {
		return fmt.Errorf("metadata at %s lacks the authorization, token or registration endpoint (is dynamic registration on?)", mu)
	}
	r.meta = m
	return nil
}

// register registers a public client (PKCE) by dynamic registration.
func (r *runner) register(ctx context.Context) error {
	body, _ := json.Marshal(map[string]any{"client_name": "benchsignin", "redirect_uris": []string{r.cfg.redirectURI},
		"token_endpoint_auth_method": "none", "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}})
	var reg struct {
		ClientID string `json:"client_id"`
	}
	if _, err := r.doJSON(ctx, http.MethodPost, r.meta.RegistrationEndpoint, "application/json", body, http.StatusCreated, &reg); err != nil {
		return fmt.Errorf("dynamic registration: %w", err)
	}
	if reg.ClientID == "" {
		return errors.New("dynamic registration: no client_id in the answer")
	}
	r.clientID = reg.ClientID
	return nil
}

// doJSON sends one request and decodes a JSON answer with status want. It
// returns the time from sending to the end of the body. Errors quote the
// OAuth error code and description only.
func (r *runner) doJSON(ctx context.Context, method, target, ctype string, body []byte, want int, v any) (time.Duration, error) {
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return 0, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	t0 := time.Now()
	resp, err := r.api.Do(req)
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	d := time.Since(t0)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != want {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(b, &e)
		return 0, fmt.Errorf("%s %s: HTTP %d %s %s", method, pathOf(target), resp.StatusCode, e.Error, e.Description)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return 0, fmt.Errorf("%s %s: answer is not JSON: %w", method, pathOf(target), err)
	}
	return d, nil
}

// pathOf is a URL without its query (which may hold a code or state).
func pathOf(u string) string {
	if p, err := url.Parse(u); err == nil {
		return p.Scheme + "://" + p.Host + p.Path
	}
	return "(bad URL)"
}

var (
	formTag     = regexp.MustCompile(`<form method="post"(?: action="([^"]*)")?`)
	hiddenField = regexp.MustCompile(`<input type="hidden" name="([A-Za-z0-9_]+)" value="([^"]*)">`)
)

// tokenAnswer is an RFC 6749 §5.1 token response.
type tokenAnswer struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// signIn is one user's sign-in as a browser-less MCP client does it. It
// returns the grant and the latency of the code redemption.
func (r *runner) signIn(ctx context.Context, user string) (*tokens, time.Duration, error) {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Transport: r.tr, Jar: jar, Timeout: r.cfg.timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier, state := random(32), random(16)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {r.clientID}, "redirect_uri": {r.cfg.redirectURI},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {state}, "resource": {r.cfg.resource}, "scope": {r.cfg.scope}, "login_hint": {user}}
	next, err := url.Parse(r.meta.AuthorizationEndpoint + "?" + q.Encode())
	if err != nil {
		return nil, 0, err
	}
	var form url.Values
	for range 16 {
		if strings.HasPrefix(next.String(), r.cfg.redirectURI) {
			break
		}
		var req *http.Request
		if form != nil {
			req, _ = http.NewRequestWithContext(ctx, http.MethodPost, next.String(), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", next.Scheme+"://"+next.Host)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			form = nil
		} else {
			req, _ = http.NewRequestWithContext(ctx, http.MethodGet, next.String(), nil)
		}
		resp, err := browser.Do(req)
		if err != nil {
			return nil, 0, err
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 3:
			loc, err := resp.Location()
			if err != nil {
				return nil, 0, fmt.Errorf("%s: redirect without a location", pathOf(next.String()))
			}
			next = loc
		case resp.StatusCode == http.StatusOK && formTag.Match(body):
			form = url.Values{"decision": {"allow"}}
			for _, m := range hiddenField.FindAllSubmatch(body, -1) {
				form.Set(string(m[1]), html.UnescapeString(string(m[2])))
			}
			action := ""
			if m := formTag.FindSubmatch(body); len(m) > 1 {
				action = html.UnescapeString(string(m[1]))
			}
			to, err := next.Parse(action)
			if err != nil {
				return nil, 0, fmt.Errorf("%s: form action %q: %w", pathOf(next.String()), action, err)
			}
			next = to
		default:
			return nil, 0, fmt.Errorf("sign-in stopped at %s: HTTP %d (no redirect and no consent form: is %s a passwordless user of the IdP, and Mandate registered there?)",
				pathOf(next.String()), resp.StatusCode, user)
		}
	}
	if !strings.HasPrefix(next.String(), r.cfg.redirectURI) {
		return nil, 0, fmt.Errorf("sign-in did not reach the redirect URI (last %s)", pathOf(next.String()))
	}
	got := next.Query()
	switch {
	case got.Get("error") != "":
		return nil, 0, fmt.Errorf("authorization error %s: %s", got.Get("error"), got.Get("error_description"))
	case got.Get("state") != state:
		return nil, 0, errors.New("the redirect's state differs from the request's")
	case got.Get("iss") != "" && got.Get("iss") != r.meta.Issuer:
		return nil, 0, fmt.Errorf("the redirect's iss %q is not the issuer", got.Get("iss"))
	case got.Get("code") == "":
		return nil, 0, errors.New("the redirect has no code")
	}
	var t tokenAnswer
	d, err := r.doJSON(ctx, http.MethodPost, r.meta.TokenEndpoint, "application/x-www-form-urlencoded", []byte(url.Values{
		"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {r.cfg.redirectURI},
		"client_id": {r.clientID}, "code_verifier": {verifier}, "resource": {r.cfg.resource}}.Encode()), http.StatusOK, &t)
	if err != nil {
		return nil, 0, err
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return nil, 0, errors.New("the token response lacks an access or a refresh token")
	}
	return &tokens{access: t.AccessToken, refresh: t.RefreshToken}, d, nil
}

// refresh runs one refresh_token grant for g (the caller holds g.mu) and
// keeps the rotated tokens.
func (r *runner) refresh(ctx context.Context, g *tokens) (time.Duration, error) {
	var t tokenAnswer
	d, err := r.doJSON(ctx, http.MethodPost, r.meta.TokenEndpoint, "application/x-www-form-urlencoded", []byte(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {g.refresh}, "client_id": {r.clientID},
		"resource": {r.cfg.resource}}.Encode()), http.StatusOK, &t)
	if err != nil {
		return 0, err
	}
	if t.AccessToken == "" || t.RefreshToken == "" {
		return 0, errors.New("the token response lacks an access or a refresh token")
	}
	g.access, g.refresh = t.AccessToken, t.RefreshToken
	return d, nil
}

func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
