package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/mandate-gw/mandate/internal/identity"
)

// FlowCrossAppAccess is the credentials.flow value of this flow.
const FlowCrossAppAccess = "cross_app_access"

// Token type URNs of Cross App Access.
const (
	// TokenTypeIDToken is an OpenID Connect ID token as subject token.
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	// TokenTypeIDJAG is an Identity Assertion JWT Authorization Grant.
	TokenTypeIDJAG = "urn:ietf:params:oauth:token-type:id-jag"
)

// CrossAppAccessConfig is the configuration of flow cross_app_access
// (Identity Assertion JWT Authorization Grant, the MCP Enterprise-Managed
// Authorization extension): the company IdP issues an ID-JAG for the user
// by RFC 8693 token exchange (ClientConfig: the IdP's token endpoint and
// Mandate's client there), and the platform's authorization server
// redeems it with the RFC 7523 JWT bearer grant (Platform: its token
// endpoint and Mandate's client there) for the platform token. No consent
// screen, no stored grant.
type CrossAppAccessConfig struct {
	ClientConfig
	CacheConfig
	// Platform is Mandate's client at the platform's token endpoint.
	Platform ClientConfig
	// Audience is the platform authorization server's issuer (the ID-JAG's aud).
	Audience         string
	Resource         []string
	Scopes           []string
	SubjectTokenType string
}

var crossAppAccessType = &FlowType{
	Name: FlowCrossAppAccess,
	Keys: []string{"audience", "subject_token_type", "platform_token_url", "platform_client_id",
		"platform_client_secret", "platform_client_secret_file"},
	Validate: func(c *Config, bad Problems) {
		if c.Audience == "" {
			bad("audience", "required for flow %s: the platform authorization server's issuer (the ID-JAG's audience)", FlowCrossAppAccess)
		} else if strings.ContainsAny(c.Audience, " \t\r\n") {
			bad("audience", "%q contains white space", c.Audience)
		}
		switch c.SubjectTokenType {
		case "", TokenTypeAccessToken, TokenTypeIDToken:
		default:
			bad("subject_token_type", "%q is not %s or %s", c.SubjectTokenType, TokenTypeAccessToken, TokenTypeIDToken)
		}
		if c.PlatformTokenURL == "" {
			bad("platform_token_url", "required for flow %s: the platform authorization server's token endpoint", FlowCrossAppAccess)
		} else if err := checkEndpoint(c.PlatformTokenURL); err != nil {
			bad("platform_token_url", "%v", err)
		}
		if c.PlatformClientID == "" {
			bad("platform_client_id", "required for flow %s: Mandate's client at the platform", FlowCrossAppAccess)
		} else if strings.ContainsAny(c.PlatformClientID, "\r\n") {
			bad("platform_client_id", "contains a line break")
		}
		switch {
		case c.PlatformClientSecret.IsZero() && c.PlatformClientSecretFile == "":
			bad("platform_client_secret", "required for flow %s (or platform_client_secret_file): the platform must authenticate Mandate, the client the ID-JAG names", FlowCrossAppAccess)
		case !c.PlatformClientSecret.IsZero() && c.PlatformClientSecretFile != "":
			bad("platform_client_secret_file", "set platform_client_secret or platform_client_secret_file, not both")
		case strings.HasPrefix(c.PlatformClientSecret.Reveal(), "${"):
			bad("platform_client_secret", "environment variable reference was not expanded (is the variable set?)")
		case c.PlatformClientSecretFile != "":
			statFile(bad, "platform_client_secret_file", c.PlatformClientSecretFile)
		}
	},
	Parse: func(ft *FlowType, c *Config) FlowConfig {
		cc, cache := parseClient(ft, c)
		res := c.Resource
		if len(res) == 0 && c.Platform == PlatformMCP && c.UpstreamURL != "" {
			res = []string{canonicalResource(c.UpstreamURL)}
		}
		return &CrossAppAccessConfig{
			ClientConfig: cc, CacheConfig: cache,
			Platform: ClientConfig{TokenURL: c.PlatformTokenURL, ClientID: c.PlatformClientID, ClientSecret: c.PlatformClientSecret,
				ClientSecretFile: c.PlatformClientSecretFile, ClientAuth: AuthClientSecretBasic},
			Audience: c.Audience, Resource: res, Scopes: c.Scopes,
			SubjectTokenType: orString(c.SubjectTokenType, TokenTypeAccessToken),
		}
	},
}

