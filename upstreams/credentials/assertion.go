package credentials

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // x5t is a SHA-1 thumbprint by definition (RFC 7515 §4.1.7)
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/mandate-gw/mandate/internal/secret"
)

// assertionSigner signs RFC 7523 JWTs (authorization grants and client
// assertions) with one key. Safe for concurrent use.
type assertionSigner struct {
	signer   jose.Signer
	lifetime time.Duration
	public   jose.JSONWebKey
}

// loadPrivateKey reads a PEM private key: PKCS#1 RSA, SEC1 EC or PKCS#8
// (RSA or EC).
func loadPrivateKey(name string) (crypto.Signer, error) {
	data, err := secret.ReadFile(name)
	if err != nil {
		return nil, err
	}
	return parsePrivateKey(data)
}

func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New("no PEM private key found (want RSA PRIVATE KEY, EC PRIVATE KEY or PRIVATE KEY)")
		}
		switch block.Type {
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			return x509.ParseECPrivateKey(block.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, err
			}
			s, ok := k.(crypto.Signer)
			if !ok {
				return nil, fmt.Errorf("unsupported PKCS#8 key type %T", k)
			}
			return s, nil
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("encrypted private keys are not supported; store the key unencrypted in a secret file")
		}
		// skip other blocks (certificates, parameters)
	}
}

// newAssertionSigner builds a signer for key with alg (RS256 or ES256).
// certPEM, when not nil, adds the x5t thumbprint header.
func newAssertionSigner(key crypto.Signer, alg, kid string, certPEM []byte, lifetime time.Duration) (*assertionSigner, error) {
	var ja jose.SignatureAlgorithm
	switch alg {
	case "", "RS256":
		if _, ok := key.(*rsa.PrivateKey); !ok {
			return nil, fmt.Errorf("algorithm RS256 needs an RSA key, the key is %T", key)
		}
		ja = jose.RS256
	case "ES256":
		k, ok := key.(*ecdsa.PrivateKey)
		if !ok || k.Curve != elliptic.P256() {
			return nil, errors.New("algorithm ES256 needs an EC P-256 key")
		}
		ja = jose.ES256
	default:
		return nil, fmt.Errorf("unsupported algorithm %q", alg)
	}
	if rk, ok := key.(*rsa.PrivateKey); ok && rk.N.BitLen() < 2048 {
		return nil, fmt.Errorf("RSA key of %d bits is too small (need ≥ 2048)", rk.N.BitLen())
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if kid != "" {
		opts = opts.WithHeader("kid", kid)
	}
	if certPEM != nil {
		block, _ := pem.Decode(certPEM)
		if block == nil || block.Type != "CERTIFICATE" {
			return nil, errors.New("certificate_file holds no PEM CERTIFICATE")
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate_file: %w", err)
		}
		if !publicKeysEqual(cert.PublicKey, key.Public()) {
			return nil, errors.New("certificate_file does not match private_key_file")
		}
		sum := sha1.Sum(block.Bytes)
		opts = opts.WithHeader("x5t", base64.RawURLEncoding.EncodeToString(sum[:]))
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: ja, Key: key}, opts)
	if err != nil {
		return nil, err
	}
	return &assertionSigner{
		signer:   s,
		lifetime: lifetime,
		public:   jose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: string(ja), Use: "sig"},
	}, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type eq interface{ Equal(crypto.PublicKey) bool }
	x, ok := a.(eq)
	return ok && x.Equal(b)
}

// assertionClaims are the RFC 7523 §3 claims.
type assertionClaims struct {
	Issuer    string           `json:"iss"`
	Subject   string           `json:"sub"`
	Audience  string           `json:"aud"`
	Expiry    *jwt.NumericDate `json:"exp"`
	IssuedAt  *jwt.NumericDate `json:"iat"`
	NotBefore *jwt.NumericDate `json:"nbf,omitempty"`
	ID        string           `json:"jti"`
	Scope     string           `json:"scope,omitempty"`
}

// sign returns a fresh compact JWT: iss, sub, aud, iat=now, exp=now+lifetime
// and a random jti, so servers that block replay accept every exchange;
// scope, when not empty, as the scope claim.
func (s *assertionSigner) sign(iss, sub, aud, scope string, now time.Time) (string, error) {
	var jti [16]byte
	if _, err := rand.Read(jti[:]); err != nil {
		return "", err
	}
	c := assertionClaims{
		Issuer:   iss,
		Subject:  sub,
		Audience: aud,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(s.lifetime)),
		ID:       base64.RawURLEncoding.EncodeToString(jti[:]),
		Scope:    scope,
	}
	return jwt.Signed(s.signer).Claims(c).Serialize()
}
