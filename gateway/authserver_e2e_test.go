package gateway

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/internal/testenv/webtest"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/secret"
	"github.com/mandate-gw/mandate/internal/testenv/testpg"
)

// asGateway is a gateway whose public URL has a path prefix, with the
// authorization server on in front of the real zitadel IdP, SQLite storage
// and a file audit log.
type asGateway struct {
	*testGW
	idp    *devidp.IdP
	issuer string // Mandate's issuer: the public URL
	base   string // this replica's own URL (with the public URL's path)
	mcpAt  string // this replica's MCP endpoint
	audit  string // audit file
}

func startASGateway(t *testing.T) *asGateway {
	t.Helper()
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	return startASGatewayWith(t, asOptions{idp: startIdP(t), key: key})
}

// asOptions shape startASGatewayWith: replicas share the IdP, the
// encryption key, the public URL and the database.
type asOptions struct {
	idp *devidp.IdP
	key store.EncryptionKey
	// publicURL, when set, is the public URL (another replica's); the
	// IdP client is then registered already.
	publicURL string
	// dsn, when set, is a PostgreSQL database; else SQLite in a temp dir.
	dsn string
	// mutate, when set, changes the configuration last (upstreams,
	// policy); opts are the gateway's run-time options.
	mutate func(*Config)
	opts   Options
}

// startASGatewayWith is a gateway in front of the zitadel IdP o.idp, its
// public URL with a path prefix (or o.publicURL: a replica).
func startASGatewayWith(t *testing.T, o asOptions) *asGateway {
	t.Helper()
	ag := startASGatewayForOpts(t, o.idp.Issuer(), func(c *Config) {
		if o.publicURL != "" {
			c.Server.PublicURL = o.publicURL
		} else {
			c.Server.PublicURL += "/mandate"
			if err := o.idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: "idp-secret",
				RedirectURIs: []string{c.Server.PublicURL + authserver.PathCallback},
				Audience:     []string{c.MCPURL()}}); err != nil {
				t.Fatal(err)
			}
		}
		c.AuthorizationServer.IdP.ClientID = "mandate"
		c.AuthorizationServer.IdP.ClientSecret = "idp-secret"
		c.Storage.EncryptionKeys = []store.EncryptionKey{o.key}
		if o.dsn != "" {
			c.Storage.Driver = store.DriverPostgres
			c.Storage.DSN = secret.String(o.dsn)
			c.Storage.Path = ""
		}
		if o.mutate != nil {
			o.mutate(c)
		}
	}, o.opts)
	ag.idp = o.idp
	return ag
}

// startASGatewayFor is a gateway with the authorization server on in front
// of the IdP at issuer, SQLite storage and a file audit log; mutate
// registers Mandate at the IdP and sets authorization_server.idp (it runs
// before the defaults, and may replace the storage).
func startASGatewayFor(t *testing.T, issuer string, mutate func(*Config)) *asGateway {
	t.Helper()
	return startASGatewayForOpts(t, issuer, mutate, Options{})
}

// startASGatewayForOpts is startASGatewayFor with run-time options.
func startASGatewayForOpts(t *testing.T, issuer string, mutate func(*Config), opts Options) *asGateway {
	t.Helper()
	dir := t.TempDir()
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ag := &asGateway{audit: filepath.Join(dir, "audit.log")}
	ag.testGW = startGatewayOpts(t, issuer, func(c *Config) {
		c.AuthorizationServer.Enabled = true
		c.Storage.EncryptionKeys = []store.EncryptionKey{key}
		c.Storage.Path = filepath.Join(dir, "mandate.db")
		c.Audit.Sink = audit.SinkFile
		c.Audit.Path = ag.audit
		c.Admin.Token = "admin-token-0123456789"
		mutate(c)
	}, opts)
	ag.issuer = ag.cfg.Server.PublicURL
	pu, _ := url.Parse(ag.issuer)
	ag.base = ag.srv.URL + pu.Path
	ag.mcpAt = ag.base + MCPPath
	return ag
}

