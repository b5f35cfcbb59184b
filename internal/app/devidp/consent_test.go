package devidp_test

import (
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// startConsenting is startWithMandate with Options.Consent: every browser
// authorization asks the signed-in user to consent.
func startConsenting(t *testing.T) *devidp.IdP {
	t.Helper()
	idp := start(t, devidp.Options{Consent: true})
	if err := idp.AddClient(devidp.ClientConfig{
		ID: mandateClient, Secret: mandateSecret,
		RedirectURIs: []string{mandateCallback},
		Audience:     []string{gatewayResource},
	}); err != nil {
		t.Fatal(err)
	}
	return idp
}

// consentForm checks body is the consent page — plain HTML, exactly one
// <form method="post"> — and returns its absolute action and its fields.
func consentForm(t *testing.T, idp *devidp.IdP, body string) (string, url.Values) {
	t.Helper()
	if strings.Contains(body, "<script") {
		t.Error("consent page has a script")
	}
	forms := regexp.MustCompile(`<form method="post" action="([^"]*)">`).FindAllStringSubmatch(body, -1)
	if len(forms) != 1 || strings.Count(body, "<form") != 1 {
		t.Fatalf("consent page has %d post forms, want exactly 1: %s", len(forms), body)
	}
	fields := url.Values{}
	for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(body, -1) {
		fields.Set(m[1], m[2])
	}
	base, err := url.Parse(idp.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	return base.ResolveReference(&url.URL{Path: forms[0][1]}).String(), fields
}

func postConsent(t *testing.T, action string, fields url.Values) (loc *url.URL, status int) {
	t.Helper()
	resp, err := noFollow.PostForm(action, fields)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ = resp.Location()
	return loc, resp.StatusCode
}

// TestConsentAllow: with Options.Consent a login_hint sign-in stops at the
// consent page, which names the user and the client; posting its fields
// with decision=allow issues the code, and the token is the user's.
func TestConsentAllow(t *testing.T) {
	t.Parallel()
	idp := startConsenting(t)
	verifier := strings.Repeat("a", 50)
	final, status, body := follow(t, authorizeURL(idp, verifier, url.Values{"login_hint": {"bob"}}))
	if final != nil {
		t.Fatalf("Consent: signed in without asking: %s", final.Redacted())
	}
	if status != 200 || !strings.Contains(body, "bob") || !strings.Contains(body, mandateClient) {
		t.Fatalf("consent page: HTTP %d %.600s", status, body)
	}
	action, fields := consentForm(t, idp, body)
	fields.Set("decision", "allow")
	loc, status := postConsent(t, action, fields)
	if loc == nil {
		t.Fatalf("posting decision=allow: HTTP %d, no redirect", status)
	}
	final, status, body = follow(t, loc.String())
	if final == nil || final.Query().Get("code") == "" || final.Query().Get("state") != "st-1" {
		t.Fatalf("after consent: %v HTTP %d %.300s", final, status, body)
	}
	r := redeem(t, idp, final.Query().Get("code"), verifier)
	if c := verify(t, idp, r.AccessToken, gatewayResource); c.Subject != "user-bob" {
		t.Errorf("sub = %q, want user-bob", c.Subject)
	}
	if r.RefreshToken == "" {
		t.Error("no refresh token after consent with offline_access")
	}
	// The consent is spent: posting it again issues nothing.
	if loc, status := postConsent(t, action, fields); status < 400 {
		t.Errorf("replayed consent: HTTP %d %v, want an error", status, loc)
	}
}

// TestConsentDeny: decision=deny sends the client access_denied; a
// missing decision, a wrong consent token or an unknown request is an
// error page, never a code.
func TestConsentDeny(t *testing.T) {
	t.Parallel()
	idp := startConsenting(t)
	_, _, body := follow(t, authorizeURL(idp, strings.Repeat("d", 50), url.Values{"login_hint": {"alice"}}))
	action, fields := consentForm(t, idp, body)

	for name, mutate := range map[string]func(url.Values){
		"no decision":   func(v url.Values) { v.Del("decision") },
		"bad decision":  func(v url.Values) { v.Set("decision", "maybe") },
		"wrong token":   func(v url.Values) { v.Set("decision", "allow"); v.Set("consent", "forged") },
		"unknown login": func(v url.Values) { v.Set("decision", "allow"); v.Set("authRequestID", "nope") },
	} {
		v := url.Values{}
		for k, vs := range fields {
			v[k] = vs
		}
		mutate(v)
		if loc, status := postConsent(t, action, v); status != 400 || loc != nil {
			t.Errorf("%s: HTTP %d %v, want 400 and no redirect", name, status, loc)
		}
	}

	fields.Set("decision", "deny")
	loc, status := postConsent(t, action, fields)
	if loc == nil {
		t.Fatalf("deny: HTTP %d, no redirect", status)
	}
	if !strings.HasPrefix(loc.String(), mandateCallback) || loc.Query().Get("error") != "access_denied" ||
		loc.Query().Get("code") != "" || loc.Query().Get("state") != "st-1" {
		t.Errorf("deny redirected to %s, want the client with error=access_denied", loc.Redacted())
	}
}

// TestConsentNotForToken: Token's programmatic logins never stop at the
// consent page.
func TestConsentNotForToken(t *testing.T) {
	t.Parallel()
	idp := startConsenting(t)
	if _, err := idp.Token(t.Context(), "alice", devidp.TokenOptions{}); err != nil {
		t.Fatalf("Token with Consent: %v", err)
	}
}
