package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/audit"
	connectpages "github.com/mandate-gw/mandate/gateway/connect"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/testenv/testhydra"
	"github.com/mandate-gw/mandate/internal/testenv/testpg"
	"github.com/mandate-gw/mandate/policy"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// Per-user grants end to end (issue 16, "Tests"), with real parts only:
// Ory Hydra as the platform's authorization server (codes, PKCE, rotating
// refresh tokens, its login and consent accepted through its admin API), a
// go-sdk MCP server protected per the MCP authorization spec with Hydra as
// its authorization server (testhydra.ProtectedMCP: its tool whoami
// answers the caller's platform subject), the zitadel IdP (devidp) for the
// users' sign-in at Mandate, and PostgreSQL for replicas. Mandate finds
// Hydra by discovery from the upstream's 401 and registers itself there
// (dynamic registration).

// grantsEnv is the platform (Hydra and its protected MCP server), the
// company IdP and the storage key; gateways are made from it.
type grantsEnv struct {
	h      *testhydra.Hydra
	up     *testhydra.Protected
	idp    *devidp.IdP
	key    store.EncryptionKey
	skew   time.Duration // credentials.cache_skew of the tracker upstream
	tokens *tokenCounter // every replica's transport to upstreams and token endpoints
}

const (
	trackerTool = "tracker_whoami"
	// consentSentence is in the error a call without a grant gets.
	consentSentence = "Open the link to sign in and allow access"
)

