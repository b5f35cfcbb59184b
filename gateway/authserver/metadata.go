package authserver

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Grant types, profiles and methods Mandate's metadata names.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
	grantJWTBearer         = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	profileIDJAG           = "urn:ietf:params:oauth:grant-profile:id-jag"
)

// metadata is RFC 8414 authorization server metadata (with the RFC 9207 and
// client ID metadata document members).
type metadata struct {
	Issuer                                 string   `json:"issuer"`
	AuthorizationEndpoint                  string   `json:"authorization_endpoint"`
	TokenEndpoint                          string   `json:"token_endpoint"`
	RegistrationEndpoint                   string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                     string   `json:"revocation_endpoint"`
	JWKSURI                                string   `json:"jwks_uri"`
	ScopesSupported                        []string `json:"scopes_supported"`
	ResponseTypesSupported                 []string `json:"response_types_supported"`
	ResponseModesSupported                 []string `json:"response_modes_supported"`
	GrantTypesSupported                    []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported      []string `json:"token_endpoint_auth_methods_supported"`
	RevocationEndpointAuthMethodsSupported []string `json:"revocation_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported          []string `json:"code_challenge_methods_supported"`
	ClientIDMetadataDocumentSupported      bool     `json:"client_id_metadata_document_supported"`
	AuthorizationResponseISSParameter      bool     `json:"authorization_response_iss_parameter_supported"`
	AuthorizationGrantProfilesSupported    []string `json:"authorization_grant_profiles_supported,omitempty"`
}

// metadataDoc builds the metadata from the configuration.
func (s *Server) metadataDoc() *metadata {
	base := s.opts.Issuer
	authMethods := []string{"none", "client_secret_basic", "client_secret_post"}
	m := &metadata{
		Issuer:                                 base,
		AuthorizationEndpoint:                  base + PathAuthorize,
		TokenEndpoint:                          base + PathToken,
		RevocationEndpoint:                     base + PathRevoke,
		JWKSURI:                                base + PathJWKS,
		ScopesSupported:                        s.Scopes(),
		ResponseTypesSupported:                 []string{"code"},
		ResponseModesSupported:                 []string{"query"},
		GrantTypesSupported:                    []string{grantAuthorizationCode, grantRefreshToken},
		TokenEndpointAuthMethodsSupported:      authMethods,
		RevocationEndpointAuthMethodsSupported: authMethods,
		CodeChallengeMethodsSupported:          []string{"S256"},
		ClientIDMetadataDocumentSupported:      !s.cfg.MetadataDocuments.Disabled,
		AuthorizationResponseISSParameter:      true,
	}
	if !strings.EqualFold(s.cfg.Registration.Policy, "off") {
		m.RegistrationEndpoint = base + PathRegister
	}
	if s.cfg.EnterpriseManaged.Enabled {
		m.GrantTypesSupported = append(m.GrantTypesSupported, grantJWTBearer)
		m.AuthorizationGrantProfilesSupported = []string{profileIDJAG}
	}
	return m
}

// handleMetadata serves RFC 8414 metadata at PathMetadata and
// PathOIDCMetadata (MCP clients probe both).
func (s *Server) handleMetadata(w http.ResponseWriter, r *http.Request) {
	b, err := json.Marshal(s.metadataDoc())
	if err != nil { // cannot happen: plain strings and bools
		http.Error(w, "metadata", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Access-Control-Allow-Origin", "*") // browser-based clients discover too
	_, _ = w.Write(b)
}
