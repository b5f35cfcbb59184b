package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	xaaPlatformIssuer = "https://platform.example/"
	xaaClient         = "mandate-at-platform"
	xaaSecret         = "platform-secret-1"
)

// xaaPlatform is a platform authorization server's token endpoint that
// redeems ID-JAGs as the draft requires (typ, signature by the IdP, aud =
// its issuer, client_id = the authenticated client, jti single use) and
// answers a JWT-shaped token naming the ID-JAG's subject.
func xaaPlatform(t *testing.T, idp *devidp.IdP) *tokenServer {
	var mu sync.Mutex
	used := map[string]bool{}
	var n atomic.Int64
	return newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		id, sec, ok := r.BasicAuth()
		if !ok || id != xaaClient || sec != xaaSecret {
			oauthError(w, 401, "invalid_client", "client authentication failed")
			return
		}
		if form.Get("grant_type") != grantJWTBearer {
			oauthError(w, 400, "unsupported_grant_type", form.Get("grant_type"))
			return
		}
		tok, err := jwt.ParseSigned(form.Get("assertion"), []jose.SignatureAlgorithm{jose.RS256})
		if err != nil || tok.Headers[0].ExtraHeaders[jose.HeaderType] != devidp.TypIDJAG {
			oauthError(w, 400, "invalid_grant", "not an ID-JAG")
			return
		}
		var c struct {
			jwt.Claims
			ClientID string `json:"client_id"`
			Resource string `json:"resource"`
		}
		if err := tok.Claims(idp.PublicKey(), &c); err != nil || c.Issuer != idp.Issuer() ||
			c.Validate(jwt.Expected{AnyAudience: jwt.Audience{xaaPlatformIssuer}, Time: time.Now()}) != nil {
			oauthError(w, 400, "invalid_grant", "the ID-JAG does not verify")
			return
		}
		if c.ClientID != id {
			oauthError(w, 400, "invalid_grant", "the ID-JAG was issued to another client")
			return
		}
		mu.Lock()
		replay := used[c.ID]
		used[c.ID] = true
		mu.Unlock()
		if replay {
			oauthError(w, 400, "invalid_grant", "the ID-JAG was already used")
			return
		}
		claims, _ := json.Marshal(map[string]any{"sub": "platform-" + c.Subject, "resource": c.Resource})
		writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 600,
			"access_token": fmt.Sprintf("h.%s.%d", base64.RawURLEncoding.EncodeToString(claims), n.Add(1))})
	})
}

// cross_app_access: the real devidp issues the ID-JAGs, the platform is
// xaaPlatform; the refusal is the IdP's (its policy refuses
// forbiddenAudience with invalid_target).
func xaaEnv(t *testing.T) contractEnv {
	idp := startIdP(t)
	platform := xaaPlatform(t, idp)
	// The IdP names the client that asked in the ID-JAG: Mandate's client
	// at the IdP and at the platform have the same id here.
	cfg := Config{Flow: FlowCrossAppAccess, TokenURL: idp.TokenURL(), ClientID: xaaClient, ClientSecret: "idp-secret-of-" + xaaClient,
		Audience: xaaPlatformIssuer, Resource: []string{"https://platform.example/mcp"}, Scopes: []string{"mcp"},
		PlatformTokenURL: platform.TokenURL(), PlatformClientID: xaaClient, PlatformClientSecret: xaaSecret}
	if err := idp.RegisterClient(xaaClient, cfg.ClientSecret.Reveal()); err != nil {
		t.Fatal(err)
	}
	return contractEnv{
		cfg:   cfg,
		login: cachedLogins(idp),
		owner: func(_ *testing.T, tok *Token) string {
			c := jwtClaims(tok.AccessToken.Reveal())
			if c["resource"] != "https://platform.example/mcp" {
				return ""
			}
			return subjectOf(c, "sub")
		},
		want: func(u string) string { return "platform-user-" + u },
		refuse: func(t *testing.T, b *Broker) (Source, context.Context, string) {
			bad := cfg
			bad.Audience = forbiddenAudience
			return mustSource(t, b, "payroll", bad), loginAs(t, idp, "alice"), "invalid_target"
		},
		secrets: []string{xaaSecret, cfg.ClientSecret.Reveal()},
	}
}

// Which leg refused is in the error: the platform refusing the ID-JAG
// (here: a wrong platform secret) is not the IdP refusing the user.
func TestCrossAppAccessLegs(t *testing.T) {
	t.Parallel()
	env := xaaEnv(t)
	b := NewBroker(BrokerOptions{})
	ctx := env.login(t, "alice")
	bad := env.cfg
	bad.PlatformClientSecret = "wrong-platform-secret"
	_, err := mustSource(t, b, "platform", bad).Token(ctx)
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "invalid_client" || !strings.Contains(err.Error(), "platform's authorization server did not accept") {
		t.Errorf("platform refusal: %v", err)
	}
	bad.PlatformClientSecret = xaaSecret
	bad.Audience = "https://other.example/" // the platform's aud check refuses the ID-JAG
	if _, err := mustSource(t, b, "platform-aud", bad).Token(ctx); err == nil || !strings.Contains(err.Error(), "refused the identity assertion Mandate presented") {
		t.Errorf("platform refusing the ID-JAG: %v", err)
	}
	rs, rctx, _ := env.refuse(t, b)
	if _, err := rs.Token(rctx); err == nil || !strings.Contains(err.Error(), "identity provider did not issue") {
		t.Errorf("IdP refusal: %v", err)
	}
}

func TestCrossAppAccessConfig(t *testing.T) {
	t.Parallel()
	good := Config{Flow: FlowCrossAppAccess, TokenURL: "https://idp.example/token", ClientID: "m", ClientSecret: "s",
		Audience: "https://as.example/", PlatformTokenURL: "https://as.example/token", PlatformClientID: "m", PlatformClientSecret: "p"}
	if err := good.Validate("u"); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, c := range []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"no audience", func(c *Config) { c.Audience = "" }, "u.audience: required for flow cross_app_access"},
		{"no platform token url", func(c *Config) { c.PlatformTokenURL = "" }, "u.platform_token_url: required"},
		{"plain http platform", func(c *Config) { c.PlatformTokenURL = "http://as.example/token" }, "u.platform_token_url:"},
		{"no platform client", func(c *Config) { c.PlatformClientID = "" }, "u.platform_client_id: required"},
		{"no platform secret", func(c *Config) { c.PlatformClientSecret = "" }, "u.platform_client_secret: required"},
		{"both secrets", func(c *Config) { c.PlatformClientSecretFile = "/etc/hostname" }, "not both"},
		{"subject token type", func(c *Config) { c.SubjectTokenType = "urn:ietf:params:oauth:token-type:saml2" }, "u.subject_token_type:"},
		{"platform key on another flow", func(c *Config) { c.Flow = FlowTokenExchange }, "u.platform_token_url: applies only to flow cross_app_access"},
	} {
		cfg := good
		c.mutate(&cfg)
		if err := cfg.Validate("u"); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	id := good
	id.SubjectTokenType = TokenTypeIDToken
	if err := id.Validate("u"); err != nil {
		t.Errorf("id_token subject: %v", err)
	}
}
