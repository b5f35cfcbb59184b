package credentials

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAuthorizationCodeWithoutGrantStore(t *testing.T) {
	t.Parallel()
	cfg := Config{Flow: FlowAuthorizationCode, AuthorizationURL: "https://tracker.example/authorize", TokenURL: "https://tracker.example/token", ClientID: "m"}
	src := mustSource(t, NewBroker(BrokerOptions{}), "tracker", cfg)
	_, err := src.Token(acUser("alice"))
	var oe *Error
	if !errors.As(err, &oe) || !errors.Is(err, errNoGrantStore) || !strings.Contains(err.Error(), "no grant storage") {
		t.Fatalf("err = %v, want the missing grant storage named", err)
	}
	conn, _ := ConnectorOf(src)
	if _, err := conn.Redeem(context.Background(), conn.Key(acIssuer, "user-alice"), "c", "v", acRedirect); !errors.Is(err, errNoGrantStore) {
		t.Fatalf("Redeem without storage: %v", err)
	}
}

// A refresh refused with something other than invalid_grant is an *Error
// that keeps the grant (and never shows the refresh token); invalid_grant
// breaks it. Redeem refuses another upstream's key.
func TestAuthorizationCodeRefreshErrors(t *testing.T) {
	t.Parallel()
	var answer atomic.Value
	answer.Store("unavailable")
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, form url.Values) {
		switch {
		case form.Get("grant_type") == "authorization_code" && form.Get("code_verifier") == "verifier-1" && form.Get("client_id") == "public-client":
			writeJSON(w, 200, map[string]any{"access_token": "at-1", "refresh_token": "rt-secret-1", "token_type": "Bearer", "expires_in": 3600,
				"id_token": "h." + b64json(map[string]any{"sub": "tracker-alice"}) + ".s"})
		case form.Get("grant_type") == "refresh_token" && answer.Load() == "unavailable":
			oauthError(w, 503, "temporarily_unavailable", "cannot refresh "+form.Get("refresh_token")+" now")
		case form.Get("grant_type") == "refresh_token":
			oauthError(w, 400, "invalid_grant", "refresh token "+form.Get("refresh_token")+" was revoked")
		default:
			oauthError(w, 400, "invalid_request", "unexpected request")
		}
	})
	clock := &fakeClock{t: time.Now()}
	grants := sqliteGrants(t)()
	b := NewBroker(BrokerOptions{Grants: grants, Now: clock.Now, InvalidGrantBackoff: -1})
	cfg := Config{Flow: FlowAuthorizationCode, AuthorizationURL: ts.URL + "/authorize", TokenURL: ts.TokenURL(), ClientID: "public-client", Scopes: []string{"issues"}}
	src := mustSource(t, b, "tracker", cfg)
	conn, _ := ConnectorOf(src)
	ctx := context.Background()

	other := conn.Key(acIssuer, "user-alice")
	other.Upstream = "crm"
	if _, err := conn.Redeem(ctx, other, "code", "verifier-1", acRedirect); err == nil {
		t.Fatal("Redeem stored a grant under another upstream's key")
	}
	g, err := conn.Redeem(ctx, conn.Key(acIssuer, "user-alice"), "code", "verifier-1", acRedirect)
	if err != nil || g.PlatformSubject != "tracker-alice" || g.ClientID != "public-client" {
		t.Fatalf("Redeem (public client, id_token sub): %+v %v", g.PlatformSubject, err)
	}

	clock.Advance(2 * time.Hour)
	_, err = src.Token(acUser("alice"))
	var oe *Error
	if !errors.As(err, &oe) || oe.Code != "temporarily_unavailable" || !oe.Retryable || strings.Contains(err.Error(), "rt-secret-1") {
		t.Fatalf("refresh at an unavailable server: %v", err)
	}
	var cre *ConsentRequiredError
	if errors.As(err, &cre) {
		t.Fatal("a transient refresh failure asks the user to consent again")
	}
	if kept, err := grants.Get(ctx, conn.Key(acIssuer, "user-alice")); err != nil || kept.Broken || kept.RefreshToken != "rt-secret-1" {
		t.Fatalf("a transient failure changed the grant: broken %v, %v", kept.Broken, err)
	}

	answer.Store("invalid_grant")
	_, err = src.Token(acUser("alice"))
	wantConsent(t, err, "broken")
	if strings.Contains(err.Error(), "rt-secret-1") {
		t.Fatalf("error text holds the refresh token: %s", err)
	}
	if !strings.Contains(err.Error(), `upstream "tracker"`) || !strings.Contains(err.Error(), "connect again") {
		t.Errorf("broken grant message: %s", err)
	}
}

// discover picks Mandate's client: the configured one, else the client ID
// metadata document where the server supports them, else registration;
// the protected resource metadata is found at the well-known path when
// the 401 names none.
func TestAuthorizationCodeDiscoverClient(t *testing.T) {
	t.Parallel()
	var cimd atomic.Bool
	mux := http.NewServeMux()
	as := httptest.NewServer(mux)
	t.Cleanup(as.Close)
	mux.HandleFunc("/.well-known/oauth-protected-resource/mcp", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"resource": as.URL + "/mcp", "authorization_servers": []string{as.URL + "/as"}, "scopes_supported": []string{"read"}})
	})
	mux.HandleFunc("/mcp", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }) // no challenge
	mux.HandleFunc("/.well-known/oauth-authorization-server/as", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"issuer": as.URL + "/as", "authorization_endpoint": as.URL + "/as/authorize", "token_endpoint": as.URL + "/as/token",
			"code_challenge_methods_supported": []string{"S256"}, "client_id_metadata_document_supported": cimd.Load()})
	})
	cfg := Config{Flow: FlowAuthorizationCode, Discover: true, Platform: PlatformMCP, UpstreamURL: as.URL + "/mcp"}
	const metaURL = "https://mandate.example/.well-known/oauth-client"
	clientOf := func(t *testing.T, cfg Config, opts BrokerOptions) (string, error) {
		conn, _ := ConnectorOf(mustSource(t, NewBroker(opts), "tracker", cfg))
		u, err := conn.AuthCodeURL(context.Background(), "s", "c", acRedirect, "")
		if err != nil {
			return "", err
		}
		p, _ := url.Parse(u)
		if p.Query().Get("scope") != "read" || p.Query().Get("resource") != as.URL+"/mcp" {
			t.Errorf("scope/resource from the metadata missing: %s", u)
		}
		return p.Query().Get("client_id"), nil
	}

	// Neither metadata documents nor registration: a clear error.
	if _, err := clientOf(t, cfg, BrokerOptions{ClientMetadataURL: metaURL}); err == nil || !strings.Contains(err.Error(), "set client_id") {
		t.Fatalf("no way to be a client: %v", err)
	}
	cimd.Store(true)
	if id, err := clientOf(t, cfg, BrokerOptions{ClientMetadataURL: metaURL}); err != nil || id != metaURL {
		t.Fatalf("metadata document client: %q %v", id, err)
	}
	if _, err := clientOf(t, cfg, BrokerOptions{}); err == nil {
		t.Fatal("a metadata document client although the gateway publishes none")
	}
	configured := cfg
	configured.ClientID = "preregistered"
	if id, err := clientOf(t, configured, BrokerOptions{ClientMetadataURL: metaURL}); err != nil || id != "preregistered" {
		t.Fatalf("configured client: %q %v", id, err)
	}
}

func b64json(v any) string {
	j, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(j)
}
