package authserver

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mandate-gw/mandate/gateway/store"
)

// Signing keys.
const (
	// keyReloadInterval is how often run() re-reads the keys from the
	// store (keys another replica created or retired).
	keyReloadInterval = time.Minute
	// minUnknownKidReload rate-limits the reload a token signed by an
	// unknown key triggers (a key another replica just created).
	minUnknownKidReload = 2 * time.Second
	// keySkew is added to how long a retired key stays published.
	keySkew  = time.Minute
	algES256 = "ES256"
	typAT    = "at+jwt"
)

// signingKey is one ES256 key. header is the base64url JOSE header of the
// access tokens it signs: tokens are recognised by it (an exact match)
// before anything is decoded.
type signingKey struct {
	id      string
	priv    *ecdsa.PrivateKey
	pub     *ecdsa.PublicKey
	header  string
	created time.Time
	retired time.Time // zero: active
}

// keySet is an immutable snapshot of the keys; swapped atomically.
type keySet struct {
	active   *signingKey
	byID     map[string]*signingKey
	byHeader map[string]*signingKey
	jwks     []byte // the JWKS document, encoded once
}

// keyRing holds Mandate's signing keys: in the store (private keys sealed
// by it), shared by replicas, cached in memory. The newest active key
// signs; retired keys stay published (and accepted) until every token they
// signed has expired.
type keyRing struct {
	st       store.Store
	rotation time.Duration
	now      func() time.Time
	cur      atomic.Pointer[keySet]

	mu sync.Mutex // serialises reload and rotate
	// lastUnknown is when a token naming an unknown key last made this
	// replica reload (UnixNano).
	lastUnknown atomic.Int64
	// onChange is called after a reload changed the set of keys.
	onChange func()

	// tok is the access-token verifier's in-memory state and jag the
	// ID-JAG verifier (kept here so that Server's fields stay the
	// skeleton's).
	tok *tokenState
	jag jagState
}

