package credentials

import (
	"context"
	"net/http"
	"net/url"
	"reflect"
	"slices"
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

// Every field of every registered flow's configuration, but its secrets,
// is part of the cache key: the test walks the fields by reflection (through
// the embedded ClientConfig and CacheConfig, and nested ones such as
// cross_app_access's Platform), so a field added to a flow's
// config later cannot be left out of the key.
func TestCacheKeyCoversEveryFlowConfigField(t *testing.T) {
	t.Parallel()
	for _, ft := range flowTypes {
		fc := ft.Parse(ft, &Config{Flow: ft.Name, TokenURL: "https://idp/token", ClientID: "m", ClientSecret: "s"})
		if fc == nil {
			if !ft.Bare {
				t.Errorf("flow %s: Parse returned no configuration", ft.Name)
			}
			continue
		}
		if fc.FlowName() != ft.Name {
			t.Errorf("flow %s: its config says %s", ft.Name, fc.FlowName())
		}
		k0 := cacheKey("u", fc)
		if cacheKey("v", fc) == k0 {
			t.Errorf("flow %s: the upstream is not part of the cache key", ft.Name)
		}
		n := 0
		var walk func(v reflect.Value, path string)
		walk = func(v reflect.Value, path string) {
			for i := range v.NumField() {
				f, fv := v.Type().Field(i), v.Field(i)
				name := path + f.Name
				if !f.IsExported() {
					t.Errorf("flow %s: field %s is unexported: the cache key (JSON) cannot see it", ft.Name, name)
					continue
				}
				if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]() {
					walk(fv, name+".")
					continue
				}
				old := reflect.New(f.Type).Elem()
				old.Set(fv)
				switch fv.Interface().(type) {
				case secret.String:
					fv.SetString("rotated-" + fv.String())
					if cacheKey("u", fc) != k0 {
						t.Errorf("flow %s: secret %s changes the cache key: rotating it would drop every cached token", ft.Name, name)
					}
					fv.Set(old)
					continue
				case string:
					fv.SetString(fv.String() + "x")
				case bool:
					fv.SetBool(!fv.Bool())
				case time.Duration:
					fv.SetInt(fv.Int() + int64(time.Second))
				case []string:
					fv.Set(reflect.ValueOf(append(slices.Clone(fv.Interface().([]string)), "x")))
				case []byte:
					fv.SetBytes(append(slices.Clone(fv.Bytes()), 'x'))
				default:
					t.Fatalf("flow %s: field %s: type %s not handled by this test", ft.Name, name, f.Type)
				}
				n++
				if cacheKey("u", fc) == k0 {
					t.Errorf("flow %s: field %s is not part of the cache key", ft.Name, name)
				}
				fv.Set(old)
				if cacheKey("u", fc) != k0 {
					t.Fatalf("flow %s: restoring %s did not restore the key", ft.Name, name)
				}
			}
		}
		walk(reflect.ValueOf(fc).Elem(), "")
		if n < 10 {
			t.Errorf("flow %s: only %d fields walked", ft.Name, n)
		}
	}
}
