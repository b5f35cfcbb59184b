package devidp_test

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	mandateClient   = "mandate"
	mandateSecret   = "mandate-secret"
	mandateCallback = "http://127.0.0.1:1/oauth/callback"
)

// startWithMandate starts an IdP with passwordless alice and bob, dana with a
// password, and Mandate's confidential client whose access tokens carry the
// MCP URL as audience.
func startWithMandate(t *testing.T) *devidp.IdP {
	t.Helper()
	users := append(devidp.DefaultUsers(),
		devidp.User{ID: "u-dana", Username: "dana", Email: "dana@example.com", Password: "pw"})
	idp := start(t, devidp.Options{Users: users})
	if err := idp.AddClient(devidp.ClientConfig{
		ID: mandateClient, Secret: mandateSecret,
		RedirectURIs: []string{mandateCallback},
		Audience:     []string{gatewayResource},
	}); err != nil {
		t.Fatal(err)
	}
	return idp
}

var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// authorizeURL is Mandate's authorization request at the IdP.
func authorizeURL(idp *devidp.IdP, verifier string, extra url.Values) string {
	q := url.Values{
		"client_id": {mandateClient}, "redirect_uri": {mandateCallback}, "response_type": {"code"},
		"scope": {"openid profile email offline_access"}, "state": {"st-1"},
		"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
	}
	for k, v := range extra {
		q[k] = v
	}
	return idp.AuthorizationURL() + "?" + q.Encode()
}

// follow GETs target and follows redirects until one leaves the IdP for the
// client's redirect URI (returned) or a page is shown (its status and body).
func follow(t *testing.T, target string) (final *url.URL, status int, body string) {
	t.Helper()
	for range 10 {
		if strings.HasPrefix(target, mandateCallback) {
			u, err := url.Parse(target)
			if err != nil {
				t.Fatal(err)
			}
			return u, 0, ""
		}
		resp, err := noFollow.Get(target)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		loc, err := resp.Location()
		if err != nil {
			return nil, resp.StatusCode, string(b)
		}
		target = loc.String()
	}
	t.Fatalf("more than 10 redirects")
	return nil, 0, ""
}

func redeem(t *testing.T, idp *devidp.IdP, code, verifier string) oauthResponse {
	t.Helper()
	r := postToken(t, idp, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {mandateCallback}, "code_verifier": {verifier}}, mandateClient, mandateSecret, true)
	if r.Status != 200 || r.AccessToken == "" {
		t.Fatalf("code exchange: %+v", r)
	}
	return r
}

func TestLoginHintSignsInWithoutPicker(t *testing.T) {
	t.Parallel()
	idp := startWithMandate(t)
	for _, hint := range []string{"bob", "bob@example.com"} {
		t.Run(hint, func(t *testing.T) {
			verifier := strings.Repeat("h", 50)
			final, status, body := follow(t, authorizeURL(idp, verifier, url.Values{"login_hint": {hint}}))
			if final == nil {
				t.Fatalf("login_hint=%s showed a page (HTTP %d) instead of signing in: %.300s", hint, status, body)
			}
			if final.Query().Get("state") != "st-1" || final.Query().Get("code") == "" {
				t.Fatalf("redirect to client = %s", final.Redacted())
			}
			r := redeem(t, idp, final.Query().Get("code"), verifier)
			c := verify(t, idp, r.AccessToken, gatewayResource)
			if c.Subject != "user-bob" || c.ClientID != mandateClient {
				t.Errorf("token sub=%q client_id=%q, want user-bob, mandate", c.Subject, c.ClientID)
			}
		})
	}
}

func TestLoginHintNeverSkipsAPassword(t *testing.T) {
	t.Parallel()
	idp := startWithMandate(t)
	final, status, body := follow(t, authorizeURL(idp, strings.Repeat("p", 50), url.Values{"login_hint": {"dana"}}))
	if final != nil {
		t.Fatalf("login_hint for a user with a password signed in without it: %s", final.Redacted())
	}
	if status != 200 || !regexp.MustCompile(`<option value="dana" selected>`).MatchString(body) ||
		!strings.Contains(body, `type="password"`) {
		t.Fatalf("want the picker with dana preselected and a password field; HTTP %d %.600s", status, body)
	}
}

func TestLoginHintUnknownUserShowsPicker(t *testing.T) {
	t.Parallel()
	idp := startWithMandate(t)
	final, status, body := follow(t, authorizeURL(idp, strings.Repeat("u", 50), url.Values{"login_hint": {"mallory"}}))
	if final != nil {
		t.Fatalf("unknown login_hint signed someone in: %s", final.Redacted())
	}
	if status != 200 || !strings.Contains(body, "no user mallory") || !strings.Contains(body, `<form method="post"`) {
		t.Fatalf("want the picker saying no user mallory; HTTP %d %.600s", status, body)
	}
}