func newKeyRing(ctx context.Context, st store.Store, rotation time.Duration, now func() time.Time) (*keyRing, error) {
	if st == nil {
		return nil, errors.New("authserver: no store")
	}
	if rotation <= 0 {
		rotation = DefaultKeyRotation
	}
	k := &keyRing{st: st, rotation: rotation, now: now, tok: newTokenState()}
	k.onChange = k.tok.forgetForeign
	if err := k.reload(ctx); err != nil {
		return nil, err
	}
	// Families revoked recently enough that their access tokens may
	// still be alive; run() keeps the set current.
	fams, err := st.RevokedFamiliesSince(ctx, now().Add(-(MaxAccessTokenTTL + 2*accessTokenSkew)))
	if err != nil {
		return nil, fmt.Errorf("loading revoked token families: %w", err)
	}
	k.tok.addRevoked(now(), fams...)
	if k.cur.Load().active == nil {
		if err := k.rotate(ctx, true); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// published is how long a retired key stays published and accepted:
// the longest access-token lifetime plus skew.
func publishedFor() time.Duration { return MaxAccessTokenTTL + keySkew }

// reload reads the keys from the store and swaps in a new snapshot.
func (k *keyRing) reload(ctx context.Context) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.reloadLocked(ctx)
}

func (k *keyRing) reloadLocked(ctx context.Context) error {
	rows, err := k.st.SigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("loading signing keys: %w", err)
	}
	old := k.cur.Load()
	now := k.now()
	ks := &keySet{byID: map[string]*signingKey{}, byHeader: map[string]*signingKey{}}
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Y   string `json:"y"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	doc := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	for _, row := range rows { // newest first
		if !row.RetiredAt.IsZero() && now.After(row.RetiredAt.Add(publishedFor())) {
			continue
		}
		if row.Algorithm != algES256 {
			continue
		}
		var sk *signingKey
		if old != nil && old.byID[row.ID] != nil {
			c := *old.byID[row.ID]
			sk = &c
		} else {
			parsed, err := x509.ParsePKCS8PrivateKey(row.Private)
			if err != nil {
				return fmt.Errorf("signing key %s: %w", row.ID, err)
			}
			priv, ok := parsed.(*ecdsa.PrivateKey)
			if !ok || priv.Curve != elliptic.P256() {
				return fmt.Errorf("signing key %s is not a P-256 key", row.ID)
			}
			sk = &signingKey{id: row.ID, priv: priv, pub: &priv.PublicKey, header: encodeHeader(row.ID)}
		}
		sk.created, sk.retired = row.CreatedAt, row.RetiredAt
		ks.byID[sk.id] = sk
		ks.byHeader[sk.header] = sk
		if sk.retired.IsZero() && ks.active == nil {
			ks.active = sk
		}
		pub, err := sk.pub.ECDH()
		if err != nil {
			return fmt.Errorf("signing key %s: %w", row.ID, err)
		}
		b := pub.Bytes() // 0x04 || X || Y
		doc.Keys = append(doc.Keys, jwk{Kty: "EC", Crv: "P-256",
			X: base64.RawURLEncoding.EncodeToString(b[1:33]), Y: base64.RawURLEncoding.EncodeToString(b[33:65]),
			Kid: sk.id, Alg: algES256, Use: "sig"})
	}
	ks.jwks, _ = json.Marshal(doc)
	k.cur.Store(ks)
	if k.onChange != nil && !sameKeys(old, ks) {
		k.onChange()
	}
	return nil
}

func sameKeys(a, b *keySet) bool {
	if a == nil || b == nil || len(a.byID) != len(b.byID) {
		return false
	}
	for id := range a.byID {
		if b.byID[id] == nil {
			return false
		}
	}
	return true
}

// reloadForUnknown reloads the keys because a token names key kid this
// replica does not know (another replica may have created it), at most
// once per minUnknownKidReload.
func (k *keyRing) reloadForUnknown(ctx context.Context, kid string) *signingKey {
	if last := k.lastUnknown.Load(); k.now().UnixNano()-last < int64(minUnknownKidReload) {
		return k.cur.Load().byID[kid]
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if sk := k.cur.Load().byID[kid]; sk != nil { // reloaded meanwhile
		return sk
	}
	if last := k.lastUnknown.Load(); k.now().UnixNano()-last < int64(minUnknownKidReload) {
		return nil
	}
	k.lastUnknown.Store(k.now().UnixNano())
	_ = k.reloadLocked(ctx) // on error keep the keys we have
	return k.cur.Load().byID[kid]
}

// rotate creates a new active key and retires the old one when the active
// key is older than the rotation period (or force).
func (k *keyRing) rotate(ctx context.Context, force bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(ctx); err != nil {
		return err
	}
	now := k.now()
	old := k.cur.Load().active
	if !force && old != nil && now.Before(old.created.Add(k.rotation)) {
		return nil
	}
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	id := randomToken(12)
	if err := k.st.PutSigningKey(ctx, store.SigningKey{ID: id, Algorithm: algES256, Private: der, CreatedAt: now}); err != nil {
		return fmt.Errorf("storing a new signing key: %w", err)
	}
	// Retire every other active key (another replica may have rotated at
	// the same time; the newest wins, the others stay published).
	for _, sk := range k.cur.Load().byID {
		if sk.retired.IsZero() {
			if err := k.st.RetireSigningKey(ctx, sk.id, now); err != nil {
				return fmt.Errorf("retiring signing key %s: %w", sk.id, err)
			}
		}
	}
	return k.reloadLocked(ctx)
}

// encodeHeader is the JOSE header of Mandate access tokens signed by kid.
func encodeHeader(kid string) string {
	h, _ := json.Marshal(struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
		Typ string `json:"typ"`
	}{algES256, kid, typAT})
	return base64.RawURLEncoding.EncodeToString(h)
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// handleJWKS serves the public signing keys (RFC 7517), retired ones
// included until the tokens they signed have expired.
func (s *Server) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(s.keys.cur.Load().jwks)
}
