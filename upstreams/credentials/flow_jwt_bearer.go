package credentials

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/mandate-gw/mandate/internal/identity"
)

// FlowJWTBearer is the credentials.flow value of this flow.
const FlowJWTBearer = "jwt_bearer"

// JWTBearerConfig is the configuration of flow jwt_bearer (RFC 7523 §2.1):
// Mandate signs an assertion naming the platform user.
type JWTBearerConfig struct {
	ClientConfig
	CacheConfig
	// Platform is Config.Platform (its defaults are applied here; it picks
	// the error explanations).
	Platform string
	// AssertionAudience is the assertions' aud (default: the platform's,
	// else the token URL).
	AssertionAudience string
	Scopes            []string
	ScopesInAssertion bool
	// Subject is the subject template (default {{ .Subject }}).
	Subject        string
	SubjectMapFile string
	// SubjectMap is the subject map file's content as parsed, filled when
	// the flow is built (the file is read once, so the cache key digests
	// the very bytes in use).
	SubjectMap []byte
}

var jwtBearerType = &FlowType{
	Name:               FlowJWTBearer,
	Keys:               []string{"assertion_audience", "scopes_in_assertion", "subject", "subject_map_file"},
	SignsAssertions:    true,
	ClientAuthOptional: true,
	Validate: func(c *Config, bad Problems) {
		if c.PrivateKeyFile == "" {
			bad("private_key_file", "required for flow jwt_bearer (the key that signs assertions)")
		}
		if p := platformOf(c); p != nil && p.maxLifetime > 0 && c.AssertionLifetime > p.maxLifetime {
			bad("assertion_lifetime", "%s is longer than %s accepts (at most %s)", c.AssertionLifetime, c.Platform, p.maxLifetime)
		}
	},
	Parse: func(ft *FlowType, c *Config) FlowConfig {
		cc, cache := parseClient(ft, c)
		aud := orString(c.AssertionAudience, cc.TokenURL)
		if p := platformOf(c); p != nil {
			if c.AssertionAudience == "" {
				aud = p.audience(c)
			}
			if c.ClientAuth == "" && cc.ClientAuth != "" && p.clientAuth != "" {
				cc.ClientAuth = p.clientAuth
			}
		}
		return &JWTBearerConfig{
			ClientConfig: cc, CacheConfig: cache, Platform: c.Platform,
			AssertionAudience: aud, Scopes: c.Scopes, ScopesInAssertion: c.ScopesInAssertion,
			Subject: orString(c.Subject, DefaultSubject), SubjectMapFile: c.SubjectMapFile,
		}
	},
}

func (*JWTBearerConfig) FlowName() string { return FlowJWTBearer }

func (c *JWTBearerConfig) newFlow(env *flowEnv) (Flow, error) {
	ep, signer, err := env.endpoint(&c.ClientConfig)
	if err != nil {
		return nil, err
	}
	if c.SubjectMapFile != "" {
		if c.SubjectMap, err = os.ReadFile(c.SubjectMapFile); err != nil {
			return nil, &keyError{"subject_map_file", err}
		}
	}
	m, err := newSubjectMapper(c.Subject, c.SubjectMapFile, c.SubjectMap)
	if err != nil {
		if c.SubjectMapFile != "" {
			return nil, &keyError{"subject_map_file", err}
		}
		return nil, &keyError{"subject", err}
	}
	return &jwtBearerFlow{ep: ep, cfg: c, mapper: m, signer: signer}, nil
}

// jwtBearerFlow is RFC 7523 §2.1: an assertion signed by Mandate names the
// platform user.
type jwtBearerFlow struct {
	ep     *endpoint
	cfg    *JWTBearerConfig
	mapper *subjectMapper
	signer *assertionSigner
}

var _ Flow = (*jwtBearerFlow)(nil)

func (*jwtBearerFlow) Name() string         { return FlowJWTBearer }
func (*jwtBearerFlow) ServiceAccount() bool { return false }

func (f *jwtBearerFlow) Exchange(ctx context.Context, id *identity.Identity) (*Token, error) {
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
	assertion, err := f.signer.sign(f.cfg.ClientID, sub, f.cfg.AssertionAudience, claimScope, f.ep.now())
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
		var oe *Error
		if p := platforms[f.cfg.Platform]; p != nil && p.explain != nil && errors.As(err, &oe) {
			oe.Hint = p.explain(oe, sub, mappingName(f.cfg.Subject, f.cfg.SubjectMapFile))
		}
		return nil, err
	}
	tok := newToken(tr)
	tok.PlatformSubject = sub
	return tok, nil
}
