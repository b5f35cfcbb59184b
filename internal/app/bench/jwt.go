package bench

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// UnverifiedSubject returns the sub claim of a compact JWS without checking
// its signature. It is for the benchmark upstream's whoami tool and the load
// generator's answer check only: never use it to authenticate anyone.
func UnverifiedSubject(token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("jwt: not three dot-separated parts")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", errors.New("jwt: payload is not base64url")
	}
	var c struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", errors.New("jwt: payload is not a JSON object")
	}
	if c.Sub == "" {
		return "", errors.New("jwt: no sub claim")
	}
	return c.Sub, nil
}

// BearerToken returns the token of an "Authorization: Bearer <token>" header
// value, or "" when it is not a bearer credential.
func BearerToken(h string) string {
	const p = "bearer "
	if len(h) > len(p) && strings.EqualFold(h[:len(p)], p) {
		return strings.TrimSpace(h[len(p):])
	}
	return ""
}