// startGrantsEnv starts Hydra (hydraEnv added to its configuration), the
// protected MCP server, and the IdP with rita, morgan and n load users
// u000…; skew is the upstream's cache_skew (0: the default).
func startGrantsEnv(t *testing.T, n int, skew time.Duration, hydraEnv ...string) *grantsEnv {
	t.Helper()
	if path, ok := testhydra.Available(testhydra.Options{}); !ok {
		if os.Getenv("MANDATE_E2E") != "" {
			t.Fatalf("MANDATE_E2E is set but the hydra binary %s is missing", path)
		}
		t.Skipf("hydra binary %s missing (MANDATE_HYDRA_BIN; internal/testenv/testhydra/build/build.sh)", path)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	env := append(append(append([]string{}, testhydra.LoginConsentEnv...), testhydra.DynamicRegistrationEnv...), hydraEnv...)
	h, err := testhydra.Start(ctx, testhydra.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	up, err := testhydra.ProtectedMCP(h, testhydra.ProtectedOptions{LocalJWT: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.Close)
	users := []devidp.User{
		{ID: "user-rita", Username: "rita", Email: "rita@acme.example"},
		{ID: "user-morgan", Username: "morgan", Email: "morgan@acme.example"},
	}
	for i := range n {
		u := loadUser(i)
		users = append(users, devidp.User{ID: "user-" + u, Username: u, Email: u + "@acme.example"})
	}
	idp, err := devidp.Start(context.Background(), devidp.Options{Users: users})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 256
	return &grantsEnv{h: h, up: up, idp: idp, key: key, skew: skew, tokens: &tokenCounter{base: base}}
}

func loadUser(i int) string { return fmt.Sprintf("u%03d", i) }

// gateway is a replica: the authorization server on, the tracker upstream
// (kind mcp, flow authorization_code, discover) open to everyone; dsn ""
// is SQLite of its own, publicURL another replica's (or "").
func (e *grantsEnv) gateway(t *testing.T, dsn, publicURL string) *asGateway {
	t.Helper()
	return startASGatewayWith(t, asOptions{idp: e.idp, key: e.key, dsn: dsn, publicURL: publicURL,
		mutate: func(c *Config) {
			c.Upstreams = []upstreams.Config{{Name: "tracker", Kind: upstreams.KindMCP, URL: e.up.URL,
				Credentials:        credentials.Config{Flow: credentials.FlowAuthorizationCode, Discover: true, CacheSkew: e.skew},
				ToolsBeforeConnect: []upstreams.ToolStub{{Name: strings.TrimPrefix(trackerTool, "tracker_"), Description: "who you are at the tracker"}}}}
			c.Policy = policy.Config{Default: "deny", Rules: []policy.Rule{{Name: "everyone", Effect: "allow", When: "true"}}}
		},
		opts: Options{UpstreamTransport: e.tokens}})
}

// tokenCounter counts (and times) the requests Mandate sends to Hydra's
// token endpoint, by grant type, on every replica.
type tokenCounter struct {
	base                     http.RoundTripper
	refreshes, redeems       atomic.Int64
	refreshNanos, redeemNano atomic.Int64 // time spent waiting for Hydra
	refreshFailures          atomic.Int64 // refresh requests Hydra did not answer 200
}

func (c *tokenCounter) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body == nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/oauth2/token") {
		return c.base.RoundTrip(r)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	form, _ := url.ParseQuery(string(body))
	start := time.Now()
	resp, err := c.base.RoundTrip(r)
	d := int64(time.Since(start))
	switch form.Get("grant_type") {
	case "refresh_token":
		c.refreshes.Add(1)
		c.refreshNanos.Add(d)
		if err != nil || resp.StatusCode != http.StatusOK {
			c.refreshFailures.Add(1)
		}
	case "authorization_code":
		c.redeems.Add(1)
		c.redeemNano.Add(d)
	}
	return resp, err
}

// userClient is an MCP client (go-sdk) that declared URL elicitation,
// with the user's token; completed receives notifications/elicitation/complete.
type userClient struct {
	cs        *mcp.ClientSession
	completed chan string
}

var loadTransport = func() http.RoundTripper {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 256
	return t
}()

func newUserClient(t testing.TB, mcpAt, token string) *userClient {
	t.Helper()
	uc := &userClient{completed: make(chan string, 8)}
	c := mcp.NewClient(&mcp.Implementation{Name: "grants-e2e", Version: "1"}, &mcp.ClientOptions{
		Capabilities: urlElicitation,
		ElicitationCompleteHandler: func(_ context.Context, r *mcp.ElicitationCompleteNotificationRequest) {
			select {
			case uc.completed <- r.Params.ElicitationID:
			default:
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpAt,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, base: loadTransport}}}, nil)
	if err != nil {
		t.Fatalf("connecting to %s: %v", mcpAt, err)
	}
	t.Cleanup(func() { cs.Close() })
	uc.cs = cs
	return uc
}

// whoAnswer is what a call of tracker_whoami got: the platform subject it
// answered, or the URL elicitation of a -32042 error, or another error.
type whoAnswer struct {
	subject       string
	link, eid     string
	message       string // the -32042 error's message
	err           error  // neither
	toolErrorText string
}

func (a whoAnswer) String() string {
	return fmt.Sprintf("subject %q link %v err %v tool error %q", a.subject, a.link != "", a.err, a.toolErrorText)
}

func (uc *userClient) who() whoAnswer {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := uc.cs.CallTool(ctx, &mcp.CallToolParams{Name: trackerTool, Arguments: map[string]any{}})
	if err != nil {
		var je *jsonrpc.Error
		if errors.As(err, &je) && je.Code == mcp.CodeURLElicitationRequired {
			var data struct {
				Elicitations []mcp.ElicitParams `json:"elicitations"`
			}
			if json.Unmarshal(je.Data, &data) == nil && len(data.Elicitations) == 1 {
				el := data.Elicitations[0]
				return whoAnswer{link: el.URL, eid: el.ElicitationID, message: el.Message}
			}
		}
		return whoAnswer{err: err}
	}
	if res.IsError {
		return whoAnswer{toolErrorText: toolText(res)}
	}
	return whoAnswer{subject: toolText(res)}
}

// wantSubject: the call answered as the platform identity sub.
func wantSubject(t testing.TB, what string, a whoAnswer, sub string) {
	t.Helper()
	if a.subject != sub {
		t.Fatalf("%s: %s, want the tool's answer %q", what, a, sub)
	}
}

// wantLink: the call was answered with a URL elicitation whose URL is a
// connect link on Mandate's origin (the public URL).
func wantLink(t testing.TB, what string, a whoAnswer, issuer string) string {
	t.Helper()
	if a.link == "" {
		t.Fatalf("%s: %s, want -32042 with a URL elicitation", what, a)
	}
	if !strings.HasPrefix(a.link, issuer+connectpages.PathStart+"?t=") || !strings.Contains(a.message, consentSentence) {
		t.Fatalf("%s: elicitation url %q message %q, want a connect link on %s saying %q", what, a.link, a.message, issuer, consentSentence)
	}
	return a.link
}

// page is one response a browser got.
type page struct {
	url    string
	status int
	header http.Header
	body   string
	loc    *url.URL
}

func newJar() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func browserDo(t testing.TB, b *http.Client, method, target string, form url.Values, origin string) page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	p := page{url: target, status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if l, err := resp.Location(); err == nil {
		p.loc = l
	}
	return p
}

// openLink is the user's browser b opening link: Mandate signs it in at
// the IdP (login_hint=user) if needed, sends it to the platform, where the
// user (platform subject "platform-<user>") signs in and allows
// (testhydra.Consent: Hydra's login and consent accepted through its
// admin API); back at Mandate's callback. It returns the last page and the
// callback URL the platform sent the browser to ("" if it never got there).
func (e *grantsEnv) openLink(t testing.TB, b *http.Client, link, user string) (page, string) {
	t.Helper()
	next, callback := link, ""
	for range 16 {
		p := browserDo(t, b, http.MethodGet, next, nil, "")
		if p.status/100 != 3 || p.loc == nil {
			return p, callback
		}
		loc := p.loc
		switch {
		case strings.HasPrefix(loc.String(), e.idp.AuthorizationURL()):
			q := loc.Query()
			q.Set("login_hint", user)
			loc.RawQuery = q.Encode()
		case strings.HasPrefix(loc.String(), e.h.PublicURL()):
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cb, err := e.h.Consent(ctx, loc.String(), "platform-"+user)
			cancel()
			if err != nil {
				t.Fatalf("consent at the platform: %v", err)
			}
			loc, callback = cb, cb.String()
		}
		next = loc.String()
	}
	t.Fatalf("opening the link did not end after 16 steps, at %s", next)
	return page{}, ""
}

// wantConnected: the page that ends a connection says so — 2xx, no form,
// no redirect, no script.
func wantConnected(t testing.TB, p page) {
	t.Helper()
	if p.status/100 != 2 || p.loc != nil || strings.Contains(p.body, "<form") || strings.Contains(p.body, "<script") ||
		!strings.Contains(p.body, "is connected") {
		t.Fatalf("connection page %s: %d (location %v), want 2xx saying it is connected, without form, script or redirect:\n%s",
			p.url, p.status, p.loc, short(p.body))
	}
}

var tagRE = regexp.MustCompile(`(?s)<style.*?</style>|<[^>]+>`)

// pageText is a page's text without markup.
func pageText(body string) string {
	return strings.Join(strings.Fields(tagRE.ReplaceAllString(body, " ")), " ")
}

func short(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}

// mandateToken signs user in at ag as an MCP client does (dynamic
// registration, authorization code + PKCE through the IdP) and returns the
// Mandate access token.
func mandateToken(t *testing.T, ag *asGateway, user string) string {
	t.Helper()
	redirect := "http://127.0.0.1:7777/callback"
	tok := ag.signIn(t, ag.register(t, redirect), redirect, user)
	at, _ := tok["access_token"].(string)
	if at == "" {
		t.Fatalf("sign-in of %s: %v", user, tok)
	}
	return at
}

// 1. The whole flow on one gateway.
func TestGrantsWholeFlow(t *testing.T) {
	t.Parallel()
	e := startGrantsEnv(t, 0, 0)
	ag := e.gateway(t, "", "")
	rita := newUserClient(t, ag.mcpAt, mandateToken(t, ag, "rita"))

	// Before she connected, the tool is listed (tools_before_connect): the
	// upstream cannot be listed as her yet.
	lt, err := rita.cs.ListTools(context.Background(), nil)
	if err != nil || !slices.ContainsFunc(lt.Tools, func(tl *mcp.Tool) bool { return tl.Name == trackerTool }) {
		t.Fatalf("tools/list before connecting: %v, want %s listed", err, trackerTool)
	}
	a := rita.who()
	link := wantLink(t, "rita's first call", a, ag.issuer)
	if strings.Contains(link, "rita") {
		t.Errorf("the link carries personal data: %s", link)
	}
	b := newJar()
	start := time.Now()
	p, callback := e.openLink(t, b, link, "rita")
	consentTook := time.Since(start)
	wantConnected(t, p)
	if !strings.HasPrefix(callback, ag.issuer+connectpages.PathCallback+"?") {
		t.Fatalf("the platform sent the browser to %q, want Mandate's connect callback", callback)
	}
	select {
	case eid := <-rita.completed:
		if eid != a.eid {
			t.Errorf("notifications/elicitation/complete for %q, want %q", eid, a.eid)
		}
	case <-time.After(5 * time.Second):
		t.Error("no notifications/elicitation/complete after the connection")
	}
	wantSubject(t, "rita's retry", rita.who(), "platform-rita")
	wantSubject(t, "rita's next call", rita.who(), "platform-rita")
	if g, err := ag.g.store.GetGrant(context.Background(), ag.idp.Issuer(), "user-rita", "tracker"); err != nil || g.LastUsedAt.IsZero() {
		t.Errorf("rita's grant after her calls: last used %v (err %v), want recorded", g.LastUsedAt, err)
	}
	if e.tokens.redeems.Load() != 1 || e.tokens.refreshes.Load() != 0 {
		t.Errorf("token requests at Hydra: %d codes, %d refreshes; want 1, 0", e.tokens.redeems.Load(), e.tokens.refreshes.Load())
	}
	t.Logf("first consent: %v through the browser (IdP sign-in, Hydra, callback); Hydra's token endpoint %v of it",
		consentTook.Round(time.Millisecond), time.Duration(e.tokens.redeemNano.Load()).Round(time.Millisecond))

	// The audit log: the connection (connect/grant, ok, the platform
	// identity) and the call naming the grant it used.
	var grant, call bool
	deadline := time.Now().Add(5 * time.Second)
	for !(grant && call) && time.Now().Before(deadline) {
		grant, call = false, false
		for _, r := range readAuditLines(t, ag.audit) {
			if r.User.Subject != "user-rita" || r.Upstream != "tracker" || r.Credential == nil {
				continue
			}
			ok := r.Outcome == audit.OutcomeOK && r.Credential.Flow == credentials.FlowAuthorizationCode && r.Credential.PlatformSubject == "platform-rita"
			switch r.Method {
			case audit.MethodConnectGrant:
				grant = grant || ok
			case "tools/call":
				call = call || (ok && !r.Credential.ServiceAccount)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !grant || !call {
		raw, _ := os.ReadFile(ag.audit)
		t.Fatalf("audit: connect/grant record %v, tools/call naming the grant %v; want both:\n%s", grant, call, raw)
	}
	if raw, _ := os.ReadFile(ag.audit); bytes.Contains(raw, []byte("connect/start?t=")) {
		t.Error("the audit log carries a connect link")
	}
}

var connectForm = regexp.MustCompile(`(?s)<form method="post" action="([^"]+)">(.*?)</form>`)

// disconnectAt disconnects the user signed in in b from upstream on My
// connections at ag (the page's own form).
func disconnectAt(t *testing.T, ag *asGateway, b *http.Client, upstream string) {
	t.Helper()
	p := browserDo(t, b, http.MethodGet, ag.base+connectpages.PathConnections, nil, "")
	if p.status != http.StatusOK {
		t.Fatalf("My connections: %d %s", p.status, short(p.body))
	}
	for _, m := range connectForm.FindAllStringSubmatch(p.body, -1) {
		form := url.Values{}
		for _, f := range hiddenField.FindAllStringSubmatch(m[2], -1) {
			form.Set(f[1], htmlUnescape(f[2]))
		}
		if form.Get("upstream") != upstream {
			continue
		}
		action := htmlUnescape(m[1])
		u, _ := url.Parse(ag.srv.URL)
		r := browserDo(t, b, http.MethodPost, action, form, u.Scheme+"://"+u.Host)
		if r.status != http.StatusSeeOther {
			t.Fatalf("disconnect: %d %s", r.status, short(r.body))
		}
		return
	}
	t.Fatalf("My connections has no disconnect form for %s:\n%s", upstream, short(p.body))
}

// 2. Two replicas sharing PostgreSQL.
func TestGrantsReplicas(t *testing.T) {
	t.Parallel()
	dsn := testpg.Schema(t)
	// Hydra's access tokens live 4 s; Mandate refreshes 1 s before expiry.
	e := startGrantsEnv(t, 0, time.Second, "TTL_ACCESS_TOKEN=4s")
	a := e.gateway(t, dsn, "")
	b := e.gateway(t, dsn, a.issuer)
	tok := mandateToken(t, a, "rita")
	ritaA, ritaB := newUserClient(t, a.mcpAt, tok), newUserClient(t, b.mcpAt, tok)

	// Consent through the public URL (replica A), calls on B.
	link := wantLink(t, "rita at B", ritaB.who(), a.issuer)
	browser := newJar()
	p, _ := e.openLink(t, browser, link, "rita")
	wantConnected(t, p)
	wantSubject(t, "rita at B after connecting at A", ritaB.who(), "platform-rita")
	wantSubject(t, "rita at A", ritaA.who(), "platform-rita")

	// A refresh race between the replicas on an expired access token:
	// exactly one refresh at Hydra, never a replay.
	ctx := context.Background()
	for round := 1; round <= 2; round++ {
		g, err := a.g.store.GetGrant(ctx, e.idp.Issuer(), "user-rita", "tracker")
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Until(g.Expiry.Add(-e.skew + 200*time.Millisecond)))
		before := e.tokens.refreshes.Load()
		var wg sync.WaitGroup
		answers := make([]whoAnswer, 16)
		for i := range answers {
			uc := ritaA
			if i%2 == 1 {
				uc = ritaB
			}
			wg.Add(1)
			go func() { defer wg.Done(); answers[i] = uc.who() }()
		}
		wg.Wait()
		for i, ans := range answers {
			wantSubject(t, fmt.Sprintf("round %d, racing call %d", round, i), ans, "platform-rita")
		}
		if n := e.tokens.refreshes.Load() - before; n != 1 || e.tokens.refreshFailures.Load() != 0 {
			t.Fatalf("round %d: %d refreshes at Hydra (%d failed) for one race on two replicas, want exactly 1", round, n, e.tokens.refreshFailures.Load())
		}
		// No replay: Hydra revokes every token of a grant whose rotated
		// refresh token is presented again; the stored one is active.
		g2, err := b.g.store.GetGrant(ctx, e.idp.Issuer(), "user-rita", "tracker")
		if err != nil {
			t.Fatal(err)
		}
		if in, err := e.h.Introspect(ctx, g2.RefreshToken); err != nil || !in.Active || g2.RefreshToken == g.RefreshToken {
			t.Fatalf("round %d: the stored refresh token is %+v (%v), rotated %v; a replay would have revoked it", round, in, err, g2.RefreshToken != g.RefreshToken)
		}
	}
	// Each refresh is in the audit chain of the replica that made it.
	refreshRecords := 0
	for _, ag := range []*asGateway{a, b} {
		for _, r := range readAuditLines(t, ag.audit) {
			if r.Method == audit.MethodConnectRefresh && r.Outcome == audit.OutcomeOK && r.User.Subject == "user-rita" &&
				r.Credential != nil && r.Credential.PlatformSubject == "platform-rita" {
				refreshRecords++
			}
		}
	}
	if refreshRecords < 2 {
		t.Errorf("connect/refresh records of rita's refreshes: %d, want one per refresh (2)", refreshRecords)
	}

	// A disconnect on A (My connections) is honoured by B within a second.
	disconnectAt(t, a, browser, "tracker")
	began := time.Now()
	for {
		ans := ritaB.who()
		if ans.link != "" {
			wantLink(t, "rita at B after disconnecting at A", ans, a.issuer)
			break
		}
		if time.Since(began) > time.Second {
			t.Fatalf("replica B still calls as rita %v after the disconnect at A: %s", time.Since(began), ans)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("disconnect at A honoured at B after %v", time.Since(began).Round(time.Millisecond))
	wantLink(t, "rita at A after disconnecting", ritaA.who(), a.issuer)
	if _, err := b.g.store.GetGrant(ctx, e.idp.Issuer(), "user-rita", "tracker"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("grant after disconnect: %v, want not found", err)
	}
}

// tcpProxy forwards a loopback port to target until down; up listens
// again on the same port.
type tcpProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]struct{}
}

func startTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns[c], p.conns[s] = struct{}{}, struct{}{}
			p.mu.Unlock()
			go func() { _, _ = io.Copy(s, c); s.Close(); c.Close() }()
			go func() { _, _ = io.Copy(c, s); s.Close(); c.Close() }()
		}
	}()
}

// down closes the listener and every connection: the database is gone.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

func (p *tcpProxy) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// pkcePair is a PKCE verifier and its S256 challenge.
func pkcePair() (verifier, challenge string) {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	verifier = base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

var lookupLine = regexp.MustCompile(`^mandate_credentials_lookups_total\{([^}]*)\} ([0-9.e+]+)$`)

// lookups reads the credentials broker's outcomes at the tracker upstream
// from ag's /metrics: outcome → count.
func lookups(t *testing.T, ag *asGateway) map[string]float64 {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, ag.srv.URL+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, l := range strings.Split(string(raw), "\n") {
		m := lookupLine.FindStringSubmatch(l)
		if m == nil || !strings.Contains(m[1], `mandate_upstream="tracker"`) {
			continue
		}
		outcome := regexp.MustCompile(`mandate_credentials_outcome="([a-z]+)"`).FindStringSubmatch(m[1])
		var v float64
		fmt.Sscan(m[2], &v)
		if outcome != nil {
			out[outcome[1]] += v
		}
	}
	return out
}

// 3. 500 users with grants under load, on two replicas sharing
// PostgreSQL: no answer carries another user's identity.
func TestGrantsUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("500 users: not in -short")
	}
	const users, callsPerUser, workers = 500, 4, 20
	dsn := testpg.Schema(t)
	e := startGrantsEnv(t, users, 0)
	a := e.gateway(t, dsn, "")
	b := e.gateway(t, dsn, a.issuer)
	reps := []*asGateway{a, b}

	// Each user: an IdP token (the IdP's tokens are accepted beside
	// Mandate's), a session on one replica, asked to connect, connected.
	clients := make([]*userClient, users)
	var mu sync.Mutex
	var realFlow, redeemed int
	var consentTime time.Duration
	var hydraMu sync.Mutex
	conn, ok := a.g.broker.Connector("tracker")
	if !ok {
		t.Fatal("no Connector for tracker")
	}
	began := time.Now()
	// Up to a couple of minutes of real consents (measured as they go),
	// then the Connector's Redeem path for the rest.
	const realBudget = 100 * time.Second
	jobs := make(chan int)
	var wg sync.WaitGroup
	errs := make(chan error, users)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				u := loadUser(i)
				tok, err := e.idp.Token(context.Background(), u, devidp.TokenOptions{Audience: []string{a.mcpURL}})
				if err != nil {
					errs <- fmt.Errorf("%s: IdP token: %w", u, err)
					continue
				}
				uc := newUserClient(t, reps[i%2].mcpAt, tok)
				clients[i] = uc
				ans := uc.who()
				if ans.link == "" {
					errs <- fmt.Errorf("%s's first call: %s, want a link", u, ans)
					continue
				}
				// Hydra's in-memory database refuses concurrent consents
				// ("Unable to serialize access due to a concurrent update"):
				// one consent at a time.
				hydraMu.Lock()
				if time.Since(began) < realBudget {
					s := time.Now()
					p := func() page {
						defer hydraMu.Unlock() // also when openLink fails the test
						p, _ := e.openLink(t, newJar(), ans.link, u)
						return p
					}()
					if p.status != http.StatusOK || !strings.Contains(p.body, "is connected") {
						errs <- fmt.Errorf("%s: connection page %d %s", u, p.status, pageText(p.body))
						continue
					}
					mu.Lock()
					realFlow++
					consentTime += time.Since(s)
					mu.Unlock()
				} else {
					err := func() error {
						defer hydraMu.Unlock()
						verifier, challenge := pkcePair()
						redirect := a.issuer + connectpages.PathCallback
						authURL, err := conn.AuthCodeURL(context.Background(), "st-"+u, challenge, redirect, "")
						if err != nil {
							return err
						}
						cb, err := e.h.Consent(context.Background(), authURL, "platform-"+u)
						if err != nil {
							return err
						}
						_, err = conn.Redeem(context.Background(), conn.Key(e.idp.Issuer(), "user-"+u), cb.Query().Get("code"), verifier, redirect)
						return err
					}()
					if err != nil {
						errs <- fmt.Errorf("%s: redeem path: %w", u, err)
						continue
					}
					mu.Lock()
					redeemed++
					mu.Unlock()
				}
				if ans := uc.who(); ans.subject != "platform-"+u {
					errs <- fmt.Errorf("%s after connecting: %s", u, ans)
				}
			}
		}()
	}
	for i := range users {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		lg := e.h.Log()
		t.Fatalf("Hydra's log (end):\n%s", lg[max(0, len(lg)-6000):])
	}
	setup := time.Since(began)
	t.Logf("grants: %d through the real flow (link, IdP sign-in, Hydra consent, callback; mean %v each, 8 at a time), %d through the Connector's Redeem; setup %v",
		realFlow, (consentTime / time.Duration(max(realFlow, 1))).Round(time.Millisecond), redeemed, setup.Round(time.Millisecond))

	// The load: every user's calls, shuffled, from 20 goroutines over
	// both replicas. Each answer must name its caller.
	// Warm: a grant change reaches every replica's cache asynchronously
	// (NOTIFY), and a token fetched while any purge ran is not cached
	// (the broker's generation is global): let both settle, then one
	// round of calls fills the caches. The first round's misses are
	// reported, not asserted.
	time.Sleep(500 * time.Millisecond)
	warm := []map[string]float64{lookups(t, a), lookups(t, b)}
	for i := range users {
		if ans := clients[i].who(); ans.subject != "platform-"+loadUser(i) {
			t.Fatalf("%s's warm-up call: %s", loadUser(i), ans)
		}
	}
	before := []map[string]float64{lookups(t, a), lookups(t, b)}
	var warmMiss float64
	for r := range before {
		for outcome, v := range before[r] {
			if outcome != credentials.OutcomeHit {
				warmMiss += v - warm[r][outcome]
			}
		}
	}
	t.Logf("warm-up round: %.0f of %d calls missed the credential cache", warmMiss, users)
	order := make([]int, 0, users*callsPerUser)
	for range callsPerUser {
		for i := range users {
			order = append(order, i)
		}
	}
	for i := len(order) - 1; i > 0; i-- {
		var r [2]byte
		_, _ = rand.Read(r[:])
		j := (int(r[0])<<8 | int(r[1])) % (i + 1)
		order[i], order[j] = order[j], order[i]
	}
	next := atomic.Int64{}
	var wrong, failed atomic.Int64
	var firstBad sync.Once
	loadStart := time.Now()
	var lwg sync.WaitGroup
	for range workers {
		lwg.Add(1)
		go func() {
			defer lwg.Done()
			for {
				k := int(next.Add(1)) - 1
				if k >= len(order) {
					return
				}
				i := order[k]
				ans := clients[i].who()
				switch {
				case ans.subject == "platform-"+loadUser(i):
				case ans.subject != "":
					wrong.Add(1)
					firstBad.Do(func() { t.Errorf("%s got an answer for %q", loadUser(i), ans.subject) })
				default:
					failed.Add(1)
					firstBad.Do(func() { t.Errorf("%s's call failed: %s", loadUser(i), ans) })
				}
			}
		}()
	}
	lwg.Wait()
	took := time.Since(loadStart)
	if wrong.Load() != 0 || failed.Load() != 0 {
		t.Fatalf("%d answers carried another user's identity, %d calls failed (of %d)", wrong.Load(), failed.Load(), len(order))
	}
	var hits, all float64
	for r, ag := range reps {
		after := lookups(t, ag)
		for outcome, v := range after {
			d := v - before[r][outcome]
			all += d
			if outcome == credentials.OutcomeHit {
				hits += d
			}
		}
	}
	rate := hits / all
	t.Logf("load: %d calls by %d users from %d goroutines on 2 replicas in %v (%.0f calls/s); credential cache: %.0f hits of %.0f lookups (%.3f%%)",
		len(order), users, workers, took.Round(time.Millisecond), float64(len(order))/took.Seconds(), hits, all, 100*rate)
	if all < float64(len(order)) || rate < 0.999 {
		t.Errorf("credential cache hit rate %.4f over %.0f lookups, want ≥ 0.999 over at least %d", rate, all, len(order))
	}

	// The audit records agree: every call as rita's… as its own user's
	// platform identity.
	for _, ag := range reps {
		for _, r := range readAuditLines(t, ag.audit) {
			if r.Method != "tools/call" || r.Credential == nil || r.Outcome != audit.OutcomeOK {
				continue
			}
			if want := "platform-" + strings.TrimPrefix(r.User.Subject, "user-"); r.Credential.PlatformSubject != want {
				t.Fatalf("audit: a call by %s ran as %q", r.User.Subject, r.Credential.PlatformSubject)
			}
		}
	}
}