func (*CrossAppAccessConfig) FlowName() string { return FlowCrossAppAccess }

func (c *CrossAppAccessConfig) newFlow(env *flowEnv) (Flow, error) {
	idp, _, err := env.endpoint(&c.ClientConfig)
	if err != nil {
		return nil, err
	}
	platform, _, err := env.endpoint(&c.Platform)
	if err != nil {
		var ke *keyError
		if errors.As(err, &ke) {
			return nil, &keyError{"platform_" + ke.key, ke.err}
		}
		return nil, err
	}
	return &crossAppAccessFlow{idp: idp, platform: platform, cfg: c}, nil
}

// crossAppAccessFlow: ID-JAG from the IdP, then the JWT bearer grant at
// the platform. The ID-JAG is single use (jti), so only the platform token
// is cached.
type crossAppAccessFlow struct {
	idp, platform *endpoint
	cfg           *CrossAppAccessConfig
}

var _ Flow = (*crossAppAccessFlow)(nil)

func (*crossAppAccessFlow) Name() string         { return FlowCrossAppAccess }
func (*crossAppAccessFlow) ServiceAccount() bool { return false }

// Which leg failed, for the error text.
var (
	errIDJAGRefused     = errors.New("the identity provider did not issue an identity assertion grant (ID-JAG) for the platform")
	errPlatformRefused  = errors.New("the platform's authorization server did not accept the identity assertion grant (ID-JAG)")
	errNotIDJAG         = errors.New("the identity provider answered with a token that is not an ID-JAG (issued_token_type)")
	errPlatformNoAccess = errors.New("the platform's authorization server answered without an access token")
)

func (f *crossAppAccessFlow) Exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
	raw := id.RawToken()
	if raw == "" {
		return nil, &Error{Err: errNoRawToken}
	}
	form := url.Values{
		"grant_type":           {grantTokenExchange},
		"requested_token_type": {TokenTypeIDJAG},
		"subject_token":        {raw},
		"subject_token_type":   {f.cfg.SubjectTokenType},
	}
	addTarget(form, f.cfg.Audience, f.cfg.Resource, f.cfg.Scopes)
	tr, err := f.idp.post(ctx, form)
	if err != nil {
		return nil, legError(err, errIDJAGRefused, hintIDJAGRefused)
	}
	if tr.IssuedTokenType != TokenTypeIDJAG {
		return nil, &Error{Err: errNotIDJAG}
	}
	jag := tr.AccessToken
	ptr, err := f.platform.post(ctx, url.Values{"grant_type": {grantJWTBearer}, "assertion": {jag}})
	if err != nil {
		return nil, legError(err, errPlatformRefused, hintPlatformRefused)
	}
	if ptr.AccessToken == "" {
		return nil, &Error{Err: errPlatformNoAccess}
	}
	tok := newToken(ptr)
	tok.PlatformSubject = subjectOf(jwtClaims(ptr.AccessToken), "sub")
	if tok.PlatformSubject == "" {
		tok.PlatformSubject = subjectOf(jwtClaims(jag), "sub")
	}
	return tok, nil
}

// What a refusal of the user (invalid_grant, access_denied) means at each leg.
const (
	hintIDJAGRefused    = "the identity provider refused to vouch for you to this platform (no ID-JAG): your account may be unknown to it, not assigned to the platform, or your sign-in may have ended; sign in to Mandate again, and if that does not help ask your identity administrators"
	hintPlatformRefused = "the platform's authorization server refused the identity assertion Mandate presented for you; ask the platform team whether it accepts the company identity provider's ID-JAGs for Mandate's client"
)

// legError adds which leg failed to a token endpoint's *Error, and hint
// when the user was refused.
func legError(err, leg error, hint string) error {
	var oe *Error
	if !errors.As(err, &oe) {
		return &Error{Err: fmt.Errorf("%w: %w", leg, err)}
	}
	cp := *oe
	if cp.Code == "invalid_grant" || cp.Code == "access_denied" {
		cp.Hint = hint
	}
	if cp.Err == nil {
		cp.Err = leg
	} else {
		cp.Err = fmt.Errorf("%w: %w", leg, cp.Err)
	}
	return &cp
}
