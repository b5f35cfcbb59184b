package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	callback = "http://127.0.0.1:1/oauth/callback"
	resource = "http://127.0.0.1:1/mcp"
)

func startIdP(t *testing.T) *devidp.IdP {
	t.Helper()
	idp, err := devidp.Start(context.Background(), devidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { idp.Close() })
	return idp
}

// codeFlow is Mandate's sign-in at the IdP as its authorization server
// does it: the authorization request with login_hint (no picker), then the
// code at the token endpoint with the client's secret. It returns the
// token endpoint's status and body.
func codeFlow(t *testing.T, idp *devidp.IdP, clientID, secret, user string) (int, map[string]any) {
	t.Helper()
	verifier := strings.Repeat("v", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"openid profile email offline_access"}, "state": {"st"}, "login_hint": {user},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := idp.AuthorizationURL() + "?" + q.Encode()
	var code string
	for range 10 {
		if strings.HasPrefix(next, callback) {
			u, _ := url.Parse(next)
			code = u.Query().Get("code")
			break
		}
		resp, err := noFollow.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			t.Logf("authorization stopped at %s: %d %s", next, resp.StatusCode, body)
			return resp.StatusCode, nil
		}
		next = loc.String()
	}
	if code == "" {
		t.Fatalf("no code at %s", next)
	}
	req, _ := http.NewRequest(http.MethodPost, idp.TokenURL(), strings.NewReader(url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {verifier}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func audience(t *testing.T, jwt string) []string {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.20s…", jwt)
	}
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var c struct {
		Aud any `json:"aud"`
	}
	_ = json.Unmarshal(b, &c)
	switch a := c.Aud.(type) {
	case string:
		return []string{a}
	case []any:
		var out []string
		for _, v := range a {
			s, _ := v.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// exchange is an RFC 8693 token exchange by clientID (the grant Mandate's
// upstream credentials use).
func exchange(t *testing.T, idp *devidp.IdP, clientID, secret, subjectToken string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, idp.TokenURL(), strings.NewReader(url.Values{
		"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subjectToken},
		"subject_token_type":   {"urn:ietf:params:oauth:token-type:access_token"},
		"requested_token_type": {"urn:ietf:params:oauth:token-type:access_token"}, "audience": {"https://echo.internal"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// With -signin-redirect-uri, Mandate's client signs a hinted user in
// through the code flow and gets IdP tokens for the MCP URL, and the same
// client still exchanges tokens.
func TestRegisterSigninClient(t *testing.T) {
	idp := startIdP(t)
	if err := registerClients(idp, "mandate", "mandate-secret", signinClient{redirectURI: callback, audience: resource}); err != nil {
		t.Fatal(err)
	}
	status, tok := codeFlow(t, idp, "mandate", "mandate-secret", "alice")
	access, _ := tok["access_token"].(string)
	if status != http.StatusOK || access == "" {
		t.Fatalf("code flow: %d %v", status, tok)
	}
	if aud := audience(t, access); !slices.Contains(aud, resource) {
		t.Fatalf("IdP token aud = %v, want %s in it", aud, resource)
	}
	if tok["refresh_token"] == nil {
		t.Fatalf("no refresh token (offline_access): %v", tok)
	}
	if s := exchange(t, idp, "mandate", "mandate-secret", access); s != http.StatusOK {
		t.Fatalf("token exchange by the same client: %d", s)
	}
}

// A separate sign-in client: both work with their own secrets.
func TestRegisterSeparateSigninClient(t *testing.T) {
	idp := startIdP(t)
	sc := signinClient{id: "mandate-as", secret: "as-secret", redirectURI: callback, audience: resource}
	if err := registerClients(idp, "mandate", "mandate-secret", sc); err != nil {
		t.Fatal(err)
	}
	status, tok := codeFlow(t, idp, "mandate-as", "as-secret", "bob")
	access, _ := tok["access_token"].(string)
	if status != http.StatusOK || access == "" {
		t.Fatalf("code flow: %d %v", status, tok)
	}
	if s := exchange(t, idp, "mandate", "mandate-secret", access); s != http.StatusOK {
		t.Fatalf("token exchange by the exchange client: %d", s)
	}
}

// Without -signin-redirect-uri nothing can sign in through the code flow
// (the default run is unchanged), and inconsistent flags are refused.
func TestRegisterClientsRefusals(t *testing.T) {
	idp := startIdP(t)
	if err := registerClients(idp, "mandate", "mandate-secret", signinClient{}); err != nil {
		t.Fatal(err)
	}
	if status, tok := codeFlow(t, idp, "mandate", "mandate-secret", "alice"); status == http.StatusOK {
		t.Fatalf("code flow without a registered redirect URI succeeded: %v", tok)
	}
	for name, sc := range map[string]signinClient{
		"same id, other secret": {secret: "other", redirectURI: callback, audience: resource},
		"id without redirect":   {id: "x"},
	} {
		if err := registerClients(idp, "mandate", "mandate-secret", sc); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
