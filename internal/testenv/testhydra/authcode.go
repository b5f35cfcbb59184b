package testhydra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
)

// Hydra as a platform's authorization server for per-user grants
// (authorization code + PKCE, rotating refresh tokens). Its login and
// consent are driven headlessly through the admin API: Consent plays the
// user's browser (cookies kept) and the login/consent app at once.
//
// Start with Options.Env containing LoginConsentEnv so that Hydra sends
// the browser to a login URL that Consent recognises (it never fetches it).

// LoginConsentEnv points Hydra's login and consent UIs at an address that
// is never contacted; Consent reads the challenges from the redirects.
var LoginConsentEnv = []string{
	"URLS_LOGIN=http://127.0.0.1:9/login",
	"URLS_CONSENT=http://127.0.0.1:9/consent",
	"URLS_ERROR=http://127.0.0.1:9/error",
}

// DynamicRegistrationEnv enables Hydra's public RFC 7591 endpoint
// (/oauth2/register), names it in the discovery document as
// registration_endpoint (Hydra lists it only when configured), and lets
// registered clients ask for these scopes.
var DynamicRegistrationEnv = []string{
	"OIDC_DYNAMIC_CLIENT_REGISTRATION_ENABLED=true",
	"WEBFINGER_OIDC_DISCOVERY_CLIENT_REGISTRATION_URL=" + PublicURLPlaceholder + "oauth2/register",
	"OIDC_DYNAMIC_CLIENT_REGISTRATION_DEFAULT_SCOPE=offline_access,offline,openid,mcp",
}

// CreateAuthCodeClient registers a client for the authorization code grant
// with refresh tokens (grant types authorization_code and refresh_token,
// response type code). secret "" makes a public client (auth method none).
func (h *Hydra) CreateAuthCodeClient(ctx context.Context, id, secret string, redirectURIs, scopes []string) error {
	body := map[string]any{
		"client_id":      id,
		"grant_types":    []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"},
		"scope":          strings.Join(scopes, " "),
		"redirect_uris":  redirectURIs,
	}
	if secret != "" {
		body["client_secret"] = secret
		body["token_endpoint_auth_method"] = "client_secret_basic"
	} else {
		body["token_endpoint_auth_method"] = "none"
	}
	if err := h.do(ctx, http.MethodPost, h.adminURL+"admin/clients", body, http.StatusCreated, nil); err != nil {
		return fmt.Errorf("testhydra: creating client %q: %w", id, err)
	}
	return nil
}

// Consent opens authURL as subject's browser would, accepts the login as
// subject and the consent to every requested scope and audience, and
// returns the final redirect to the client's redirect URI (with code and
// state, or error). Nothing is fetched at the redirect URI.
func (h *Hydra) Consent(ctx context.Context, authURL, subject string) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	next := authURL
	for range 8 {
		loc, err := h.redirect(ctx, browser, next)
		if err != nil {
			return nil, err
		}
		q := loc.Query()
		switch {
		case q.Get("login_challenge") != "":
			var out struct {
				RedirectTo string `json:"redirect_to"`
			}
			if err := h.do(ctx, http.MethodPut, h.adminURL+"admin/oauth2/auth/requests/login/accept?login_challenge="+url.QueryEscape(q.Get("login_challenge")),
				map[string]any{"subject": subject}, http.StatusOK, &out); err != nil {
				return nil, fmt.Errorf("testhydra: accepting login: %w", err)
			}
			next = out.RedirectTo
		case q.Get("consent_challenge") != "":
			ch := url.QueryEscape(q.Get("consent_challenge"))
			var req struct {
				Scope    []string `json:"requested_scope"`
				Audience []string `json:"requested_access_token_audience"`
			}
			if err := h.do(ctx, http.MethodGet, h.adminURL+"admin/oauth2/auth/requests/consent?consent_challenge="+ch, nil, http.StatusOK, &req); err != nil {
				return nil, fmt.Errorf("testhydra: reading consent request: %w", err)
			}
			var out struct {
				RedirectTo string `json:"redirect_to"`
			}
			if err := h.do(ctx, http.MethodPut, h.adminURL+"admin/oauth2/auth/requests/consent/accept?consent_challenge="+ch,
				map[string]any{"grant_scope": req.Scope, "grant_access_token_audience": req.Audience}, http.StatusOK, &out); err != nil {
				return nil, fmt.Errorf("testhydra: accepting consent: %w", err)
			}
			next = out.RedirectTo
		case strings.HasPrefix(loc.String(), h.publicURL):
			next = loc.String()
		default:
			return loc, nil
		}
	}
	return nil, errors.New("testhydra: too many redirects during consent")
}

// redirect GETs u with the browser and returns its Location.
func (h *Hydra) redirect(ctx context.Context, browser *http.Client, u string) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := browser.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
	if resp.StatusCode < 300 || resp.StatusCode > 399 {
		return nil, fmt.Errorf("testhydra: GET %s: HTTP %d, not a redirect: %s", redactURL(u), resp.StatusCode, describeError(body))
	}
	return resp.Request.URL.Parse(resp.Header.Get("Location"))
}

// Introspection is Hydra's answer about a token (RFC 7662).
type Introspection struct {
	Active    bool     `json:"active"`
	Subject   string   `json:"sub"`
	ClientID  string   `json:"client_id"`
	Scope     string   `json:"scope"`
	Audience  []string `json:"aud"`
	TokenUse  string   `json:"token_use"`
	ExpiresAt int64    `json:"exp"`
}

// Introspect asks Hydra's admin API whether token is active.
func (h *Hydra) Introspect(ctx context.Context, token string) (Introspection, error) {
	var out Introspection
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.adminURL+"admin/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return out, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := h.http.Do(req)
	if err != nil {
		return out, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("testhydra: introspect: HTTP %d: %s", resp.StatusCode, describeError(body))
	}
	return out, jsonUnmarshal(body, &out)
}

// RevokeConsent revokes every consent of subject, and with it the tokens
// issued under them (DELETE /admin/oauth2/auth/sessions/consent).
func (h *Hydra) RevokeConsent(ctx context.Context, subject string) error {
	u := h.adminURL + "admin/oauth2/auth/sessions/consent?all=true&subject=" + url.QueryEscape(subject)
	if err := h.do(ctx, http.MethodDelete, u, nil, http.StatusNoContent, nil); err != nil {
		return fmt.Errorf("testhydra: revoking consent of %q: %w", subject, err)
	}
	return nil
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
