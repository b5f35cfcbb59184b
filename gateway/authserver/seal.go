package authserver

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Purposes of sealed blobs: the associated data of each seal, so a blob
// made for one purpose never opens as another.
const (
	sealPending = "mandate/authorize-pending/v1" // the IdP state parameter
	sealConsent = "mandate/consent-form/v1"      // the consent form's request
	sealSignIn  = "mandate/signin-cookie/v1"     // the sign-in cookie
)

// maxSealed bounds what sealOpen accepts (a state parameter or cookie).
const maxSealed = 8 << 10

var (
	errSealInvalid = errors.New("sealed value is invalid or was altered")
	errSealExpired = errors.New("sealed value has expired")
)

// sealer seals what Mandate round-trips through browsers and the IdP with
// AES-256-GCM under Options.StateKey, so any replica opens what another
// sealed. It also derives HMAC tokens (CSRF) from the same key.
type sealer struct {
	aead   cipher.AEAD
	macKey []byte
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) == 0 {
		// One replica, no configured key (tests, a library user): a
		// random key. Pending sign-ins do not survive a restart.
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	if len(key) != 32 {
		return nil, fmt.Errorf("authorization server state key: %d bytes, want 32", len(key))
	}
	sub := func(label string) []byte {
		m := hmac.New(sha256.New, key)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	block, err := aes.NewCipher(sub("mandate/seal"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, macKey: sub("mandate/mac")}, nil
}

// sealedEnvelope carries the expiry beside the payload.
type sealedEnvelope struct {
	Exp int64           `json:"exp"`
	V   json.RawMessage `json:"v"`
}

// seal returns base64url(nonce || AES-GCM(json{exp, v})) with purpose as
// associated data.
func (s *sealer) seal(purpose string, v any, exp time.Time) (string, error) {
	inner, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(sealedEnvelope{Exp: exp.Unix(), V: inner})
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(purpose))), nil
}

// open reverses seal: errSealInvalid for anything altered, made for another
// purpose or under another key; errSealExpired once exp has passed.
func (s *sealer) open(purpose, sealed string, now time.Time, v any) error {
	if sealed == "" || len(sealed) > maxSealed {
		return errSealInvalid
	}
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(raw) < s.aead.NonceSize()+s.aead.Overhead() {
		return errSealInvalid
	}
	n := s.aead.NonceSize()
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], []byte(purpose))
	if err != nil {
		return errSealInvalid
	}
	var env sealedEnvelope
	if err := json.Unmarshal(plain, &env); err != nil {
		return errSealInvalid
	}
	if !now.Before(time.Unix(env.Exp, 0)) {
		return errSealExpired
	}
	if err := json.Unmarshal(env.V, v); err != nil {
		return errSealInvalid
	}
	return nil
}

// mac is base64url(HMAC-SHA256(macKey, label || 0 || value)).
func (s *sealer) mac(label, value string) string {
	m := hmac.New(sha256.New, s.macKey)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// randomString is n random bytes, base64url.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead on Go ≥1.24)
	return base64.RawURLEncoding.EncodeToString(b)
}

// sha256B64 is base64url(SHA-256(s)).
func sha256B64(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
