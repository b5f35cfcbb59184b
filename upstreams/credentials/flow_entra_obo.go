package credentials

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/mandate-gw/mandate/internal/identity"
)

// FlowEntraOBO is the credentials.flow value of this flow.
const FlowEntraOBO = "entra_obo"

// EntraOBOConfig is the configuration of flow entra_obo (Microsoft Entra
// On-Behalf-Of): the user's inbound token is the assertion.
type EntraOBOConfig struct {
	ClientConfig
	CacheConfig
	Tenant string
	Scopes []string
}

var entraOBOType = &FlowType{
	Name:              FlowEntraOBO,
	Keys:              []string{"tenant"},
	DefaultClientAuth: AuthClientSecretPost, // as Microsoft documents
	DefaultTokenURL: func(c *Config) string {
		if c.Tenant == "" {
			return ""
		}
		return fmt.Sprintf(EntraTokenURLFormat, url.PathEscape(c.Tenant))
	},
	Validate: func(c *Config, bad Problems) {
		switch {
		case c.Tenant != "" && c.TokenURL != "":
			bad("tenant", "set tenant or token_url, not both")
		case c.Tenant != "":
			if !tenantRE.MatchString(c.Tenant) {
				bad("tenant", "%q is not a tenant id or domain", c.Tenant)
			}
		case c.TokenURL == "":
			bad("token_url", "required (or set tenant)")
		}
		if len(c.Scopes) == 0 {
			bad("scopes", "required for flow entra_obo (one resource's scopes, e.g. api://crm/.default)")
		}
	},
	Parse: func(ft *FlowType, c *Config) FlowConfig {
		cc, cache := parseClient(ft, c)
		return &EntraOBOConfig{ClientConfig: cc, CacheConfig: cache, Tenant: c.Tenant, Scopes: c.Scopes}
	},
}

func (*EntraOBOConfig) FlowName() string { return FlowEntraOBO }

func (c *EntraOBOConfig) newFlow(env *flowEnv) (Flow, error) {
	ep, _, err := env.endpoint(&c.ClientConfig)
	if err != nil {
		return nil, err
	}
	return &entraOBOFlow{ep: ep, scope: strings.Join(c.Scopes, " ")}, nil
}

// entraOBOFlow is Microsoft Entra On-Behalf-Of.
type entraOBOFlow struct {
	ep    *endpoint
	scope string
}

var _ Flow = (*entraOBOFlow)(nil)

func (*entraOBOFlow) Name() string         { return FlowEntraOBO }
func (*entraOBOFlow) ServiceAccount() bool { return false }

func (f *entraOBOFlow) Exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	raw := id.RawToken()
	if raw == "" {
		return nil, &Error{Err: errNoRawToken}
	}
	form := url.Values{
		"grant_type":          {grantJWTBearer},
		"requested_token_use": {"on_behalf_of"},
		"assertion":           {raw},
		"scope":               {f.scope},
	}
	tr, err := f.ep.post(ctx, form)
	if err != nil {
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = subjectOf(jwtClaims(tr.AccessToken), "preferred_username", "upn", "unique_name", "oid", "sub")
	return tok, nil
}
