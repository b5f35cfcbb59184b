package clients

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/store"
)

type dcrEnv struct {
	r     *Registry
	st    store.Store
	clock *fakeClock
	mu    sync.Mutex
	recs  []audit.Record
}

func newDCR(t *testing.T, reg RegistrationConfig) *dcrEnv {
	t.Helper()
	st, err := store.OpenSQLite(filepath.Join(t.TempDir(), "mandate.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	env := &dcrEnv{st: st, clock: newClock()}
	env.r, err = New(Options{
		Registration: reg,
		Store:        st,
		Now:          env.clock.Now,
		Audit: func(_ context.Context, rec *audit.Record) {
			env.mu.Lock()
			defer env.mu.Unlock()
			env.recs = append(env.recs, *rec)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func (env *dcrEnv) records() []audit.Record {
	env.mu.Lock()
	defer env.mu.Unlock()
	return append([]audit.Record(nil), env.recs...)
}

// post sends body (a JSON string) to the registration endpoint.
func (env *dcrEnv) post(body string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	env.r.RegisterHandler().ServeHTTP(w, req)
	return w
}

type regResponse struct {
	ClientID                string   `json:"client_id"`
	ClientIDIssuedAt        int64    `json:"client_id_issued_at"`
	ClientSecret            *string  `json:"client_secret"`
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at"`
	ClientName              string   `json:"client_name"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	Error                   string   `json:"error"`
	ErrorDescription        string   `json:"error_description"`
}

func decodeReg(t *testing.T, w *httptest.ResponseRecorder) regResponse {
	t.Helper()
	var r regResponse
	if err := json.Unmarshal(w.Body.Bytes(), &r); err != nil {
		t.Fatalf("response %d %q: %v", w.Code, w.Body, err)
	}
	return r
}

const publicReg = `{"client_name":"MCP Inspector","redirect_uris":["http://localhost:6274/oauth/callback"],"application_type":"native"}`

// TestRegisterPublic: an open registration of a public client: 201 per RFC
// 7591 §3.2.1, stored, resolvable, audited.
func TestRegisterPublic(t *testing.T) {
	t.Parallel()
	env := newDCR(t, RegistrationConfig{})
	w := env.post(publicReg)
	if w.Code != http.StatusCreated {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("headers %v", w.Header())
	}
	got := decodeReg(t, w)
	if !strings.HasPrefix(got.ClientID, dynamicIDPrefix) || len(got.ClientID) < 20 ||
		got.ClientIDIssuedAt != env.clock.Now().Unix() || got.ClientSecret != nil || got.ClientSecretExpiresAt != nil ||
		got.TokenEndpointAuthMethod != "none" || got.ClientName != "MCP Inspector" ||
		strings.Join(got.GrantTypes, " ") != "authorization_code refresh_token" || strings.Join(got.ResponseTypes, " ") != "code" ||
		strings.Join(got.RedirectURIs, " ") != "http://localhost:6274/oauth/callback" {
		t.Fatalf("response %s", w.Body)
	}
	c, e := env.r.Resolve(context.Background(), got.ClientID)
	if e != nil {
		t.Fatal(e)
	}
	if c.Kind != KindDynamic || !c.Public || c.Name != "MCP Inspector" || !c.RedirectAllowed("http://localhost:1234/oauth/callback") || c.RedirectAllowed("https://evil.example/") {
		t.Fatalf("resolved %+v", c)
	}
	recs := env.records()
	if len(recs) != 1 || recs[0].Method != audit.MethodOAuthRegister || recs[0].OAuthClient != got.ClientID ||
		recs[0].Outcome != audit.OutcomeOK || recs[0].RemoteAddr != "192.0.2.1" {
		t.Fatalf("audit %+v", recs)
	}
	// A second registration gets another id.
	if again := decodeReg(t, env.post(publicReg)); again.ClientID == got.ClientID {
		t.Fatal("two registrations got the same client_id")
	}
}

// TestRegisterConfidential: client_secret_basic/post get a secret, shown
// once; only its SHA-256 is stored; it authenticates at the token endpoint.
func TestRegisterConfidential(t *testing.T) {
	t.Parallel()
	env := newDCR(t, RegistrationConfig{})
	for _, method := range []string{AuthClientSecretBasic, AuthClientSecretPost} {
		w := env.post(`{"client_name":"Web","redirect_uris":["https://web.example.com/cb"],"token_endpoint_auth_method":"` + method + `"}`)
		if w.Code != http.StatusCreated {
			t.Fatalf("%s: %d %s", method, w.Code, w.Body)
		}
		got := decodeReg(t, w)
		if got.ClientSecret == nil || len(*got.ClientSecret) < 40 || got.ClientSecretExpiresAt == nil || *got.ClientSecretExpiresAt != 0 || got.TokenEndpointAuthMethod != method {
			t.Fatalf("%s: response %s", method, w.Body)
		}
		row, err := env.st.GetClient(context.Background(), got.ClientID)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(*got.ClientSecret))
		if !bytes.Equal(row.SecretHash, h[:]) || bytes.Contains(row.Metadata, []byte(*got.ClientSecret)) {
			t.Fatalf("%s: stored secret hash %x, metadata %s", method, row.SecretHash, row.Metadata)
		}
		ok, e := env.r.Authenticate(tokenRequest(url.Values{}, basic(got.ClientID, *got.ClientSecret)))
		if e != nil || ok.ID != got.ClientID || ok.Public {
			t.Fatalf("%s: Authenticate with the issued secret: %+v %v", method, ok, e)
		}
		if _, e := env.r.Authenticate(tokenRequest(url.Values{"client_id": {got.ClientID}, "client_secret": {*got.ClientSecret}}, "")); e != nil {
			t.Fatalf("%s: client_secret_post: %v", method, e)
		}
		if _, e := env.r.Authenticate(tokenRequest(url.Values{"client_id": {got.ClientID}}, "")); e == nil || e.Status != 401 {
			t.Fatalf("%s: confidential client without its secret: %v", method, e)
		}
		if _, e := env.r.Authenticate(tokenRequest(url.Values{}, basic(got.ClientID, "wrong"))); e == nil || e.Status != 401 || e.WWWAuthenticate == "" {
			t.Fatalf("%s: wrong secret: %v", method, e)
		}
	}
}

// TestRegisterKeepsWhatTheClientSent: client_name is stored as sent (the
// consent page escapes it); the client cannot choose its client_id;
// metadata Mandate does not understand is dropped; private-use schemes of
// native apps are accepted.
func TestRegisterKeepsWhatTheClientSent(t *testing.T) {
	t.Parallel()
	env := newDCR(t, RegistrationConfig{})
	const name = `<script>alert("x")</script> Agent`
	body, _ := json.Marshal(map[string]any{
		"client_id": "cli", "client_name": name, "logo_uri": "https://x.example/logo.png",
		"redirect_uris": []string{"cursor://anysphere.cursor-retrieval/oauth/user-mandate/callback", "http://127.0.0.1:33418/callback"},
	})
	w := env.post(string(body))
	if w.Code != http.StatusCreated {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	got := decodeReg(t, w)
	if got.ClientID == "cli" || strings.Contains(w.Body.String(), "logo_uri") {
		t.Fatalf("response %s", w.Body)
	}
	c, e := env.r.Resolve(context.Background(), got.ClientID)
	if e != nil || c.Name != name || !c.RedirectAllowed("cursor://anysphere.cursor-retrieval/oauth/user-mandate/callback") || !c.RedirectAllowed("http://127.0.0.1:40000/callback") {
		t.Fatalf("resolved %+v %v", c, e)
	}
	// Without client_name the client is shown as unnamed.
	got = decodeReg(t, env.post(`{"redirect_uris":["https://a.example/cb"]}`))
	if c, e := env.r.Resolve(context.Background(), got.ClientID); e != nil || c.Name != UnnamedClient {
		t.Fatalf("unnamed: %+v %v", c, e)
	}
}

func TestRegisterBadInput(t *testing.T) {
	t.Parallel()
	env := newDCR(t, RegistrationConfig{})
	for _, tc := range []struct {
		name, body string
		ctype      string
		status     int
		code, desc string
	}{
		{"not JSON", `{"redirect_uris":`, "", 400, "invalid_client_metadata", "not JSON"},
		{"JSON array", `[]`, "", 400, "invalid_client_metadata", "not a JSON object"},
		{"form body", `redirect_uris=https://a.example/cb`, "application/x-www-form-urlencoded", 400, "invalid_client_metadata", "must be JSON"},
		{"too large", `{"client_name":"` + strings.Repeat("a", MaxRegistrationBytes) + `"}`, "", 413, "invalid_client_metadata", "larger than 64 KiB"},
		{"no redirect_uris", `{"client_name":"x"}`, "", 400, "invalid_redirect_uri", "redirect_uris is required"},
		{"empty redirect_uris", `{"redirect_uris":[]}`, "", 400, "invalid_redirect_uri", "redirect_uris is required"},
		{"redirect_uris a string", `{"redirect_uris":"https://a.example/cb"}`, "", 400, "invalid_client_metadata", "redirect_uris must be an array of strings"},
		{"http on a public host", `{"redirect_uris":["http://a.example/cb"]}`, "", 400, "invalid_redirect_uri", "redirect_uris[0]: \"http://a.example/cb\": http is allowed only for loopback"},
		{"javascript", `{"redirect_uris":["https://a.example/cb","javascript:alert(1)"]}`, "", 400, "invalid_redirect_uri", "redirect_uris[1]: \"javascript:alert(1)\": the javascript: scheme is not allowed"},
		{"data", `{"redirect_uris":["data:text/html,hi"]}`, "", 400, "invalid_redirect_uri", "data: scheme"},
		{"file", `{"redirect_uris":["file:///tmp/x"]}`, "", 400, "invalid_redirect_uri", "file: scheme"},
		{"vbscript", `{"redirect_uris":["VBScript:msgbox"]}`, "", 400, "invalid_redirect_uri", "vbscript: scheme"},
		{"fragment", `{"redirect_uris":["https://a.example/cb#x"]}`, "", 400, "invalid_redirect_uri", "fragment"},
		{"relative", `{"redirect_uris":["/cb"]}`, "", 400, "invalid_redirect_uri", "not an absolute URI"},
		{"too many", `{"redirect_uris":[` + strings.TrimSuffix(strings.Repeat(`"https://a.example/cb",`, 21), ",") + `]}`, "", 400, "invalid_redirect_uri", "at most 20"},
		{"client_credentials", `{"redirect_uris":["https://a.example/cb"],"grant_types":["client_credentials"]}`, "", 400, "invalid_client_metadata", `"client_credentials" is not supported`},
		{"implicit", `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","implicit"]}`, "", 400, "invalid_client_metadata", `"implicit" is not supported`},
		{"refresh only", `{"redirect_uris":["https://a.example/cb"],"grant_types":["refresh_token"]}`, "", 400, "invalid_client_metadata", "must include authorization_code"},
		{"response_types token", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, "", 400, "invalid_client_metadata", `response_types: "token" is not supported`},
		{"private_key_jwt", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, "", 400, "invalid_client_metadata", "private_key_jwt is not supported"},
		{"unknown auth method", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}`, "", 400, "invalid_client_metadata", `"tls_client_auth" is not supported`},
		{"client_uri javascript", `{"redirect_uris":["https://a.example/cb"],"client_uri":"javascript:alert(1)"}`, "", 400, "invalid_client_metadata", "client_uri"},
		{"client_name control", `{"redirect_uris":["https://a.example/cb"],"client_name":"a\u0000b"}`, "", 400, "invalid_client_metadata", "client_name contains control characters"},
		{"client_name not a string", `{"redirect_uris":["https://a.example/cb"],"client_name":42}`, "", 400, "invalid_client_metadata", "client_name must be a string"},
		{"application_type", `{"redirect_uris":["https://a.example/cb"],"application_type":"desktop"}`, "", 400, "invalid_client_metadata", "application_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct := tc.ctype
			if ct == "" {
				ct = "application/json"
			}
			w := env.post(tc.body, "Content-Type", ct)
			got := decodeReg(t, w)
			if w.Code != tc.status || got.Error != tc.code || !strings.Contains(got.ErrorDescription, tc.desc) {
				t.Fatalf("%d %s %q; want %d %s %q", w.Code, got.Error, got.ErrorDescription, tc.status, tc.code, tc.desc)
			}
		})
	}
	if recs := env.records(); len(recs) != 0 {
		t.Fatalf("refused registrations were recorded as registrations: %+v", recs)
	}
	req := httptest.NewRequest(http.MethodGet, "/oauth/register", nil)
	w := httptest.NewRecorder()
	env.r.RegisterHandler().ServeHTTP(w, req)
	if w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", w.Code)
	}
}

func TestRegisterPolicies(t *testing.T) {
	t.Parallel()
	const iat = "initial-access-token-0123456789"
	tok := newDCR(t, RegistrationConfig{Policy: PolicyToken, InitialAccessToken: iat})
	for _, authz := range []string{"", "Bearer wrong-token-0123456789", "Basic " + iat, "Bearer " + iat + "x"} {
		w := tok.post(publicReg, "Authorization", authz)
		got := decodeReg(t, w)
		if w.Code != http.StatusUnauthorized || got.Error != "invalid_token" || !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), `Bearer error="invalid_token"`) {
			t.Fatalf("policy token, Authorization %q: %d %s %v", authz, w.Code, w.Body, w.Header())
		}
	}
	if w := tok.post(publicReg, "Authorization", "Bearer "+iat); w.Code != http.StatusCreated {
		t.Fatalf("policy token with the token: %d %s", w.Code, w.Body)
	}
	recs := tok.records()
	if len(recs) != 5 || recs[0].Outcome != audit.OutcomeUnauthenticated || recs[4].Outcome != audit.OutcomeOK {
		t.Fatalf("audit %+v", recs)
	}
	for _, rec := range recs {
		b, _ := json.Marshal(rec)
		if bytes.Contains(b, []byte(iat[:16])) {
			t.Fatalf("audit record carries the token: %s", b)
		}
	}
	if !tok.r.RegistrationEnabled() {
		t.Fatal("RegistrationEnabled false with policy token")
	}

	off := newDCR(t, RegistrationConfig{Policy: PolicyOff})
	w := off.post(publicReg)
	if got := decodeReg(t, w); w.Code != http.StatusForbidden || got.Error != "access_denied" || !strings.Contains(got.ErrorDescription, "disabled") {
		t.Fatalf("policy off: %d %s", w.Code, w.Body)
	}
	if off.r.RegistrationEnabled() {
		t.Fatal("RegistrationEnabled true with policy off")
	}
}

// TestDynamicClientUseAndSweep: Resolve bumps LastUsedAt at most once a
// minute; Sweep deletes registrations unused for unused_ttl.
func TestDynamicClientUseAndSweep(t *testing.T) {
	t.Parallel()
	env := newDCR(t, RegistrationConfig{UnusedTTL: 720 * time.Hour})
	ctx := context.Background()
	t0 := env.clock.Now()
	idle := decodeReg(t, env.post(publicReg)).ClientID
	used := decodeReg(t, env.post(publicReg)).ClientID
	lastUsed := func(id string) time.Time {
		t.Helper()
		row, err := env.st.GetClient(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return row.LastUsedAt
	}
	resolve := func(id string) {
		t.Helper()
		if _, e := env.r.Resolve(ctx, id); e != nil {
			t.Fatal(e)
		}
	}
	env.clock.Advance(30 * time.Second)
	resolve(used)
	if got := lastUsed(used); !got.Equal(t0) {
		t.Fatalf("LastUsedAt bumped after 30s: %s, want %s", got, t0)
	}
	env.clock.Advance(31 * time.Second)
	resolve(used)
	if got := lastUsed(used); !got.Equal(t0.Add(61 * time.Second)) {
		t.Fatalf("LastUsedAt after 61s = %s, want %s", got, t0.Add(61*time.Second))
	}
	env.clock.Advance(700 * time.Hour)
	resolve(used)
	env.clock.Advance(21 * time.Hour) // idle: unused for 721h; used: 21h
	if err := env.r.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, e := env.r.Resolve(ctx, idle); e == nil || !strings.Contains(e.Description, "unknown client_id") {
		t.Fatalf("idle registration after Sweep: %v", e)
	}
	resolve(used)
}

func TestUnknownDynamicClient(t *testing.T) {
	t.Parallel()
	env := newDCR(t, RegistrationConfig{})
	_, e := env.r.Resolve(context.Background(), "mcl_doesnotexist")
	if e == nil || e.Code != "invalid_client" || e.Status != 400 || !strings.Contains(e.Description, `unknown client_id "mcl_doesnotexist"`) {
		t.Fatalf("unknown: %v", e)
	}
}

// Open registration is bounded per client address: per_minute stored
// registrations, then 429 with Retry-After (audited, nothing stored); other
// addresses are not held up; the budget refills with time; -1 turns it off.
func TestRegisterPerAddressBound(t *testing.T) {
	env := newDCR(t, RegistrationConfig{PerMinute: 3})
	post := func(addr string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/oauth/register", strings.NewReader(publicReg))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = addr
		w := httptest.NewRecorder()
		env.r.RegisterHandler().ServeHTTP(w, req)
		return w
	}
	for i := range 3 {
		if w := post("198.51.100.7:4000"); w.Code != http.StatusCreated {
			t.Fatalf("registration %d: %d %s", i, w.Code, w.Body)
		}
	}
	w := post("198.51.100.7:4001")
	if w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" || !strings.Contains(w.Body.String(), "too many client registrations") {
		t.Fatalf("4th registration from one address: %d %q %s", w.Code, w.Header().Get("Retry-After"), w.Body)
	}
	if recs := env.records(); recs[len(recs)-1].ErrorClass != "rate_limited" || recs[len(recs)-1].RemoteAddr == "" {
		t.Errorf("refusal not audited: %+v", recs[len(recs)-1])
	}
	if w := post("203.0.113.9:4000"); w.Code != http.StatusCreated {
		t.Fatalf("another address: %d %s", w.Code, w.Body)
	}
	env.clock.Advance(21 * time.Second) // one registration per 20 s
	if w := post("198.51.100.7:4002"); w.Code != http.StatusCreated {
		t.Fatalf("after the refill: %d %s", w.Code, w.Body)
	}

	off := newDCR(t, RegistrationConfig{PerMinute: -1})
	for i := range 20 {
		if w := off.post(publicReg); w.Code != http.StatusCreated {
			t.Fatalf("per_minute -1, registration %d: %d %s", i, w.Code, w.Body)
		}
	}
}
