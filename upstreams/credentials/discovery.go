package credentials

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mandate-gw/mandate/internal/secret"
)

// Discovery of a kind mcp upstream's authorization server, as the MCP
// authorization spec has clients do it (2025-11-25 "Authorization Server
// Discovery"): the protected resource metadata (RFC 9728) named by the
// upstream's 401 challenge (resource_metadata), else at the well-known
// paths; its first authorization server's metadata (RFC 8414, then OpenID
// discovery); then Mandate's client there.

// maxMetadata bounds a metadata document or registration response.
const maxMetadata = 256 << 10

// discover finds the endpoints and Mandate's client for the upstream.
func (f *authCodeFlow) discover(ctx context.Context) (*resolved, error) {
	up := f.cfg.UpstreamURL
	if up == "" {
		return nil, errors.New("the upstream has no URL to discover from")
	}
	prm, err := f.protectedResource(ctx, up)
	if err != nil {
		return nil, err
	}
	if len(prm.AuthorizationServers) == 0 {
		return nil, errors.New("its protected resource metadata names no authorization server")
	}
	meta, err := f.authServer(ctx, prm.AuthorizationServers[0])
	if err != nil {
		return nil, err
	}
	r := &resolved{authURL: meta.AuthorizationEndpoint, revokeURL: meta.RevocationEndpoint, scopes: f.cfg.Scopes, resource: f.cfg.Resource}
	if f.cfg.RevocationURL != "" {
		r.revokeURL = f.cfg.RevocationURL
	}
	if len(r.scopes) == 0 {
		r.scopes = prm.ScopesSupported
	}
	if len(r.resource) == 0 {
		r.resource = []string{prm.Resource}
	}
	ep := *f.base
	ep.url = meta.TokenEndpoint
	switch {
	case f.cfg.ClientID != "": // the configured client
	case meta.ClientIDMetadataDocumentSupported && f.b.metadataURL != "":
		ep.clientID, ep.auth, ep.secret, ep.signer = f.b.metadataURL, "", "", nil
	case meta.RegistrationEndpoint != "":
		reg, err := f.register(ctx, meta, r.scopes)
		if err != nil {
			return nil, fmt.Errorf("registering Mandate at %s: %w", meta.Issuer, err)
		}
		ep.clientID, ep.secret, ep.signer = reg.ClientID, secret.String(reg.ClientSecret), nil
		switch {
		case reg.ClientSecret == "":
			ep.auth = ""
		case reg.TokenEndpointAuthMethod == AuthClientSecretPost:
			ep.auth = AuthClientSecretPost
		default:
			ep.auth = AuthClientSecretBasic
		}
	default:
		return nil, fmt.Errorf("the authorization server %s offers no way for Mandate to be its client (no client ID metadata documents%s, no dynamic registration): set client_id", meta.Issuer,
			map[bool]string{true: "", false: " or Mandate publishes none"}[f.b.metadataURL != ""])
	}
	r.ep = &ep
	return r, nil
}

// protectedResource reads the upstream's RFC 9728 metadata.
func (f *authCodeFlow) protectedResource(ctx context.Context, up string) (*oauthex.ProtectedResourceMetadata, error) {
	u, err := url.Parse(up)
	if err != nil {
		return nil, err
	}
	var candidates []string
	// An unauthenticated request: its 401 names the metadata.
	if req, err := http.NewRequestWithContext(ctx, http.MethodGet, up, nil); err == nil {
		req.Header.Set("Accept", "application/json, text/event-stream")
		if resp, err := f.b.client.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				if cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate")); err == nil {
					for _, c := range cs {
						if m := c.Params["resource_metadata"]; c.Scheme == "bearer" && m != "" {
							candidates = append(candidates, m)
						}
					}
				}
			}
		}
	}
	origin := u.Scheme + "://" + u.Host
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, origin+"/.well-known/oauth-protected-resource"+p)
	}
	candidates = append(candidates, origin+"/.well-known/oauth-protected-resource")
	var errs []error
	for _, c := range candidates {
		var prm oauthex.ProtectedResourceMetadata
		if err := f.getJSON(ctx, c, &prm); err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.TrimSuffix(prm.Resource, "/") != strings.TrimSuffix(up, "/") {
			errs = append(errs, fmt.Errorf("protected resource metadata at %s is for %q, not this upstream", endpointLabel(c), prm.Resource))
			continue
		}
		for i, as := range prm.AuthorizationServers {
			if err := checkEndpoint(as); err != nil {
				return nil, fmt.Errorf("protected resource metadata authorization_servers[%d]: %w", i, err)
			}
		}
		return &prm, nil
	}
	return nil, fmt.Errorf("no protected resource metadata: %w", errors.Join(errs...))
}

