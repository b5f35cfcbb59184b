package devidp

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"

	jose "github.com/go-jose/go-jose/v4"
)

// SignJWT signs arbitrary claims with the IdP's key (RS256, kid = KeyID),
// bypassing the OP. It is for negative tests of a token verifier (expired,
// wrong aud, missing claims); tokens for real use come from Token or the
// token endpoint.
func (p *IdP) SignJWT(claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("devidp: encoding claims: %w", err)
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: p.store.key, KeyID: p.store.keyID}},
		(&jose.SignerOptions{}).WithType("JWT"),
	)
	if err != nil {
		return "", fmt.Errorf("devidp: signer: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("devidp: signing: %w", err)
	}
	return jws.CompactSerialize()
}

// AddUser adds a user at run time (same rules as Options.Users).
func (p *IdP) AddUser(u User) error {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	if err := p.store.addUserLocked(u); err != nil {
		return fmt.Errorf("devidp: AddUser: %w", err)
	}
	return nil
}

func (s *store) addUserLocked(u User) error {
	if u.Username == "" {
		return errors.New("empty username")
	}
	if u.ID == "" {
		u.ID = u.Username
	}
	u.Roles, u.Groups = cloneStrings(u.Roles), cloneStrings(u.Groups)
	u.Claims = maps.Clone(u.Claims)
	if _, dup := s.usersByID[u.ID]; dup {
		return fmt.Errorf("duplicate id %q", u.ID)
	}
	if _, dup := s.usersByName[u.Username]; dup {
		return fmt.Errorf("duplicate username %q", u.Username)
	}
	s.usersByID[u.ID] = &u
	s.usersByName[u.Username] = &u
	return nil
}