// connectUser asks as uc (call → link) and connects user through the link
// in a new browser, which it returns (signed in to Mandate as user).
func (e *grantsEnv) connectUser(t *testing.T, ag *asGateway, uc *userClient, user string) *http.Client {
	t.Helper()
	b := newJar()
	p, _ := e.openLink(t, b, wantLink(t, user+"'s call", uc.who(), ag.issuer), user)
	wantConnected(t, p)
	wantSubject(t, user+" after connecting", uc.who(), "platform-"+user)
	return b
}

// waitExpired sleeps until the user's stored access token is past its
// cache skew (Mandate must refresh on the next call).
func (e *grantsEnv) waitExpired(t *testing.T, ag *asGateway, sub string) {
	t.Helper()
	g, err := ag.g.store.GetGrant(context.Background(), e.idp.Issuer(), sub, "tracker")
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(g.Expiry.Add(-e.skew + 200*time.Millisecond)))
}

// 4a. Faults at the platform: refresh answered invalid_grant (consent
// revoked at Hydra) → the user is asked again; the platform's
// authorization server down → a clear error, the grant not marked broken.
func TestGrantsPlatformFaults(t *testing.T) {
	t.Parallel()
	e := startGrantsEnv(t, 0, time.Second, "TTL_ACCESS_TOKEN=3s")
	ag := e.gateway(t, "", "")
	rita := newUserClient(t, ag.mcpAt, idpToken(t, e.idp, "rita", devidp.TokenOptions{Audience: []string{ag.mcpURL}}))
	e.connectUser(t, ag, rita, "rita")
	ctx := context.Background()

	// invalid_grant: Hydra revoked rita's consent; at expiry the refresh
	// is refused, the grant marked broken, rita asked again.
	if err := e.h.RevokeConsent(ctx, "platform-rita"); err != nil {
		t.Fatal(err)
	}
	e.waitExpired(t, ag, "user-rita")
	wantLink(t, "rita after Hydra revoked her consent", rita.who(), ag.issuer)
	if g, err := ag.g.store.GetGrant(ctx, e.idp.Issuer(), "user-rita", "tracker"); err != nil || !g.Broken || !strings.Contains(g.BrokenReason, "invalid_grant") {
		t.Fatalf("grant after invalid_grant: broken %v %q, %v", g.Broken, g.BrokenReason, err)
	}
	wantLink(t, "rita again (broken grant)", rita.who(), ag.issuer)
	e.connectUser(t, ag, rita, "rita") // connecting again replaces the broken grant
	// The refusal is in the audit chain (connect/refresh, grant_broken).
	broken := false
	for _, r := range readAuditLines(t, ag.audit) {
		if r.Method == audit.MethodConnectRefresh && r.User.Subject == "user-rita" && r.Upstream == "tracker" &&
			r.Outcome == audit.OutcomeError && r.ErrorClass == "grant_broken" && strings.Contains(r.Error, "invalid_grant") {
			broken = true
		}
	}
	if !broken {
		raw, _ := os.ReadFile(ag.audit)
		t.Fatalf("no connect/refresh record of the refused refresh:\n%s", raw)
	}

	// The platform's authorization server down: the refresh fails with a
	// clear error; the grant stays (not broken), nobody is asked to
	// connect again.
	e.waitExpired(t, ag, "user-rita")
	e.h.Close()
	for range 2 {
		ans := rita.who()
		if ans.link != "" || ans.subject != "" {
			t.Fatalf("rita with the platform's authorization server down: %s, want an error", ans)
		}
		msg := ans.toolErrorText
		if ans.err != nil {
			msg = ans.err.Error()
		}
		if !strings.Contains(msg, "tracker") || !strings.Contains(strings.ToLower(msg), "retry") {
			t.Errorf("error with the platform down: %q, want one naming tracker and saying to retry", msg)
		}
		t.Logf("platform down: %q", msg)
	}
	if g, err := ag.g.store.GetGrant(ctx, e.idp.Issuer(), "user-rita", "tracker"); err != nil || g.Broken || g.RefreshToken == "" {
		t.Fatalf("grant with the platform down: broken %v, refresh token kept %v, %v; want kept, not broken", g.Broken, g.RefreshToken != "", err)
	}
}

