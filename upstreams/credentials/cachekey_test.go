package credentials

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mandate-gw/mandate/internal/secret"
)

// The cache key covers the whole flow configuration: a reload that changes
// any key that shapes the token request (here scopes_in_assertion, which
// moves the scopes into the signed assertion) misses the cache instead of
// serving the token obtained under the old configuration.
func TestCacheKeyCoversWholeConfig(t *testing.T) {
	t.Parallel()
	srv := newJWTBearerServer(t, &testRSAKey(t).PublicKey, jose.RS256, "ck", "https://login.salesforce.com")
	srv.users["alice@example.com"] = true
	base := Config{
		Flow: FlowJWTBearer, TokenURL: srv.TokenURL(), ClientID: "ck", PrivateKeyFile: writeRSAKey(t, false),
		AssertionAudience: "https://login.salesforce.com", Subject: "{{ .Email }}", Scopes: []string{"api"},
	}
	for _, tc := range []struct {
		name   string
		change func(*Config)
	}{
		{"scopes_in_assertion", func(c *Config) { c.ScopesInAssertion = true }},
		{"key_id", func(c *Config) { c.KeyID = "k2" }},
	} {
		b := NewBroker(BrokerOptions{})
		ctx := user(context.Background(), "alice", time.Time{})
		if _, err := mustSource(t, b, "salesforce", base).Token(ctx); err != nil {
			t.Fatal(err)
		}
		cfg := base
		tc.change(&cfg)
		r, err := mustSource(t, b, "salesforce", cfg).Token(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.CacheHit {
			t.Errorf("changing %s served the token cached under the old configuration", tc.name)
		}
	}
	// Secrets are not part of the key: rotating a client secret keeps the
	// users' cached tokens.
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		writeJSON(w, 200, map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 600})
	})
	b := NewBroker(BrokerOptions{})
	cc := Config{Flow: FlowClientCredentials, TokenURL: ts.TokenURL(), ClientID: "svc", ClientSecret: "one"}
	if _, err := mustSource(t, b, "reports", cc).Token(context.Background()); err != nil {
		t.Fatal(err)
	}
	cc.ClientSecret = "two"
	if r, err := mustSource(t, b, "reports", cc).Token(context.Background()); err != nil || !r.CacheHit {
		t.Errorf("a rotated client secret missed the cache: %+v %v", r, err)
	}
}

// Every field of Config but the client secret is part of the cache key, so
// a key added to Config later cannot be forgotten in the hash.
func TestConfigHashCoversEveryField(t *testing.T) {
	t.Parallel()
	base := Config{Flow: FlowJWTBearer}
	h0 := configHash("u", base, nil)
	v := reflect.ValueOf(&base).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		cfg := base
		fv := reflect.ValueOf(&cfg).Elem().Field(i)
		switch fv.Interface().(type) {
		case secret.String:
			fv.SetString("s3cret")
			if configHash("u", cfg, nil) != h0 {
				t.Errorf("%s changes the cache key: rotating a secret would drop every cached token", f.Name)
			}
			continue
		case string:
			fv.SetString("x")
		case bool:
			fv.SetBool(true)
		case time.Duration:
			fv.SetInt(int64(time.Second))
		case []string:
			fv.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("field %s: type %s not handled by this test", f.Name, f.Type)
		}
		if configHash("u", cfg, nil) == h0 {
			t.Errorf("field %s (%s) is not part of the cache key", f.Name, f.Tag.Get("yaml"))
		}
	}
	if configHash("u", base, []byte("a: b")) == h0 {
		t.Error("the subject map's bytes are not part of the cache key")
	}
	if configHash("v", base, nil) == h0 {
		t.Error("the upstream is not part of the cache key")
	}
}
