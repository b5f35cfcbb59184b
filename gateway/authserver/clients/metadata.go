package clients

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Grant types and token endpoint authentication methods clients may use.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"

	AuthNone              = "none"
	AuthClientSecretBasic = "client_secret_basic"
	AuthClientSecretPost  = "client_secret_post"
	AuthPrivateKeyJWT     = "private_key_jwt"
)

// Limits on client metadata (dynamic registration and metadata documents).
const (
	maxRedirectURIs  = 20
	maxClientNameLen = 200 // characters
)

// metadata is the client metadata Mandate understands (RFC 7591 §2 and the
// client ID metadata document, which uses the same names). Anything else a
// client sends is ignored (RFC 7591 §2: MUST ignore what it does not
// understand) and not stored.
type metadata struct {
	ClientID                string   `json:"client_id,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ApplicationType         string   `json:"application_type,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	// secretSent: the document carried client_secret (refused for
	// metadata documents).
	secretSent bool
}

// decodeMetadata decodes a JSON object of client metadata, naming the
// field whose type is wrong.
func decodeMetadata(data []byte) (metadata, error) {
	var md metadata
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		if !json.Valid(data) {
			return md, fmt.Errorf("not JSON")
		}
		return md, fmt.Errorf("not a JSON object")
	}
	strs := map[string]*string{
		"client_id": &md.ClientID, "client_name": &md.ClientName, "client_uri": &md.ClientURI,
		"token_endpoint_auth_method": &md.TokenEndpointAuthMethod, "application_type": &md.ApplicationType,
		"software_id": &md.SoftwareID, "software_version": &md.SoftwareVersion,
	}
	lists := map[string]*[]string{
		"redirect_uris": &md.RedirectURIs, "grant_types": &md.GrantTypes, "response_types": &md.ResponseTypes,
	}
	for k, raw := range fields {
		if string(raw) == "null" {
			continue
		}
		if p, ok := strs[k]; ok {
			if err := json.Unmarshal(raw, p); err != nil {
				return md, fmt.Errorf("%s must be a string", k)
			}
		} else if p, ok := lists[k]; ok {
			if err := json.Unmarshal(raw, p); err != nil {
				return md, fmt.Errorf("%s must be an array of strings", k)
			}
		} else if k == "client_secret" {
			md.secretSent = true
		}
	}
	return md, nil
}

// check validates md and fills in defaults (grant_types
// [authorization_code, refresh_token], response_types [code], auth method
// none). cimd: a client ID metadata document (client_name required, no
// shared secrets). The error's Code is invalid_redirect_uri or
// invalid_client_metadata.
func (md *metadata) check(cimd bool) *Error {
	bad := func(format string, args ...any) *Error {
		return &Error{Status: http.StatusBadRequest, Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...)}
	}
	switch {
	case len(md.RedirectURIs) == 0:
		return &Error{Status: http.StatusBadRequest, Code: "invalid_redirect_uri", Description: "redirect_uris is required: at least one redirect URI"}
	case len(md.RedirectURIs) > maxRedirectURIs:
		return &Error{Status: http.StatusBadRequest, Code: "invalid_redirect_uri", Description: fmt.Sprintf("at most %d redirect_uris", maxRedirectURIs)}
	}
	for i, u := range md.RedirectURIs {
		if err := CheckRedirectURI(u); err != nil {
			return &Error{Status: http.StatusBadRequest, Code: "invalid_redirect_uri", Description: fmt.Sprintf("redirect_uris[%d]: %v", i, err)}
		}
	}
	switch md.TokenEndpointAuthMethod {
	case "", AuthNone:
		md.TokenEndpointAuthMethod = AuthNone
	case AuthClientSecretBasic, AuthClientSecretPost:
		if cimd {
			return bad("token_endpoint_auth_method %s: shared secrets are not allowed with client ID metadata documents; use none (PKCE)", md.TokenEndpointAuthMethod)
		}
	case AuthPrivateKeyJWT:
		return bad("token_endpoint_auth_method private_key_jwt is not supported by this server; use none (PKCE)")
	default:
		if cimd {
			return bad("token_endpoint_auth_method %q is not supported; use none", clip(md.TokenEndpointAuthMethod))
		}
		return bad("token_endpoint_auth_method %q is not supported; use none, client_secret_basic or client_secret_post", clip(md.TokenEndpointAuthMethod))
	}
	if cimd && md.secretSent {
		return bad("client_secret must not appear in a client ID metadata document (it is public)")
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{GrantAuthorizationCode, GrantRefreshToken}
	}
	for _, g := range md.GrantTypes {
		if g != GrantAuthorizationCode && g != GrantRefreshToken {
			return bad("grant_types: %q is not supported; authorization_code and refresh_token are", clip(g))
		}
	}
	md.GrantTypes = dedupe(md.GrantTypes)
	if !slices.Contains(md.GrantTypes, GrantAuthorizationCode) {
		return bad("grant_types must include authorization_code")
	}
	if len(md.ResponseTypes) == 0 {
		md.ResponseTypes = []string{"code"}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return bad("response_types: %q is not supported; only code is", clip(rt))
		}
	}
	md.ResponseTypes = dedupe(md.ResponseTypes)
	switch {
	case cimd && md.ClientName == "":
		return bad("client_name is required")
	case utf8.RuneCountInString(md.ClientName) > maxClientNameLen:
		return bad("client_name is longer than %d characters", maxClientNameLen)
	case !utf8.ValidString(md.ClientName) || strings.IndexFunc(md.ClientName, unicode.IsControl) >= 0:
		return bad("client_name contains control characters or invalid UTF-8")
	}
	if md.ClientURI != "" {
		if err := checkClientURI(md.ClientURI); err != nil {
			return bad("client_uri: %v", err)
		}
	}
	switch md.ApplicationType {
	case "", "web", "native":
	default:
		return bad("application_type %q is not web or native", clip(md.ApplicationType))
	}
	for k, v := range map[string]string{"software_id": md.SoftwareID, "software_version": md.SoftwareVersion} {
		if len(v) > 200 || strings.IndexFunc(v, unicode.IsControl) >= 0 {
			return bad("%s is longer than 200 characters or contains control characters", k)
		}
	}
	return nil
}

// checkClientURI: a web page of the client, shown as a link on the consent
// page, so only https (http on loopback).
func checkClientURI(raw string) error {
	if len(raw) > maxRedirectURILen || strings.IndexFunc(raw, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return fmt.Errorf("not a web page URL")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute https URL", clip(raw))
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopbackHosts[u.Hostname()]:
	default:
		return fmt.Errorf("%q is not an https URL", clip(raw))
	}
	return nil
}

func dedupe(s []string) []string {
	out := s[:0:0]
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
