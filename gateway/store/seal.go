package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// Sealer encrypts values at rest with AES-256-GCM under a key ring. The
// first key seals; every key opens the values it sealed, so a key can be
// rotated by listing the new key first and keeping the old one until the
// rows it sealed were re-written or expired.
//
// A sealed value is
//
//	0x01 | len(keyID) (1 byte) | keyID | nonce (12 bytes) | ciphertext+tag
//
// and its additional authenticated data binds it to the key id and to where
// it is stored (table, column, row key): a sealed value copied into another
// row or column does not open.
//
// A Sealer is safe for concurrent use.
type Sealer struct {
	sealID string
	aeads  map[string]cipher.AEAD
	ids    []string
}

const sealVersion = 0x01

// ErrUnknownKey: a value was sealed with a key that is not in the key ring.
var ErrUnknownKey = errors.New("store: sealed with a key that is not configured")

// NewSealer builds a Sealer from the configured keys (at least one).
func NewSealer(keys []EncryptionKey) (*Sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("storage.encryption_keys: at least one key is required (AES-256, base64 of 32 random bytes: openssl rand -base64 32)")
	}
	s := &Sealer{sealID: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if k.ID == "" || len(k.ID) > maxKeyIDLen {
			return nil, fmt.Errorf("storage.encryption_keys[%d].id: must be 1 to %d characters", i, maxKeyIDLen)
		}
		if _, dup := s.aeads[k.ID]; dup {
			return nil, fmt.Errorf("storage.encryption_keys[%d].id: %q is listed twice", i, k.ID)
		}
		if !k.Key.IsZero() && k.KeyFile != "" {
			return nil, fmt.Errorf("storage.encryption_keys[%d]: key and key_file are exclusive", i)
		}
		raw, err := k.material()
		if err != nil {
			return nil, fmt.Errorf("storage.encryption_keys[%d].%s: %v", i, k.source(), err)
		}
		block, err := aes.NewCipher(raw)
		if err != nil {
			return nil, fmt.Errorf("storage.encryption_keys[%d]: %v", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("storage.encryption_keys[%d]: %v", i, err)
		}
		s.aeads[k.ID] = aead
		s.ids = append(s.ids, k.ID)
	}
	return s, nil
}

// SealingKeyID is the id of the key that seals new values.
func (s *Sealer) SealingKeyID() string { return s.sealID }

// Seal encrypts plaintext for the cell (table, column, row).
func (s *Sealer) Seal(table, column, row string, plaintext []byte) ([]byte, error) {
	aead := s.aeads[s.sealID]
	id := s.sealID
	out := make([]byte, 0, 2+len(id)+aead.NonceSize()+len(plaintext)+aead.Overhead())
	out = append(out, sealVersion, byte(len(id)))
	out = append(out, id...)
	nonce := out[len(out) : len(out)+aead.NonceSize()]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("store: sealing %s.%s: %w", table, column, err)
	}
	out = out[:len(out)+aead.NonceSize()]
	return aead.Seal(out, nonce, plaintext, aad(id, table, column, row)), nil
}

// Open decrypts a value Seal made for the same cell. Errors name the table
// and column and the key id, never the row key or any content.
func (s *Sealer) Open(table, column, row string, sealed []byte) ([]byte, error) {
	if len(sealed) < 2 || sealed[0] != sealVersion || len(sealed) < 2+int(sealed[1]) {
		return nil, fmt.Errorf("store: %s.%s: not a sealed value (unknown format)", table, column)
	}
	id := string(sealed[2 : 2+int(sealed[1])])
	aead, ok := s.aeads[id]
	if !ok {
		return nil, fmt.Errorf("%w: %s.%s was sealed with key %q; configured keys are %q (when rotating, keep the old key listed after the new one until its rows are gone)", ErrUnknownKey, table, column, id, s.ids)
	}
	rest := sealed[2+len(id):]
	if len(rest) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("store: %s.%s: sealed value is truncated", table, column)
	}
	plain, err := aead.Open(nil, rest[:aead.NonceSize()], rest[aead.NonceSize():], aad(id, table, column, row))
	if err != nil {
		return nil, fmt.Errorf("store: %s.%s: sealed value does not open under key %q (tampered, or moved from another row)", table, column, id)
	}
	return plain, nil
}

func aad(keyID, table, column, row string) []byte {
	b := make([]byte, 0, 24+len(keyID)+len(table)+len(column)+len(row))
	b = append(b, "mandate-store-v1\x00"...)
	for _, p := range []string{keyID, table, column} {
		b = append(b, p...)
		b = append(b, 0)
	}
	return append(b, row...)
}
