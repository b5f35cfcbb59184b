package authn

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/sync/singleflight"
)

// Key-set refresh limits.
const (
	// MinKeyRefreshInterval bounds how often an unknown kid may trigger a
	// JWKS fetch: tokens with random kids cannot make Mandate hammer the IdP.
	MinKeyRefreshInterval = 10 * time.Second
	// KeyRefreshInterval is the background refresh period once keys are loaded.
	KeyRefreshInterval = 15 * time.Minute
	maxJWKSBytes       = 1 << 20
)

// ErrKeysUnavailable means no signing keys could be loaded from the IdP yet.
var ErrKeysUnavailable = errors.New("the identity provider's signing keys are not available yet")

// keySet caches the IdP's JWKS. Known keys keep working when the JWKS endpoint
// is down; an unknown kid triggers at most one fetch per MinKeyRefreshInterval,
// shared by all concurrent callers. Safe for concurrent use.
type keySet struct {
	client *http.Client
	logger *slog.Logger
	algs   []jose.SignatureAlgorithm
	now    func() time.Time
	// onRemove, if set, is called after a fetch with the ids (keyID) of the
	// keys the IdP no longer publishes; it must not call back into the set.
	onRemove func(removed map[string]bool)

	url       atomic.Pointer[string]
	keys      atomic.Pointer[keyMaterial]
	mu        sync.Mutex
	lastFetch time.Time
	sf        singleflight.Group
}

// keyMaterial is one fetched JWKS: the usable public keys and, in the same
// order, a stable id of each (its RFC 7638 thumbprint).
type keyMaterial struct {
	keys []jose.JSONWebKey
	ids  []string
}

// verifyInfo is filled by VerifySignature when the context carries one: the
// id of the key that verified the token, the token's typ header and its
// payload.
type verifyInfo struct {
	key     string
	typ     string
	payload []byte
}

type verifyInfoKey struct{}

// keyID is a stable id of a public key: its RFC 7638 thumbprint, or a hash
// of its JSON for key types without one.
func keyID(k jose.JSONWebKey) string {
	if tp, err := k.Thumbprint(crypto.SHA256); err == nil {
		return string(tp)
	}
	b, _ := k.MarshalJSON()
	sum := sha256.Sum256(b)
	return string(sum[:])
}

// has reports whether the key with id is currently published.
func (k *keySet) has(id string) bool {
	km := k.keys.Load()
	return km != nil && slices.Contains(km.ids, id)
}

func newKeySet(client *http.Client, logger *slog.Logger, now func() time.Time, algs []string) *keySet {
	k := &keySet{client: client, logger: logger, now: now}
	for _, a := range algs {
		k.algs = append(k.algs, jose.SignatureAlgorithm(a))
	}
	return k
}

func (k *keySet) setURL(u string) { k.url.Store(&u) }

// loaded reports whether at least one key set has been fetched.
func (k *keySet) loaded() bool { return k.keys.Load() != nil }

// lookup returns the indexes in km of the keys matching kid (all keys when
// kid is empty).
func (k *keySet) lookup(kid string) (*keyMaterial, []int) {
	km := k.keys.Load()
	if km == nil {
		return nil, nil
	}
	var idx []int
	for i, key := range km.keys {
		if kid == "" || key.KeyID == kid {
			idx = append(idx, i)
		}
	}
	return km, idx
}

// refresh fetches the JWKS unless one was fetched less than minInterval ago.
func (k *keySet) refresh(ctx context.Context, minInterval time.Duration) error {
	k.mu.Lock()
	if k.loaded() && k.now().Sub(k.lastFetch) < minInterval {
		k.mu.Unlock()
		return nil
	}
	k.mu.Unlock()
	_, err, _ := k.sf.Do("jwks", func() (any, error) {
		// The fetch outlives any one caller: it is shared.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		err := k.fetch(ctx)
		k.mu.Lock()
		k.lastFetch = k.now()
		k.mu.Unlock()
		return nil, err
	})
	return err
}

func (k *keySet) fetch(ctx context.Context) error {
	u := k.url.Load()
	if u == nil {
		return ErrKeysUnavailable
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("fetching JWKS from %s: %w", *u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes))
	if err != nil {
		return fmt.Errorf("reading JWKS from %s: %w", *u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching JWKS from %s: HTTP %d", *u, resp.StatusCode)
	}
	var ks jose.JSONWebKeySet
	if err := json.Unmarshal(body, &ks); err != nil {
		return fmt.Errorf("decoding JWKS from %s: %w", *u, err)
	}
	// Keep only public verification keys.
	pub := ks.Keys[:0]
	for _, key := range ks.Keys {
		if key.Use != "" && key.Use != "sig" {
			continue
		}
		if !key.IsPublic() {
			key = key.Public()
		}
		if key.Valid() {
			pub = append(pub, key)
		}
	}
	if len(pub) == 0 {
		return fmt.Errorf("JWKS at %s holds no usable signing keys", *u)
	}
	km := &keyMaterial{keys: pub, ids: make([]string, len(pub))}
	for i, key := range pub {
		km.ids[i] = keyID(key)
	}
	old := k.keys.Swap(km)
	k.logger.Debug("loaded signing keys", "jwks_url", *u, "keys", len(pub))
	if old != nil && k.onRemove != nil {
		removed := map[string]bool{}
		for _, id := range old.ids {
			if !slices.Contains(km.ids, id) {
				removed[id] = true
			}
		}
		if len(removed) > 0 {
			k.onRemove(removed)
		}
	}
	return nil
}

// VerifySignature implements oidc.KeySet: it checks the JWS signature of raw
// with a key matching its kid and returns the payload. Only algorithms in
// the allowlist parse at all.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed JWS: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("token must carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	kid := hdr.KeyID
	km, idx := k.lookup(kid)
	if len(idx) == 0 {
		// Unknown kid: the IdP may have rotated keys. Fetch at most once per
		// interval, shared by every concurrent caller.
		if err := k.refresh(ctx, MinKeyRefreshInterval); err != nil && !k.loaded() {
			return nil, fmt.Errorf("%w: %v", ErrKeysUnavailable, err)
		}
		if km, idx = k.lookup(kid); len(idx) == 0 {
			if !k.loaded() {
				return nil, ErrKeysUnavailable
			}
			return nil, fmt.Errorf("no signing key with kid %q", kid)
		}
	}
	for _, i := range idx {
		if payload, err := jws.Verify(km.keys[i]); err == nil {
			if info, ok := ctx.Value(verifyInfoKey{}).(*verifyInfo); ok {
				info.key = km.ids[i]
				info.typ, _ = hdr.ExtraHeaders[jose.HeaderType].(string)
				info.payload = payload
			}
			return payload, nil
		}
	}
	return nil, errors.New("signature verification failed")
}