func getJSON(t *testing.T, u string, v any) { webtest.GetJSON(t, u, v) }

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// signIn is a client's sign-in as a browser does it (browse), which must
// end at the client's redirect URI with a code; then the code at the token
// endpoint. It returns the token response.
func (ag *asGateway) signIn(t testing.TB, clientID, redirectURI, user string) map[string]any {
	t.Helper()
	end := ag.browse(t, clientID, redirectURI, user)
	got := end.at.Query()
	if end.status != 0 || !strings.HasPrefix(end.at.String(), redirectURI) || got.Get("code") == "" || got.Get("state") != "st-"+user || got.Get("iss") != ag.issuer {
		t.Fatalf("sign-in ended at %s: %d %s", end.at, end.status, end.body)
	}
	return ag.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {redirectURI},
		"client_id": {clientID}, "code_verifier": {signInVerifier}, "resource": {ag.mcpURL}}, http.StatusOK)
}

const signInVerifier = "verifier-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"

// browseEnd is where a browsed sign-in stopped: the client's redirect URI
// (status 0), or a page that is neither a redirect nor Mandate's consent
// form (its URL, status and body).
type browseEnd struct {
	at     *url.URL
	status int
	body   string
}

// browse is a client's sign-in as a browser does it: Mandate's
// authorization endpoint with login_hint, the IdP, Mandate's callback, the
// consent form (allow), until the client's redirect URI or another page.
func (ag *asGateway) browse(t testing.TB, clientID, redirectURI, user string) browseEnd {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	sum := sha256.Sum256([]byte(signInVerifier))
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"st-" + user}, "resource": {ag.mcpURL}, "scope": {"mcp"}, "login_hint": {user}}
	next, _ := url.Parse(ag.base + authserver.PathAuthorize + "?" + q.Encode())
	var form url.Values
	for range 12 {
		if strings.HasPrefix(next.String(), redirectURI) {
			return browseEnd{at: next}
		}
		var resp *http.Response
		var err error
		if form != nil {
			req, _ := http.NewRequest(http.MethodPost, next.String(), strings.NewReader(form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", ag.srv.URL)
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			resp, err = browser.Do(req)
			form = nil
		} else {
			resp, err = browser.Get(next.String())
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case resp.StatusCode/100 == 3:
			loc, err := resp.Location()
			if err != nil {
				t.Fatal(err)
			}
			next = loc
		case resp.StatusCode == http.StatusOK && strings.Contains(string(body), `<form method="post"`):
			form = url.Values{"decision": {"allow"}}
			for _, m := range hiddenField.FindAllStringSubmatch(string(body), -1) {
				form.Set(m[1], htmlUnescape(m[2]))
			}
			next, _ = url.Parse(ag.base + authserver.PathConsent)
		default:
			return browseEnd{at: next, status: resp.StatusCode, body: string(body)}
		}
	}
	t.Fatalf("sign-in did not end after 12 steps, at %s", next)
	return browseEnd{}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

func (ag *asGateway) token(t testing.TB, form url.Values, want int) map[string]any {
	t.Helper()
	resp, err := http.PostForm(ag.base+authserver.PathToken, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("token %s: %d %s, want %d", form.Get("grant_type"), resp.StatusCode, b, want)
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("token: %v %s", err, b)
	}
	return out
}

// The whole chain through the gateway's own routes: discovery from the
// protected resource metadata (with a path prefix, RFC 8414 path
// insertion), dynamic registration, sign-in, a Mandate token on /mcp as
// the IdP user, the audit records naming the client, refresh, and the admin
// purge ending it.
func TestAuthorizationServerThroughGateway(t *testing.T) {
	ag := startASGateway(t)

	// 401 challenge → protected resource metadata → Mandate's metadata.
	resp, _ := ag.post(t, initBody, nil)
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `scope="mcp"`) {
		t.Fatalf("unauthenticated: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	var prm ProtectedResourceMetadata
	getJSON(t, ag.srv.URL+"/.well-known/oauth-protected-resource/mandate/mcp", &prm)
	if len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != ag.issuer || strings.Join(prm.ScopesSupported, " ") != "mcp" {
		t.Fatalf("protected resource metadata = %+v", prm)
	}
	u, _ := url.Parse(ag.issuer)
	var meta map[string]any
	getJSON(t, u.Scheme+"://"+u.Host+"/.well-known/oauth-authorization-server"+u.Path, &meta)
	if meta["issuer"] != ag.issuer || meta["registration_endpoint"] != ag.issuer+authserver.PathRegister ||
		meta["client_id_metadata_document_supported"] != true || meta["token_endpoint"] != ag.issuer+authserver.PathToken {
		t.Fatalf("authorization server metadata = %v", meta)
	}
	var oidcMeta map[string]any
	getJSON(t, u.Scheme+"://"+u.Host+"/.well-known/openid-configuration"+u.Path, &oidcMeta)
	if oidcMeta["issuer"] != ag.issuer {
		t.Fatalf("OpenID path metadata = %v", oidcMeta)
	}

	// Dynamic registration.
	redirect := "http://127.0.0.1:7777/callback"
	clientID := ag.register(t, redirect)

	tok := ag.signIn(t, clientID, redirect, "alice")
	access, _ := tok["access_token"].(string)
	refresh, _ := tok["refresh_token"].(string)
	if access == "" || refresh == "" {
		t.Fatalf("token response = %v", tok)
	}
	// The Mandate token works on /mcp and the identity is the IdP user's.
	if w := callWhoAmI(t, connect(t, ag.mcpURL, access)); w.Subject != "user-alice" || w.Issuer != ag.idp.Issuer() || strings.Join(w.Roles, ",") != "sales" {
		t.Fatalf("whoami with a Mandate token = %+v", w)
	}
	// IdP tokens presented directly still work.
	idpTok := idpToken(t, ag.idp, "bob", devidp.TokenOptions{Audience: []string{ag.mcpURL}})
	if w := callWhoAmI(t, connect(t, ag.mcpURL, idpTok)); w.Subject != "user-bob" {
		t.Fatalf("whoami with an IdP token = %+v", w)
	}

	// The audit chain has the sign-in and the call, naming the client.
	lines := readAuditLines(t, ag.audit)
	var login, call bool
	for _, r := range lines {
		switch {
		case r.Method == audit.MethodOAuthLogin && r.User.Subject == "user-alice" && r.OAuthClient == clientID:
			login = true
		case r.Method == "tools/call" && r.User.Subject == "user-alice" && r.OAuthClient == clientID:
			call = true
		}
	}
	if !login || !call {
		b, _ := os.ReadFile(ag.audit)
		t.Fatalf("audit records lack the sign-in (%v) or the call (%v) with oauth_client %s:\n%s", login, call, clientID, b)
	}

	// Refresh rotates.
	tok2 := ag.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}, http.StatusOK)
	if tok2["refresh_token"] == refresh || tok2["access_token"] == "" {
		t.Fatalf("refresh = %v", tok2)
	}

	// The admin purge ends the user's sign-ins: the refresh token and the
	// Mandate access token stop working.
	req, _ := http.NewRequest(http.MethodDelete, ag.srv.URL+"/admin/users/user-alice", nil)
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	pr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusOK {
		t.Fatalf("purge: %d", pr.StatusCode)
	}
	ag.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}, "client_id": {clientID}}, http.StatusBadRequest)
	if resp, body := ag.post(t, initBody, bearer(tok2["access_token"].(string))); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("Mandate token after purge: %d %s", resp.StatusCode, body)
	}
}

