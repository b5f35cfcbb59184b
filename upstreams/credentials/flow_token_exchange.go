package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"github.com/mandate-gw/mandate/internal/identity"
)

// FlowTokenExchange is the credentials.flow value of this flow.
const FlowTokenExchange = "token_exchange"

// TokenExchangeConfig is the configuration of flow token_exchange (RFC
// 8693): the user's inbound token is the subject token.
type TokenExchangeConfig struct {
	ClientConfig
	CacheConfig
	Audience           string
	Resource           []string
	Scopes             []string
	RequestedTokenType string
	ActorToken         bool
}

var tokenExchangeType = &FlowType{
	Name: FlowTokenExchange,
	Keys: []string{"requested_token_type", "actor_token", "audience"},
	Parse: func(ft *FlowType, c *Config) FlowConfig {
		cc, cache := parseClient(ft, c)
		return &TokenExchangeConfig{
			ClientConfig: cc, CacheConfig: cache,
			Audience: c.Audience, Resource: c.Resource, Scopes: c.Scopes,
			RequestedTokenType: orString(c.RequestedTokenType, DefaultRequestedTokenType), ActorToken: c.ActorToken,
		}
	},
}

func (*TokenExchangeConfig) FlowName() string { return FlowTokenExchange }

func (c *TokenExchangeConfig) newFlow(env *flowEnv) (Flow, error) {
	ep, _, err := env.endpoint(&c.ClientConfig)
	if err != nil {
		return nil, err
	}
	f := &tokenExchangeFlow{ep: ep, cfg: c}
	if c.ActorToken {
		actor := &ClientCredentialsConfig{ClientConfig: ClientConfig{TokenURL: c.TokenURL, ClientID: c.ClientID}}
		f.actor = env.serviceSource("actor", &clientCredentialsFlow{ep: ep, cfg: actor}, actor)
	}
	return f, nil
}

// tokenExchangeFlow is RFC 8693.
type tokenExchangeFlow struct {
	ep    *endpoint
	cfg   *TokenExchangeConfig
	actor *source // client_credentials token of Mandate itself, or nil
}

var _ Flow = (*tokenExchangeFlow)(nil)

func (*tokenExchangeFlow) Name() string         { return FlowTokenExchange }
func (*tokenExchangeFlow) ServiceAccount() bool { return false }

func (f *tokenExchangeFlow) Exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	raw := id.RawToken()
	if raw == "" {
		return nil, &Error{Err: errNoRawToken}
	}
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {raw},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {f.cfg.RequestedTokenType},
	}
	addTarget(form, f.cfg.Audience, f.cfg.Resource, f.cfg.Scopes)
	if f.actor != nil {
		r, err := f.actor.Token(ctx)
		if err != nil {
			var oe *Error
			if errors.As(err, &oe) {
				cp := *oe
				cp.Err = fmt.Errorf("obtaining Mandate's actor token: %w", errOr(oe.Err, errors.New(oe.Code)))
				return nil, &cp
			}
			return nil, &Error{Err: fmt.Errorf("obtaining Mandate's actor token: %w", err)}
		}
		form.Set("actor_token", r.Token.AccessToken.Reveal())
		form.Set("actor_token_type", TokenTypeAccessToken)
	}
	tr, err := f.ep.post(ctx, form)
	if err != nil {
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = subjectOf(jwtClaims(tr.AccessToken), "sub")
	return tok, nil
}
