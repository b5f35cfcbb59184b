package devidp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/google/go-cmp/cmp"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	gatewayResource = "http://127.0.0.1:8080/mcp"
	crmAudience     = "https://crm.internal"
	accessTokenType = "urn:ietf:params:oauth:token-type:access_token"
	exchangeGrant   = "urn:ietf:params:oauth:grant-type:token-exchange"
)

func start(t *testing.T, opts devidp.Options) *devidp.IdP {
	t.Helper()
	began := time.Now()
	idp, err := devidp.Start(context.Background(), opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("devidp started in %v at %s", time.Since(began), idp.Issuer())
	t.Cleanup(func() {
		if err := idp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return idp
}

// accessClaims is the claim shape other packages rely on.
type accessClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience []string `json:"aud"` // always a JSON array
	Expiry   int64    `json:"exp"`
	IssuedAt int64    `json:"iat"`
	ClientID string   `json:"client_id"`
	JTI      string   `json:"jti"`
	Email    string   `json:"email"`
	Username string   `json:"preferred_username"`
	Roles    []string `json:"roles"`
	Groups   []string `json:"groups"`
	Scope    string   `json:"scope"`
	Act      *struct {
		Sub string `json:"sub"`
	} `json:"act"`
}

// verify checks token with go-oidc against the IdP's discovery document and
// JWKS, requiring aud to contain audience.
func verify(t *testing.T, idp *devidp.IdP, token, audience string) accessClaims {
	t.Helper()
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, idp.Issuer())
	if err != nil {
		t.Fatalf("discovery at %s: %v", idp.Issuer(), err)
	}
	var meta struct {
		JWKS  string `json:"jwks_uri"`
		Token string `json:"token_endpoint"`
	}
	if err := provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	if meta.JWKS != idp.JWKSURL() || meta.Token != idp.TokenURL() {
		t.Fatalf("discovery jwks_uri=%q token_endpoint=%q, IdP says %q %q", meta.JWKS, meta.Token, idp.JWKSURL(), idp.TokenURL())
	}
	v := provider.Verifier(&oidc.Config{ClientID: audience, SupportedSigningAlgs: []string{oidc.RS256}})
	tok, err := v.Verify(ctx, token)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	var c accessClaims
	if err := tok.Claims(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokenClaims(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	if strings.HasSuffix(idp.Issuer(), "/") || !strings.HasPrefix(idp.Issuer(), "http://127.0.0.1:") {
		t.Errorf("Issuer() = %q, want http://127.0.0.1:PORT without trailing slash", idp.Issuer())
	}
	tests := []struct {
		name     string
		user     string
		opts     devidp.TokenOptions
		want     accessClaims
		lifetime time.Duration
	}{
		{
			name: "alice default lifetime",
			user: "alice",
			opts: devidp.TokenOptions{Audience: []string{gatewayResource}, Scopes: []string{"mcp:tools"}},
			want: accessClaims{Subject: "user-alice", Audience: []string{gatewayResource}, ClientID: "devidp-login",
				Email: "alice@example.com", Username: "alice", Roles: []string{"sales"}, Groups: []string{"emea"}, Scope: "openid mcp:tools"},
			lifetime: time.Hour,
		},
		{
			name: "bob two audiences 5s",
			user: "bob",
			opts: devidp.TokenOptions{Audience: []string{gatewayResource, "other"}, Lifetime: 5 * time.Second},
			want: accessClaims{Subject: "user-bob", Audience: []string{gatewayResource, "other"}, ClientID: "devidp-login",
				Email: "bob@example.com", Username: "bob", Roles: []string{"support"}, Groups: []string{"amer"}, Scope: "openid"},
			lifetime: 5 * time.Second,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			before := time.Now().Unix()
			tok, err := idp.Token(context.Background(), tc.user, tc.opts)
			if err != nil {
				t.Fatalf("Token: %v", err)
			}
			after := time.Now().Unix()
			got := verify(t, idp, tok, gatewayResource)
			if got.Issuer != idp.Issuer() {
				t.Errorf("iss = %q, want %q", got.Issuer, idp.Issuer())
			}
			if got.Expiry < before+int64(tc.lifetime.Seconds()) || got.Expiry > after+int64(tc.lifetime.Seconds()) {
				t.Errorf("exp = %d, want now+%v in [%d, %d]", got.Expiry, tc.lifetime, before, after)
			}
			if got.JTI == "" || got.IssuedAt == 0 {
				t.Errorf("jti = %q, iat = %d; want both set", got.JTI, got.IssuedAt)
			}
			tc.want.Issuer, tc.want.Expiry, tc.want.IssuedAt, tc.want.JTI = got.Issuer, got.Expiry, got.IssuedAt, got.JTI
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("claims (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTokenRawShape(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{Users: []devidp.User{{Username: "carol", Email: "carol@example.com"}}})
	tok, err := idp.Token(context.Background(), "carol", devidp.TokenOptions{Audience: []string{gatewayResource}})
	if err != nil {
		t.Fatal(err)
	}
	header, payload := decodeJWT(t, tok)
	if header["alg"] != "RS256" || header["kid"] != idp.KeyID() {
		t.Errorf("header = %v, want alg RS256, kid %s", header, idp.KeyID())
	}
	// A single audience is still a JSON array; a user without roles or groups
	// has empty arrays; ID defaults to the username.
	for claim, want := range map[string]string{
		"aud":    `["` + gatewayResource + `"]`,
		"roles":  `[]`,
		"groups": `[]`,
		"sub":    `"carol"`,
	} {
		if got := string(payload[claim]); got != want {
			t.Errorf("%s = %s, want %s", claim, got, want)
		}
	}
}

func TestTokenUnknownUser(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	_, err := idp.Token(context.Background(), "mallory", devidp.TokenOptions{})
	if !errors.Is(err, devidp.ErrUnknownUser) {
		t.Fatalf("Token(mallory) error = %v, want ErrUnknownUser", err)
	}
}

type oauthResponse struct {
	Status          int
	AccessToken     string `json:"access_token"`
	IssuedTokenType string `json:"issued_token_type"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int64  `json:"expires_in"`
	Scope           string `json:"scope"`
	RefreshToken    string `json:"refresh_token"`
	Error           string `json:"error"`
	Description     string `json:"error_description"`
}

// postToken posts form to the token endpoint; basic selects client_secret_basic,
// otherwise the credentials go into the form (client_secret_post).
func postToken(t *testing.T, idp *devidp.IdP, form url.Values, id, secret string, basic bool) oauthResponse {
	t.Helper()
	if !basic {
		form.Set("client_id", id)
		form.Set("client_secret", secret)
	}
	req, err := http.NewRequest(http.MethodPost, idp.TokenURL(), strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r oauthResponse
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("token endpoint HTTP %d, body %q: %v", resp.StatusCode, body, err)
	}
	r.Status = resp.StatusCode
	return r
}

func exchangeForm(subjectToken string, audience ...string) url.Values {
	f := url.Values{
		"grant_type":           {exchangeGrant},
		"subject_token":        {subjectToken},
		"subject_token_type":   {accessTokenType},
		"requested_token_type": {accessTokenType},
		"scope":                {"crm.read crm.write"},
	}
	for _, a := range audience {
		f.Add("audience", a)
	}
	return f
}

func TestTokenExchange(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{ExchangeTokenLifetime: 10 * time.Minute})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	alice, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{Audience: []string{gatewayResource}})
	if err != nil {
		t.Fatal(err)
	}
	for _, basic := range []bool{true, false} {
		name := map[bool]string{true: "client_secret_basic", false: "client_secret_post"}[basic]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := postToken(t, idp, exchangeForm(alice, crmAudience), "mandate", "s3cret", basic)
			if r.Status != http.StatusOK {
				t.Fatalf("exchange: HTTP %d %s: %s", r.Status, r.Error, r.Description)
			}
			if r.IssuedTokenType != accessTokenType || r.TokenType != "Bearer" || r.RefreshToken != "" {
				t.Errorf("issued_token_type=%q token_type=%q refresh_token set=%v", r.IssuedTokenType, r.TokenType, r.RefreshToken != "")
			}
			if r.ExpiresIn < 590 || r.ExpiresIn > 600 {
				t.Errorf("expires_in = %d, want ~600", r.ExpiresIn)
			}
			c := verify(t, idp, r.AccessToken, crmAudience)
			if c.Subject != "user-alice" || c.ClientID != "mandate" || c.Email != "alice@example.com" ||
				!slices.Equal(c.Roles, []string{"sales"}) || c.Scope != "crm.read crm.write" {
				t.Errorf("exchanged claims = %+v", c)
			}
			if !slices.Equal(c.Audience, []string{crmAudience}) {
				t.Errorf("aud = %v, want [%s]", c.Audience, crmAudience)
			}
		})
	}
}

func TestTokenExchangeDefaultsToAccessToken(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	alice, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := exchangeForm(alice, crmAudience)
	f.Del("requested_token_type")
	r := postToken(t, idp, f, "mandate", "s3cret", true)
	if r.Status != http.StatusOK || r.IssuedTokenType != accessTokenType || r.RefreshToken != "" {
		t.Fatalf("exchange without requested_token_type: HTTP %d %s %s, issued %q", r.Status, r.Error, r.Description, r.IssuedTokenType)
	}
	verify(t, idp, r.AccessToken, crmAudience)
}

func TestTokenExchangeRefusals(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{
		ExchangePolicy: func(ctx context.Context, clientID, subject string, audience, scopes []string) error {
			u, ok := devidp.UserFromContext(ctx)
			if !ok || u.ID != subject {
				return errors.New("policy called without the subject user")
			}
			if slices.Contains(audience, "https://forbidden.internal") {
				return devidp.ErrInvalidTarget("audience not allowed")
			}
			if u.Username == "bob" {
				return errors.New("bob may not exchange")
			}
			return nil
		},
	})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	alice, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bob, err := idp.Token(context.Background(), "bob", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stranger := start(t, devidp.Options{})
	foreign, err := stranger.Token(context.Background(), "alice", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		form       url.Values
		id, secret string
		wantStatus int
		wantError  string
	}{
		{"allowed", exchangeForm(alice, crmAudience), "mandate", "s3cret", 200, ""},
		{"policy invalid_target", exchangeForm(alice, "https://forbidden.internal"), "mandate", "s3cret", 400, "invalid_target"},
		{"policy plain error", exchangeForm(bob, crmAudience), "mandate", "s3cret", 400, "access_denied"},
		{"wrong secret", exchangeForm(alice, crmAudience), "mandate", "wrong", 401, "invalid_client"},
		{"unknown client", exchangeForm(alice, crmAudience), "nobody", "s3cret", 401, "invalid_client"},
		{"token of another IdP", exchangeForm(foreign, crmAudience), "mandate", "s3cret", 400, "invalid_request"},
		{"garbage subject token", exchangeForm("not-a-token", crmAudience), "mandate", "s3cret", 400, "invalid_request"},
		{"refresh token requested", func() url.Values {
			f := exchangeForm(alice, crmAudience)
			f.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
			return f
		}(), "mandate", "s3cret", 400, "invalid_request"},
		{"resource not in audience", func() url.Values {
			f := exchangeForm(alice, crmAudience)
			f.Set("resource", "https://elsewhere.internal")
			return f
		}(), "mandate", "s3cret", 400, "invalid_target"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := postToken(t, idp, tc.form, tc.id, tc.secret, true)
			if r.Status != tc.wantStatus || r.Error != tc.wantError {
				t.Errorf("HTTP %d error %q (%s), want HTTP %d error %q", r.Status, r.Error, r.Description, tc.wantStatus, tc.wantError)
			}
		})
	}
	t.Run("wrong secret post", func(t *testing.T) {
		t.Parallel()
		r := postToken(t, idp, exchangeForm(alice, crmAudience), "mandate", "wrong", false)
		if r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
			t.Errorf("HTTP %d error %q, want 401 invalid_client", r.Status, r.Error)
		}
	})
}

func TestExchangesRecorded(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	alice, err := idp.Token(context.Background(), "alice", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if r := postToken(t, idp, exchangeForm(alice, crmAudience), "mandate", "s3cret", true); r.Status != 200 {
			t.Fatalf("exchange: HTTP %d %s", r.Status, r.Error)
		}
	}
	got := idp.Exchanges()
	if len(got) != 2 || got[0].ClientID != "mandate" || got[0].Subject != "user-alice" || !slices.Equal(got[0].Audience, []string{crmAudience}) {
		t.Errorf("Exchanges() = %+v", got)
	}
}

func TestClientCredentials(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{})
	if err := idp.RegisterClient("svc", "pw"); err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"crm.read"}}
	for _, basic := range []bool{true, false} {
		r := postToken(t, idp, url.Values{"grant_type": form["grant_type"], "scope": form["scope"]}, "svc", "pw", basic)
		if r.Status != http.StatusOK {
			t.Fatalf("client_credentials (basic=%v): HTTP %d %s %s", basic, r.Status, r.Error, r.Description)
		}
		c := verify(t, idp, r.AccessToken, "svc")
		if c.Subject != "svc" || c.Scope != "crm.read" || c.Roles != nil {
			t.Errorf("client_credentials claims = %+v", c)
		}
	}
	if r := postToken(t, idp, form, "svc", "nope", true); r.Status != http.StatusUnauthorized || r.Error != "invalid_client" {
		t.Errorf("wrong secret: HTTP %d %q, want 401 invalid_client", r.Status, r.Error)
	}
}

func TestTwoIdPsAreIndependent(t *testing.T) {
	t.Parallel()
	a := start(t, devidp.Options{})
	b := start(t, devidp.Options{Users: []devidp.User{{ID: "u-1", Username: "alice", Email: "other@example.com"}}})
	if a.Issuer() == b.Issuer() {
		t.Fatal("two IdPs share an issuer")
	}
	if err := a.RegisterClient("only-on-a", "x"); err != nil {
		t.Fatal(err)
	}
	tokA, err := a.Token(context.Background(), "alice", devidp.TokenOptions{Audience: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	tokB, err := b.Token(context.Background(), "alice", devidp.TokenOptions{Audience: []string{"r"}})
	if err != nil {
		t.Fatal(err)
	}
	if c := verify(t, a, tokA, "r"); c.Subject != "user-alice" {
		t.Errorf("a: sub = %q", c.Subject)
	}
	if c := verify(t, b, tokB, "r"); c.Subject != "u-1" || c.Email != "other@example.com" {
		t.Errorf("b: claims = %+v", c)
	}
	// b's verifier must reject a's token (different issuer and key).
	provider, err := oidc.NewProvider(context.Background(), b.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: "r"}).Verify(context.Background(), tokA); err == nil {
		t.Error("b's verifier accepted a's token")
	}
	// Clients are per IdP.
	r := postToken(t, b, url.Values{"grant_type": {"client_credentials"}}, "only-on-a", "x", true)
	if r.Status != http.StatusUnauthorized {
		t.Errorf("client of a at b: HTTP %d, want 401", r.Status)
	}
}

func TestStartOptions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    devidp.Options
		wantErr string
	}{
		{"non-loopback addr", devidp.Options{Addr: "0.0.0.0:0"}, "not loopback"},
		{"all interfaces", devidp.Options{Addr: ":0"}, "not loopback"},
		{"empty username", devidp.Options{Users: []devidp.User{{ID: "x"}}}, "users[0]: empty username"},
		{"duplicate username", devidp.Options{Users: []devidp.User{{Username: "a", ID: "1"}, {Username: "a", ID: "2"}}}, `users[1]: duplicate username "a"`},
		{"duplicate id", devidp.Options{Users: []devidp.User{{Username: "a", ID: "1"}, {Username: "b", ID: "1"}}}, `users[1]: duplicate id "1"`},
		{"negative exchange lifetime", devidp.Options{ExchangeTokenLifetime: -time.Second}, "negative ExchangeTokenLifetime"},
		{"bad addr", devidp.Options{Addr: "127.0.0.1:notaport"}, "listening on"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			idp, err := devidp.Start(context.Background(), tc.opts)
			if err == nil {
				idp.Close()
				t.Fatal("Start succeeded, want error")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Start error = %q, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestCloseStopsServingAndContextCancel(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	idp, err := devidp.Start(ctx, devidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(idp.DiscoveryURL()); err != nil {
		t.Fatalf("discovery before cancel: %v", err)
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, err := http.Get(idp.DiscoveryURL())
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("IdP still serving 5s after its context was cancelled")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := idp.Close(); err != nil {
		t.Errorf("Close after cancel: %v", err)
	}
}

func TestBrowserLogin(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{Users: []devidp.User{
		{ID: "u-dana", Username: "dana", Email: "dana@example.com", Password: "pw", Roles: []string{"admin"}},
	}})
	const redirect = "http://127.0.0.1:1/callback"
	if err := idp.AddClient(devidp.ClientConfig{ID: "inspector", RedirectURIs: []string{redirect}}); err != nil {
		t.Fatal(err)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := strings.Repeat("v", 50)
	q := url.Values{
		"client_id": {"inspector"}, "redirect_uri": {redirect}, "response_type": {"code"},
		"scope": {"openid"}, "state": {"st"}, "resource": {gatewayResource},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
	}
	resp, err := noFollow.Get(idp.AuthorizationURL() + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("authorize: HTTP %d, no redirect: %v", resp.StatusCode, err)
	}
	// The login page renders and refuses a wrong password.
	page, err := http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(body), "dana@example.com") {
		t.Fatalf("login page: HTTP %d %q", page.StatusCode, body)
	}
	id := loc.Query().Get("authRequestID")
	bad, err := noFollow.PostForm(loc.Scheme+"://"+loc.Host+loc.Path, url.Values{"authRequestID": {id}, "username": {"dana"}, "password": {"no"}})
	if err != nil {
		t.Fatal(err)
	}
	bad.Body.Close()
	if bad.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: HTTP %d, want 401", bad.StatusCode)
	}
	ok, err := noFollow.PostForm(loc.Scheme+"://"+loc.Host+loc.Path, url.Values{"authRequestID": {id}, "username": {"dana"}, "password": {"pw"}})
	if err != nil {
		t.Fatal(err)
	}
	ok.Body.Close()
	cb, err := ok.Location()
	if err != nil {
		t.Fatalf("login: HTTP %d, no redirect", ok.StatusCode)
	}
	resp, err = noFollow.Get(cb.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	final, err := resp.Location()
	if err != nil || !strings.HasPrefix(final.String(), redirect) {
		t.Fatalf("callback: HTTP %d to %v", resp.StatusCode, final)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {final.Query().Get("code")},
		"redirect_uri": {redirect}, "client_id": {"inspector"}, "code_verifier": {verifier}}
	tr, err := http.PostForm(idp.TokenURL(), form)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Body.Close()
	var out oauthResponse
	if err := json.NewDecoder(tr.Body).Decode(&out); err != nil || tr.StatusCode != 200 {
		t.Fatalf("code exchange: HTTP %d %v %+v", tr.StatusCode, err, out)
	}
	c := verify(t, idp, out.AccessToken, gatewayResource)
	if c.Subject != "u-dana" || !slices.Equal(c.Audience, []string{gatewayResource, "inspector"}) {
		t.Errorf("browser token claims = %+v", c)
	}
}