// register registers a public client with one redirect URI (RFC 7591)
// and returns its client_id.
func (ag *asGateway) register(t *testing.T, redirect string) string {
	t.Helper()
	regResp, err := http.Post(ag.issuer+authserver.PathRegister, "application/json",
		strings.NewReader(`{"client_name":"e2e client","redirect_uris":["`+redirect+`"],"token_endpoint_auth_method":"none"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(regResp.Body).Decode(&reg)
	regResp.Body.Close()
	clientID, _ := reg["client_id"].(string)
	if regResp.StatusCode != http.StatusCreated || clientID == "" {
		t.Fatalf("registration: %d %v", regResp.StatusCode, reg)
	}
	return clientID
}

func readAuditLines(t *testing.T, path string) []audit.Record {
	t.Helper()
	var out []audit.Record
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			out = out[:0]
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				var r audit.Record
				if json.Unmarshal([]byte(l), &r) == nil {
					out = append(out, r)
				}
			}
			for _, r := range out {
				if r.Method == "tools/call" {
					return out
				}
			}
		}
		if time.Now().After(deadline) {
			return out
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two replicas share one PostgreSQL database, the encryption key and the
// public URL: a user signs in at one and uses the token at the other; the
// other refreshes it; a revocation (RFC 7009) at one and an admin purge at
// the other take effect on both within the revocation sync.
func TestAuthorizationServerReplicasShareState(t *testing.T) {
	dsn := testpg.Schema(t)
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	idp := startIdP(t)
	a := startASGatewayWith(t, asOptions{idp: idp, key: key, dsn: dsn})
	b := startASGatewayWith(t, asOptions{idp: idp, key: key, dsn: dsn, publicURL: a.issuer})

	regResp, err := http.Post(a.base+authserver.PathRegister, "application/json",
		strings.NewReader(`{"client_name":"replica client","redirect_uris":["http://127.0.0.1:7777/cb"]}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg map[string]any
	_ = json.NewDecoder(regResp.Body).Decode(&reg)
	regResp.Body.Close()
	clientID, _ := reg["client_id"].(string)
	if clientID == "" {
		t.Fatalf("registration: %v", reg)
	}

	// Signed in at A (the client registered at A too), used at B.
	tok := a.signIn(t, clientID, "http://127.0.0.1:7777/cb", "alice")
	if w := callWhoAmI(t, connect(t, b.mcpAt, tok["access_token"].(string))); w.Subject != "user-alice" {
		t.Fatalf("whoami at replica B = %+v", w)
	}
	// B rotates the refresh token A issued; A's old one is now a replay.
	tok2 := b.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {clientID}}, http.StatusOK)
	if w := callWhoAmI(t, connect(t, a.mcpAt, tok2["access_token"].(string))); w.Subject != "user-alice" {
		t.Fatalf("whoami at replica A with B's token = %+v", w)
	}

	// Revocation at A: B refuses the access token within the sync interval.
	resp, err := http.PostForm(a.base+authserver.PathRevoke, url.Values{"token": {tok2["refresh_token"].(string)}, "client_id": {clientID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	waitRefused(t, b, tok2["access_token"].(string))

	// A second sign-in; an admin purge at B ends it at A.
	tok3 := a.signIn(t, clientID, "http://127.0.0.1:7777/cb", "alice")
	callWhoAmI(t, connect(t, a.mcpAt, tok3["access_token"].(string)))
	req, _ := http.NewRequest(http.MethodDelete, b.srv.URL+"/admin/users/user-alice", nil)
	req.Header.Set("Authorization", "Bearer admin-token-0123456789")
	pr, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pr.Body.Close()
	if pr.StatusCode != http.StatusOK {
		t.Fatalf("purge at B: %d", pr.StatusCode)
	}
	waitRefused(t, a, tok3["access_token"].(string))
	a.token(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok3["refresh_token"].(string)}, "client_id": {clientID}}, http.StatusBadRequest)
}

// waitRefused waits (up to 5 s; the revocation sync runs every 2 s) until
// the replica answers 401 to the token.
func waitRefused(t *testing.T, ag *asGateway, access string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := send(t, http.MethodPost, ag.mcpAt, initBody, bearer(access), "")
		if resp.StatusCode == http.StatusUnauthorized {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %s still accepts a revoked token: %d", ag.srv.URL, resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Mandate's own client ID metadata document (its client_id at platforms
// that accept them) is valid per the CIMD draft: client_id equals the URL
// it is served at, and the redirect URI is the connect callback.
func TestClientMetadataDocument(t *testing.T) {
	ag := startASGateway(t)
	var doc map[string]any
	getJSON(t, ag.base+PathClientMetadata, &doc)
	uris, _ := doc["redirect_uris"].([]any)
	if doc["client_id"] != ag.issuer+PathClientMetadata || len(uris) != 1 || uris[0] != ag.issuer+"/connect/callback" ||
		doc["token_endpoint_auth_method"] != "none" || doc["client_name"] == "" {
		t.Fatalf("client metadata document = %v", doc)
	}
}
