package testhydra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// ProtectedOptions shape ProtectedMCP. The zero value works.
type ProtectedOptions struct {
	// MetadataPath is where the protected resource metadata (RFC 9728) is
	// served; default "/.well-known/oauth-protected-resource/mcp". Every
	// 401 names it, so any path works for a client that reads challenges.
	MetadataPath string
	// Scopes are the metadata's scopes_supported; default
	// [offline_access mcp].
	Scopes []string
	// LocalJWT checks Hydra's JWT access tokens locally (signature by
	// Hydra's JWKS, issuer, expiry) instead of asking Hydra's
	// introspection endpoint on every request: cheaper under load, but a
	// token revoked at Hydra is accepted until it expires.
	LocalJWT bool
}

// Protected is a go-sdk MCP server protected per the MCP authorization
// spec with Hydra as its authorization server.
type Protected struct {
	// URL is the MCP endpoint (also the resource of its metadata).
	URL string
	srv *httptest.Server
	// Calls counts whoami calls; Refused the requests answered 401.
	Calls, Refused atomic.Int64
}

// Close stops the server.
func (p *Protected) Close() { p.srv.Close() }

// ProtectedMCP starts a go-sdk MCP server (streamable HTTP, stateful) on
// loopback protected per the MCP authorization spec with h as its
// authorization server: every 401 names its protected resource metadata,
// tokens are checked (Hydra's introspection, or locally with LocalJWT),
// and its tool whoami answers the caller's platform subject (the token's
// sub) as its only text content. Close it when done.
func ProtectedMCP(h *Hydra, o ProtectedOptions) (*Protected, error) {
	if o.MetadataPath == "" {
		o.MetadataPath = "/.well-known/oauth-protected-resource/mcp"
	}
	if o.Scopes == nil {
		o.Scopes = []string{"offline_access", "mcp"}
	}
	p := &Protected{}
	srv := mcp.NewServer(&mcp.Implementation{Name: "protected", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "the caller's platform subject"},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			p.Calls.Add(1)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: req.Extra.TokenInfo.UserID}}}, nil, nil
		})
	mux := http.NewServeMux()
	p.srv = httptest.NewServer(mux)
	p.URL = p.srv.URL + "/mcp"
	mux.Handle(o.MetadataPath, auth.ProtectedResourceMetadataHandler(&oauthex.ProtectedResourceMetadata{
		Resource: p.URL, AuthorizationServers: []string{h.PublicURL()}, ScopesSupported: o.Scopes,
	}))
	verify := func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		in, err := h.Introspect(ctx, token)
		if err != nil || !in.Active {
			p.Refused.Add(1)
			return nil, auth.ErrInvalidToken
		}
		return &auth.TokenInfo{Scopes: strings.Fields(in.Scope), Expiration: time.Unix(in.ExpiresAt, 0), UserID: in.Subject}, nil
	}
	if o.LocalJWT {
		keys := &jwksCache{url: h.JWKSURL(), http: h.http}
		verify = func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
			info, err := keys.verify(ctx, token, h.PublicURL())
			if err != nil {
				p.Refused.Add(1)
				return nil, auth.ErrInvalidToken
			}
			return info, nil
		}
	}
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, nil)
	mux.Handle("/mcp", auth.RequireBearerToken(verify, &auth.RequireBearerTokenOptions{ResourceMetadataURL: p.srv.URL + o.MetadataPath})(handler))
	return p, nil
}

// jwksCache holds Hydra's signing keys (fetched once; again for an
// unknown kid).
type jwksCache struct {
	url  string
	http *http.Client
	mu   sync.Mutex
	set  *jose.JSONWebKeySet
}

func (c *jwksCache) keys(ctx context.Context, refetch bool) (*jose.JSONWebKeySet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set != nil && !refetch {
		return c.set, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, fmt.Errorf("decoding JWKS: %w", err)
	}
	c.set = &set
	return c.set, nil
}

func (c *jwksCache) verify(ctx context.Context, token, issuer string) (*auth.TokenInfo, error) {
	tok, err := jwt.ParseSigned(token, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil || len(tok.Headers) != 1 {
		return nil, errors.New("not a signed JWT")
	}
	kid := tok.Headers[0].KeyID
	set, err := c.keys(ctx, false)
	if err != nil {
		return nil, err
	}
	k := set.Key(kid)
	if len(k) == 0 {
		if set, err = c.keys(ctx, true); err != nil {
			return nil, err
		}
		if k = set.Key(kid); len(k) == 0 {
			return nil, errors.New("unknown key")
		}
	}
	var claims jwt.Claims
	var extra struct {
		Scp []string `json:"scp"`
	}
	if err := tok.Claims(k[0].Public().Key, &claims, &extra); err != nil {
		return nil, err
	}
	if err := claims.ValidateWithLeeway(jwt.Expected{Issuer: strings.TrimSuffix(issuer, "/"), Time: time.Now()}, 0); err != nil {
		if err2 := claims.ValidateWithLeeway(jwt.Expected{Issuer: issuer, Time: time.Now()}, 0); err2 != nil {
			return nil, err
		}
	}
	if claims.Subject == "" || claims.Expiry == nil {
		return nil, errors.New("no sub or exp")
	}
	return &auth.TokenInfo{Scopes: extra.Scp, Expiration: claims.Expiry.Time(), UserID: claims.Subject}, nil
}