// TestPickerForm signs in the way a browser does: the picker is one plain
// form (no script); posting its fields with a passwordless user chosen
// signs that user in.
func TestPickerForm(t *testing.T) {
	t.Parallel()
	idp := startWithMandate(t)
	verifier := strings.Repeat("f", 50)
	_, status, body := follow(t, authorizeURL(idp, verifier, nil))
	if status != 200 {
		t.Fatalf("picker: HTTP %d", status)
	}
	if strings.Contains(body, "<script") {
		t.Error("picker page has a script")
	}
	if strings.Contains(body, `type="password"`) != true {
		t.Error("picker lost the password field although dana has a password")
	}
	forms := regexp.MustCompile(`<form method="post" action="([^"]*)">`).FindAllStringSubmatch(body, -1)
	if len(forms) != 1 {
		t.Fatalf("picker has %d post forms, want 1: %s", len(forms), body)
	}
	fields := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
		fields.Set(m[1], m[2])
	}
	if !slices.Contains(regexp.MustCompile(`<option value="([^"]+)"`).FindAllString(body, -1), `<option value="alice"`) {
		t.Fatalf("picker does not offer alice: %s", body)
	}
	fields.Set("username", "alice")
	action, err := url.Parse(idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	action = action.ResolveReference(&url.URL{Path: forms[0][1]})
	resp, err := noFollow.PostForm(action.String(), fields)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("posting the picker: HTTP %d, no redirect", resp.StatusCode)
	}
	final, status, body := follow(t, loc.String())
	if final == nil {
		t.Fatalf("after the picker: HTTP %d %.300s", status, body)
	}
	r := redeem(t, idp, final.Query().Get("code"), verifier)
	if c := verify(t, idp, r.AccessToken, gatewayResource); c.Subject != "user-alice" {
		t.Errorf("picker signed in %q, want user-alice", c.Subject)
	}
}

// TestConfidentialClientForMandate: Mandate's client gets access tokens for
// the MCP URL (ClientConfig.Audience) and, with offline_access, rotating
// refresh tokens that keep the user and audience; EndSessions makes the
// IdP refuse the next refresh.
func TestConfidentialClientForMandate(t *testing.T) {
	t.Parallel()
	idp := startWithMandate(t)
	verifier := strings.Repeat("c", 50)
	final, status, body := follow(t, authorizeURL(idp, verifier, url.Values{"login_hint": {"alice"}}))
	if final == nil {
		t.Fatalf("HTTP %d %.300s", status, body)
	}
	r := redeem(t, idp, final.Query().Get("code"), verifier)
	c := verify(t, idp, r.AccessToken, gatewayResource)
	if !slices.Contains(c.Audience, gatewayResource) || !slices.Contains(c.Audience, mandateClient) {
		t.Errorf("aud = %v, want the MCP URL and the client id", c.Audience)
	}
	if r.RefreshToken == "" {
		t.Fatalf("no refresh token with offline_access: %+v", r)
	}
	refresh := func(rt string) oauthResponse {
		return postToken(t, idp, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, mandateClient, mandateSecret, false)
	}
	r2 := refresh(r.RefreshToken)
	if r2.Status != 200 || r2.AccessToken == "" || r2.RefreshToken == "" || r2.RefreshToken == r.RefreshToken {
		t.Fatalf("refresh: %+v", r2)
	}
	c2 := verify(t, idp, r2.AccessToken, gatewayResource)
	if c2.Subject != "user-alice" || !slices.Equal(c2.Audience, c.Audience) || c2.Email != "alice@example.com" {
		t.Errorf("refreshed token sub=%q aud=%v email=%q", c2.Subject, c2.Audience, c2.Email)
	}
	if again := refresh(r.RefreshToken); again.Status != 400 || again.Error != "invalid_grant" {
		t.Errorf("reusing a rotated refresh token: %+v, want invalid_grant", again)
	}
	// Another client may not redeem Mandate's refresh token.
	if err := idp.RegisterClient("other", "other-secret"); err != nil {
		t.Fatal(err)
	}
	if o := postToken(t, idp, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r2.RefreshToken}}, "other", "other-secret", true); o.Status == 200 {
		t.Errorf("another client redeemed Mandate's refresh token")
	}
	if n := idp.EndSessions("alice"); n != 1 {
		t.Errorf("EndSessions(alice) = %d, want 1", n)
	}
	if r3 := refresh(r2.RefreshToken); r3.Status != 400 || r3.Error != "invalid_grant" {
		t.Errorf("refresh after EndSessions: %+v, want invalid_grant", r3)
	}
	// Without offline_access there is no refresh token.
	final, _, _ = follow(t, authorizeURL(idp, verifier, url.Values{"login_hint": {"alice"}, "scope": {"openid"}}))
	if r4 := redeem(t, idp, final.Query().Get("code"), verifier); r4.RefreshToken != "" {
		t.Errorf("refresh token without offline_access")
	}
}