// 4b. The database down: calls that need a new grant fail with a clear
// error, cached tokens keep serving until they expire; back up, all works.
func TestGrantsDatabaseDown(t *testing.T) {
	t.Parallel()
	dsn := testpg.Schema(t)
	u, err := url.Parse(dsn)
	if err != nil || u.Host == "" {
		t.Skipf("MANDATE_POSTGRES_DSN is not a URL with a host: %v", err)
	}
	proxy := startTCPProxy(t, u.Host)
	u.Host = proxy.addr
	e := startGrantsEnv(t, 0, time.Second, "TTL_ACCESS_TOKEN=4s")
	ag := e.gateway(t, u.String(), "")
	opts := devidp.TokenOptions{Audience: []string{ag.mcpURL}}
	rita := newUserClient(t, ag.mcpAt, idpToken(t, e.idp, "rita", opts))
	morgan := newUserClient(t, ag.mcpAt, idpToken(t, e.idp, "morgan", opts))
	e.connectUser(t, ag, rita, "rita")
	g, err := ag.g.store.GetGrant(context.Background(), e.idp.Issuer(), "user-rita", "tracker")
	if err != nil {
		t.Fatal(err)
	}

	proxy.down()
	// rita's cached token serves until it expires.
	for time.Now().Before(g.Expiry.Add(-e.skew - 300*time.Millisecond)) {
		wantSubject(t, "rita with the database down (cached token)", rita.who(), "platform-rita")
		time.Sleep(250 * time.Millisecond)
	}
	// morgan needs a grant that cannot be read: a clear error, no link.
	ans := morgan.who()
	msg := ans.toolErrorText
	if ans.err != nil {
		msg = ans.err.Error()
	}
	if ans.subject != "" || ans.link != "" || !strings.Contains(msg, "tracker") || !strings.Contains(msg, "storage") {
		t.Fatalf("morgan with the database down: %s, want an error naming tracker and Mandate's storage", ans)
	}
	// The user hears it is the gateway's problem, not where its database is.
	if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "postgres") || strings.Contains(msg, "token service") {
		t.Errorf("morgan's error shows the database or blames the platform: %q", msg)
	}
	t.Logf("database down, no cached token: %q", msg)
	// Past expiry rita's call cannot refresh: a clear error too.
	time.Sleep(time.Until(g.Expiry.Add(-e.skew + 200*time.Millisecond)))
	if ans := rita.who(); ans.subject != "" || ans.link != "" {
		t.Fatalf("rita with the database down after expiry: %s, want an error", ans)
	} else {
		t.Logf("database down, token expired: %q %v", ans.toolErrorText, ans.err)
	}

	proxy.up(t)
	deadline := time.Now().Add(15 * time.Second)
	for {
		ans := rita.who()
		if ans.subject == "platform-rita" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rita after the database came back: %s", ans)
		}
		time.Sleep(200 * time.Millisecond)
	}
	wantLink(t, "morgan after the database came back", morgan.who(), ag.issuer)
}

