package credentials

import (
	"context"
	"net/url"

	"github.com/mandate-gw/mandate/internal/identity"
)

// FlowClientCredentials is the credentials.flow value of this flow.
const FlowClientCredentials = "client_credentials"

// ClientCredentialsConfig is the configuration of flow client_credentials
// (RFC 6749 §4.4): Mandate's own service account, the same token for every
// user.
type ClientCredentialsConfig struct {
	ClientConfig
	CacheConfig
	Audience string
	Resource []string
	Scopes   []string
}

var clientCredentialsType = &FlowType{
	Name:           FlowClientCredentials,
	Keys:           []string{"audience"},
	ServiceAccount: true,
	Parse: func(ft *FlowType, c *Config) FlowConfig {
		cc, cache := parseClient(ft, c)
		return &ClientCredentialsConfig{ClientConfig: cc, CacheConfig: cache, Audience: c.Audience, Resource: c.Resource, Scopes: c.Scopes}
	},
}

func (*ClientCredentialsConfig) FlowName() string { return FlowClientCredentials }

func (c *ClientCredentialsConfig) newFlow(env *flowEnv) (Flow, error) {
	ep, _, err := env.endpoint(&c.ClientConfig)
	if err != nil {
		return nil, err
	}
	return &clientCredentialsFlow{ep: ep, cfg: c}, nil
}

// clientCredentialsFlow is RFC 6749 §4.4: Mandate's own service account.
type clientCredentialsFlow struct {
	ep  *endpoint
	cfg *ClientCredentialsConfig
}

var _ Flow = (*clientCredentialsFlow)(nil)

func (*clientCredentialsFlow) Name() string         { return FlowClientCredentials }
func (*clientCredentialsFlow) ServiceAccount() bool { return true }

func (f *clientCredentialsFlow) Exchange(ctx context.Context, _ *identity.Identity) (*Token, error) {
	form := url.Values{"grant_type": {grantClientCredentials}}
	addTarget(form, f.cfg.Audience, f.cfg.Resource, f.cfg.Scopes)
	tr, err := f.ep.post(ctx, form)
	if err != nil {
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = f.ep.clientID
	tok.ServiceAccount = true
	return tok, nil
}
