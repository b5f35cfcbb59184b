package devidp

import (
	"errors"
	"fmt"
	"maps"
)

// SignJWT signs arbitrary claims with the IdP's key (RS256, kid = KeyID),
// bypassing the OP. It is for negative tests of a token verifier (expired,
// wrong aud, missing claims); tokens for real use come from Token or the
// token endpoint.
func (p *IdP) SignJWT(claims map[string]any) (string, error) {
	jws, err := p.signTyped(claims, "JWT")
	if err != nil {
		return "", fmt.Errorf("devidp: signing: %w", err)
	}
	return jws, nil
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