// 4c. A consent link opened by another user creates nothing; a replayed,
// foreign-browser or altered callback state is refused. (An expired state
// and link: gateway/connect's TestConnectLinkExpiredOrTampered, which owns
// the clock.)
func TestGrantsLinkAndStateSafety(t *testing.T) {
	t.Parallel()
	e := startGrantsEnv(t, 0, 0)
	ag := e.gateway(t, "", "")
	opts := devidp.TokenOptions{Audience: []string{ag.mcpURL}}
	rita := newUserClient(t, ag.mcpAt, idpToken(t, e.idp, "rita", opts))
	morgan := newUserClient(t, ag.mcpAt, idpToken(t, e.idp, "morgan", opts))

	// morgan opens rita's link (signing in as morgan): refused, nothing
	// created for either, nothing sent to the platform.
	link := wantLink(t, "rita", rita.who(), ag.issuer)
	mb := newJar()
	p, callback := e.openLink(t, mb, link, "morgan")
	if p.status != http.StatusForbidden || callback != "" || !strings.Contains(p.body, "someone else") {
		t.Fatalf("rita's link opened by morgan: %d (platform reached: %v) %s", p.status, callback != "", pageText(p.body))
	}
	wantLink(t, "rita after morgan opened her link", rita.who(), ag.issuer)
	wantLink(t, "morgan after opening rita's link", morgan.who(), ag.issuer)
	if e.tokens.redeems.Load() != 0 {
		t.Fatalf("%d codes redeemed after a forwarded link", e.tokens.redeems.Load())
	}

	// rita connects; her callback replayed (same browser, another
	// browser) or altered is refused and changes nothing.
	rb := newJar()
	p, callback = e.openLink(t, rb, link, "rita")
	wantConnected(t, p)
	for _, c := range []struct {
		what   string
		b      *http.Client
		target string
		status int
		says   string
	}{
		{"replayed", rb, callback, http.StatusBadRequest, "already used"},
		{"replayed in morgan's browser", mb, callback, http.StatusBadRequest, "not started in this browser"},
		{"altered state", rb, strings.Replace(callback, "state=", "state=x", 1), http.StatusBadRequest, "state is missing or altered"},
	} {
		r := browserDo(t, c.b, http.MethodGet, c.target, nil, "")
		if r.status != c.status || r.loc != nil || !strings.Contains(strings.ToLower(pageText(r.body)), c.says) {
			t.Errorf("%s callback: %d %v %q, want %d saying %q", c.what, r.status, r.loc, pageText(r.body), c.status, c.says)
		}
	}
	if n := e.tokens.redeems.Load(); n != 1 {
		t.Errorf("%d codes redeemed, want 1 (rita's own)", n)
	}
	wantSubject(t, "rita", rita.who(), "platform-rita")
	wantLink(t, "morgan", morgan.who(), ag.issuer)
}