// authServer reads the authorization server's metadata (RFC 8414, then
// OpenID discovery) and checks what Mandate relies on.
func (f *authCodeFlow) authServer(ctx context.Context, issuer string) (*oauthex.AuthServerMeta, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	origin, p := u.Scheme+"://"+u.Host, strings.TrimSuffix(u.EscapedPath(), "/")
	candidates := []string{origin + "/.well-known/oauth-authorization-server" + p, origin + "/.well-known/openid-configuration" + p}
	if p != "" {
		candidates = append(candidates, origin+p+"/.well-known/openid-configuration")
	}
	var errs []error
	for _, c := range candidates {
		var m oauthex.AuthServerMeta
		if err := f.getJSON(ctx, c, &m); err != nil {
			errs = append(errs, err)
			continue
		}
		if strings.TrimSuffix(m.Issuer, "/") != strings.TrimSuffix(issuer, "/") {
			return nil, fmt.Errorf("authorization server metadata at %s names issuer %q, not %q", endpointLabel(c), m.Issuer, issuer)
		}
		if !slices.Contains(m.CodeChallengeMethodsSupported, "S256") {
			return nil, fmt.Errorf("the authorization server %s does not support PKCE S256", issuer)
		}
		for key, e := range map[string]string{"authorization_endpoint": m.AuthorizationEndpoint, "token_endpoint": m.TokenEndpoint} {
			if err := checkEndpoint(e); err != nil {
				return nil, fmt.Errorf("authorization server %s %s: %w", issuer, key, err)
			}
		}
		for key, e := range map[string]string{"revocation_endpoint": m.RevocationEndpoint, "registration_endpoint": m.RegistrationEndpoint} {
			if e != "" {
				if err := checkEndpoint(e); err != nil {
					return nil, fmt.Errorf("authorization server %s %s: %w", issuer, key, err)
				}
			}
		}
		return &m, nil
	}
	return nil, fmt.Errorf("no authorization server metadata for %s: %w", issuer, errors.Join(errs...))
}

// getJSON GETs a metadata document (200 only, no redirects, bounded).
func (f *authCodeFlow) getJSON(ctx context.Context, u string, out any) error {
	if err := checkEndpoint(u); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.b.client.Do(req)
	if err != nil {
		return redactURLError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: HTTP %d", endpointLabel(u), resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", endpointLabel(u), err)
	}
	if len(body) > maxMetadata {
		return fmt.Errorf("GET %s: document larger than %d bytes", endpointLabel(u), maxMetadata)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: not a JSON metadata document: %v", endpointLabel(u), err)
	}
	return nil
}

// registration is what Mandate keeps of a dynamic registration.
type registration struct {
	ClientID                string `json:"client_id"`
	ClientSecret            string `json:"client_secret,omitempty"`
	TokenEndpointAuthMethod string `json:"token_endpoint_auth_method,omitempty"`
}

// register returns Mandate's dynamic registration (RFC 7591) at the
// authorization server: the one the replicas share (ClientRegistry), else
// a new one, stored for the others.
func (f *authCodeFlow) register(ctx context.Context, meta *oauthex.AuthServerMeta, scopes []string) (*registration, error) {
	if f.b.redirectURL == "" {
		return nil, errors.New("the gateway gave no redirect URL to register (connect pages not configured)")
	}
	body, err := json.Marshal(map[string]any{
		"redirect_uris":              []string{f.b.redirectURL},
		"client_name":                f.b.clientName,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": AuthClientSecretBasic,
		"scope":                      strings.Join(scopes, " "),
		"application_type":           "web",
	})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	key := hex.EncodeToString(sum[:])
	load := func(data []byte) (*registration, error) {
		var reg registration
		if err := json.Unmarshal(data, &reg); err != nil || reg.ClientID == "" {
			return nil, errors.New("the stored registration has no client_id")
		}
		return &reg, nil
	}
	if f.b.clients != nil {
		// One registration for all replicas: one registers, the others
		// wait and find it.
		unlock, err := f.b.clients.Lock(ctx, "outbound-client "+meta.Issuer+" "+key)
		if err != nil {
			return nil, fmt.Errorf("waiting for another replica's registration: %w", err)
		}
		defer unlock()
		data, err := f.b.clients.GetClient(ctx, meta.Issuer, key)
		switch {
		case err == nil:
			return load(data)
		case !errors.Is(err, ErrNoClient):
			return nil, fmt.Errorf("reading the shared registration: %w", err)
		}
	} else if v, ok := f.b.registered.Load(meta.Issuer + "\x00" + key); ok {
		return v.(*registration), nil
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.RegistrationEndpoint, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := f.b.client.Do(req)
	if err != nil {
		return nil, redactURLError(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		var eb oauthErrorBody
		_ = json.Unmarshal(raw, &eb)
		return nil, fmt.Errorf("registration endpoint answered HTTP %d %s", resp.StatusCode, sanitize(eb.Error+" "+redactJWTs(firstLine(eb.ErrorDescription)), 300))
	}
	reg, err := load(raw)
	if err != nil {
		return nil, errors.New("the registration response has no client_id")
	}
	kept, _ := json.Marshal(reg)
	if f.b.clients == nil {
		v, _ := f.b.registered.LoadOrStore(meta.Issuer+"\x00"+key, reg)
		return v.(*registration), nil
	}
	if err := f.b.clients.PutClient(ctx, meta.Issuer, key, kept); err != nil {
		return nil, fmt.Errorf("storing the registration: %w", err)
	}
	return reg, nil
}
