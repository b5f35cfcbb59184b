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

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authserver"
	"github.com/mandate-gw/mandate/gateway/store"
	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// asGateway is a gateway whose public URL has a path prefix, with the
// authorization server on in front of the real zitadel IdP, SQLite storage
// and a file audit log.
type asGateway struct {
	*testGW
	idp    *devidp.IdP
	issuer string // Mandate's issuer: the public URL
	audit  string // audit file
}

func startASGateway(t *testing.T) *asGateway {
	t.Helper()
	idp := startIdP(t)
	dir := t.TempDir()
	key, err := store.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	ag := &asGateway{idp: idp, audit: filepath.Join(dir, "audit.log")}
	ag.testGW = startGateway(t, idp.Issuer(), func(c *Config) {
		c.Server.PublicURL += "/mandate"
		if err := idp.AddClient(devidp.ClientConfig{ID: "mandate", Secret: "idp-secret",
			RedirectURIs: []string{c.Server.PublicURL + authserver.PathCallback},
			Audience:     []string{c.MCPURL()}}); err != nil {
			t.Fatal(err)
		}
		c.AuthorizationServer.Enabled = true
		c.AuthorizationServer.IdP.ClientID = "mandate"
		c.AuthorizationServer.IdP.ClientSecret = "idp-secret"
		c.Storage.EncryptionKeys = []store.EncryptionKey{key}
		c.Storage.Path = filepath.Join(dir, "mandate.db")
		c.Audit.Sink = audit.SinkFile
		c.Audit.Path = ag.audit
	})
	ag.issuer = ag.cfg.Server.PublicURL
	return ag
}

func getJSON(t *testing.T, u string, v any) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("GET %s: %v: %s", u, err, b)
	}
}

var hiddenField = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// signIn is a client's sign-in as a browser does it: Mandate's
// authorization endpoint with login_hint, the IdP, Mandate's callback, the
// consent form (allow), the client's redirect URI with the code; then the
// code at the token endpoint. It returns the token response.
func (ag *asGateway) signIn(t testing.TB, clientID, redirectURI, user string) map[string]any {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := "verifier-" + strings.Repeat("x", 40)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"st-" + user}, "resource": {ag.mcpURL}, "scope": {"mcp"}, "login_hint": {user}}
	next, _ := url.Parse(ag.issuer + authserver.PathAuthorize + "?" + q.Encode())
	var form url.Values
	for range 12 {
		if strings.HasPrefix(next.String(), redirectURI) {
			break
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
			next, _ = url.Parse(ag.issuer + authserver.PathConsent)
		default:
			t.Fatalf("%s: %d %s", next, resp.StatusCode, body)
		}
	}
	got := next.Query()
	if !strings.HasPrefix(next.String(), redirectURI) || got.Get("code") == "" || got.Get("state") != "st-"+user || got.Get("iss") != ag.issuer {
		t.Fatalf("sign-in ended at %s", next)
	}
	return ag.token(t, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")}, "redirect_uri": {redirectURI},
		"client_id": {clientID}, "code_verifier": {verifier}, "resource": {ag.mcpURL}}, http.StatusOK)
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`).Replace(s)
}

func (ag *asGateway) token(t testing.TB, form url.Values, want int) map[string]any {
	t.Helper()
	resp, err := http.PostForm(ag.issuer+authserver.PathToken, form)
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
	ag.cfg.Admin.Token = "admin-token-0123456789"
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
