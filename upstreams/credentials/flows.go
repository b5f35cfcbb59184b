package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/internal/secret"
)

var (
	_ flow = (*tokenExchangeFlow)(nil)
	_ flow = (*entraOBOFlow)(nil)
	_ flow = (*jwtBearerFlow)(nil)
	_ flow = (*clientCredentialsFlow)(nil)
)

// errNoRawToken: the identity was built without the inbound token.
var errNoRawToken = errors.New("the request's identity carries no inbound token to exchange")

func newToken(tr *tokenResponse) *Token {
	return &Token{
		AccessToken:     secret.String(tr.AccessToken),
		TokenType:       tr.TokenType,
		IssuedTokenType: tr.IssuedTokenType,
		Expiry:          tr.Expiry,
		Scope:           tr.Scope,
		Extra:           tr.Extra,
	}
}

func addCommon(form url.Values, cfg *Config) {
	if cfg.Audience != "" {
		form.Set("audience", cfg.Audience)
	}
	for _, r := range cfg.Resource {
		form.Add("resource", r)
	}
	if len(cfg.Scopes) > 0 {
		form.Set("scope", strings.Join(cfg.Scopes, " "))
	}
}

// tokenExchangeFlow is RFC 8693.
type tokenExchangeFlow struct {
	ep    *endpoint
	cfg   Config
	actor *source // client_credentials token of Mandate itself, or nil
}

func (f *tokenExchangeFlow) exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	raw := id.RawToken()
	if raw == "" {
		return nil, &Error{Err: errNoRawToken}
	}
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"subject_token":        {raw},
		"subject_token_type":   {TokenTypeAccessToken},
		"requested_token_type": {orString(f.cfg.RequestedTokenType, DefaultRequestedTokenType)},
	}
	addCommon(form, &f.cfg)
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

func errOr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

// entraOBOFlow is Microsoft Entra On-Behalf-Of.
type entraOBOFlow struct {
	ep  *endpoint
	cfg Config
}

func (f *entraOBOFlow) exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	raw := id.RawToken()
	if raw == "" {
		return nil, &Error{Err: errNoRawToken}
	}
	form := url.Values{
		"grant_type":          {grantJWTBearer},
		"requested_token_use": {"on_behalf_of"},
		"assertion":           {raw},
		"scope":               {strings.Join(f.cfg.Scopes, " ")},
	}
	tr, err := f.ep.post(ctx, form)
	if err != nil {
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = subjectOf(jwtClaims(tr.AccessToken), "preferred_username", "upn", "unique_name", "oid", "sub")
	return tok, nil
}

// jwtBearerFlow is RFC 7523 §2.1: an assertion signed by Mandate names the
// platform user.
type jwtBearerFlow struct {
	ep     *endpoint
	cfg    Config
	mapper *subjectMapper
	signer *assertionSigner
	aud    string
}

func (f *jwtBearerFlow) exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	sub, err := f.mapper.render(id)
	if errors.Is(err, ErrUnverifiedEmail) {
		return nil, &Error{Err: err}
	}
	if err != nil {
		return nil, &Error{Description: "Mandate cannot determine your platform username; ask the Mandate administrators to map your account", Err: err}
	}
	scope := strings.Join(f.cfg.Scopes, " ")
	claimScope := ""
	if f.cfg.ScopesInAssertion {
		claimScope = scope
	}
	assertion, err := f.signer.sign(f.cfg.ClientID, sub, f.aud, claimScope, f.ep.now())
	if err != nil {
		return nil, &Error{Err: fmt.Errorf("signing assertion: %w", err)}
	}
	form := url.Values{
		"grant_type": {grantJWTBearer},
		"assertion":  {assertion},
	}
	if scope != "" && !f.cfg.ScopesInAssertion {
		form.Set("scope", scope)
	}
	tr, err := f.ep.post(ctx, form)
	if err != nil {
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = sub
	return tok, nil
}

// clientCredentialsFlow is RFC 6749 §4.4: Mandate's own service account.
type clientCredentialsFlow struct {
	ep  *endpoint
	cfg Config
}

func (f *clientCredentialsFlow) exchange(ctx context.Context, _ *identity.Identity) (*Token, error) {
	form := url.Values{"grant_type": {grantClientCredentials}}
	addCommon(form, &f.cfg)
	tr, err := f.ep.post(ctx, form)
	if err != nil {
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = f.ep.clientID
	tok.ServiceAccount = true
	return tok, nil
}
