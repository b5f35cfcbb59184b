package devidp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

const (
	platformIssuer   = "https://platform.example/"
	platformResource = "https://platform.example/mcp"
)

func jagForm(subjectToken string) url.Values {
	return url.Values{
		"grant_type":           {exchangeGrant},
		"requested_token_type": {devidp.TokenTypeIDJAG},
		"subject_token":        {subjectToken},
		"subject_token_type":   {accessTokenType},
		"audience":             {platformIssuer},
		"resource":             {platformResource},
		"scope":                {"mcp"},
	}
}

// An ID-JAG (Cross App Access) by token exchange: zitadel refuses the
// token type, the IdP's own handler issues it, signed with the published
// key, with the claims the draft requires.
func TestIDJAG(t *testing.T) {
	t.Parallel()
	idp := start(t, devidp.Options{ExchangePolicy: func(_ context.Context, _, subject string, aud, _ []string) error {
		if subject == "user-bob" && slices.Contains(aud, platformIssuer) {
			return devidp.ErrAccessDenied("bob is not assigned to the platform")
		}
		return nil
	}})
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if err := idp.RegisterClient("other", "other-secret"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	alice, err := idp.Token(ctx, "alice", devidp.TokenOptions{Audience: []string{gatewayResource}})
	if err != nil {
		t.Fatal(err)
	}
	for _, basic := range []bool{true, false} {
		r := postToken(t, idp, jagForm(alice), "mandate", "s3cret", basic)
		if r.Status != http.StatusOK || r.IssuedTokenType != devidp.TokenTypeIDJAG || r.TokenType != "N_A" || r.RefreshToken != "" {
			t.Fatalf("basic=%v: HTTP %d %s %s issued %q token_type %q", basic, r.Status, r.Error, r.Description, r.IssuedTokenType, r.TokenType)
		}
		tok, err := jwt.ParseSigned(r.AccessToken, []jose.SignatureAlgorithm{jose.RS256})
		if err != nil {
			t.Fatal(err)
		}
		if typ := tok.Headers[0].ExtraHeaders[jose.HeaderType]; typ != devidp.TypIDJAG || tok.Headers[0].KeyID != idp.KeyID() {
			t.Errorf("header typ %v kid %q, want %s %s", typ, tok.Headers[0].KeyID, devidp.TypIDJAG, idp.KeyID())
		}
		var c struct {
			jwt.Claims
			Aud      any    `json:"aud"`
			ClientID string `json:"client_id"`
			Resource string `json:"resource"`
			Scope    string `json:"scope"`
			Email    string `json:"email"`
		}
		if err := tok.Claims(idp.PublicKey(), &c); err != nil {
			t.Fatalf("ID-JAG does not verify with the IdP's key: %v", err)
		}
		life := c.Expiry.Time().Sub(c.IssuedAt.Time())
		if c.Issuer != idp.Issuer() || c.Subject != "user-alice" || c.Aud != platformIssuer || c.ClientID != "mandate" ||
			c.ID == "" || life <= 0 || life > 5*time.Minute || c.Resource != platformResource || c.Scope != "mcp" || c.Email != "alice@example.com" {
			t.Errorf("claims %+v (lifetime %v)", c, life)
		}
	}
	// Two ID-JAGs never share a jti.
	a := postToken(t, idp, jagForm(alice), "mandate", "s3cret", true)
	b := postToken(t, idp, jagForm(alice), "mandate", "s3cret", true)
	_, ca := decodeJWT(t, a.AccessToken)
	_, cb := decodeJWT(t, b.AccessToken)
	if string(ca["jti"]) == string(cb["jti"]) {
		t.Errorf("two ID-JAGs share jti %s", ca["jti"])
	}
	if ex := idp.Exchanges(); len(ex) == 0 || ex[len(ex)-1].IssuedTokenType != devidp.TokenTypeIDJAG || ex[len(ex)-1].Subject != "user-alice" {
		t.Errorf("exchanges: %+v", ex)
	}

	bob, err := idp.Token(ctx, "bob", devidp.TokenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ghost, err := idp.SignJWT(map[string]any{"iss": idp.Issuer(), "sub": "user-ghost", "aud": []string{gatewayResource},
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": "j1"})
	if err != nil {
		t.Fatal(err)
	}
	forged, _ := json.Marshal(map[string]any{"sub": "user-alice"})
	noAud := jagForm(alice)
	noAud.Del("audience")
	twoAud := jagForm(alice)
	twoAud.Add("audience", "https://x.example/")
	badType := jagForm(alice)
	badType.Set("subject_token_type", "urn:ietf:params:oauth:token-type:saml2")
	idTok := jagForm(alice)
	idTok.Set("subject_token_type", "urn:ietf:params:oauth:token-type:id_token") // aud is not the client
	for _, c := range []struct {
		name, id, secret string
		form             url.Values
		status           int
		code, desc       string
	}{
		{"wrong secret", "mandate", "nope", jagForm(alice), 401, "invalid_client", "authentication"},
		{"unknown user", "mandate", "s3cret", jagForm(ghost), 400, "invalid_grant", "does not belong to a user"},
		{"not our token", "mandate", "s3cret", jagForm("e30." + strings.TrimRight(string(forged), "=") + ".x"), 400, "invalid_grant", "subject_token"},
		{"policy", "mandate", "s3cret", jagForm(bob), 400, "access_denied", "not assigned"},
		{"no audience", "mandate", "s3cret", noAud, 400, "invalid_request", "exactly one audience"},
		{"two audiences", "mandate", "s3cret", twoAud, 400, "invalid_request", "exactly one audience"},
		{"saml", "mandate", "s3cret", badType, 400, "invalid_request", "subject_token_type"},
		{"id token for another client", "mandate", "s3cret", idTok, 400, "invalid_grant", "audience"},
	} {
		r := postToken(t, idp, c.form, c.id, c.secret, true)
		if r.Status != c.status || r.Error != c.code || !strings.Contains(r.Description, c.desc) || r.AccessToken != "" {
			t.Errorf("%s: HTTP %d %s %q, want %d %s containing %q", c.name, r.Status, r.Error, r.Description, c.status, c.code, c.desc)
		}
	}
	// Other exchanges still go to zitadel.
	if r := postToken(t, idp, exchangeForm(alice, crmAudience), "mandate", "s3cret", true); r.Status != 200 || r.IssuedTokenType != accessTokenType {
		t.Errorf("plain exchange: %d %s %s", r.Status, r.Error, r.Description)
	}
}
