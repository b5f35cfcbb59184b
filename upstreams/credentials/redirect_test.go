package credentials

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A token endpoint that answers with a redirect is an error: the token
// request (which carries the user's subject token and the client secret)
// is never sent to the Location, also when the broker is given an HTTP
// client whose policy follows redirects. The error the user sees names no
// target (no internal address, no query or user info from the Location);
// the operational log names the target without query or user info.
func TestTokenEndpointRedirectNotFollowed(t *testing.T) {
	t.Parallel()
	var elsewhere atomic.Int64
	second := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elsewhere.Add(1)
		writeJSON(w, 200, map[string]any{"access_token": "stolen", "token_type": "Bearer", "expires_in": 600,
			"issued_token_type": TokenTypeAccessToken})
	}))
	defer second.Close()
	target := strings.Replace(second.URL, "http://", "http://user:hunter2@", 1) + "/token?sig=s3cr3t#frag"
	ts := newTokenServer(t, func(w http.ResponseWriter, r *http.Request, _ url.Values) {
		w.Header().Set("Location", target)
		w.WriteHeader(http.StatusTemporaryRedirect)
	})
	secondAddr := strings.TrimPrefix(second.URL, "http://")

	for _, c := range []struct {
		name   string
		client *http.Client
	}{
		{"default client", nil},
		{"client that follows redirects", &http.Client{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			b := NewBroker(BrokerOptions{HTTPClient: c.client, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			src := mustSource(t, b, "crm", Config{Flow: FlowTokenExchange, TokenURL: ts.TokenURL(), ClientID: "mandate",
				ClientSecret: "client-s3cret", Audience: "https://crm.internal"})
			_, err := src.Token(user(context.Background(), "alice", time.Now().Add(time.Hour)))
			var ce *Error
			if !errors.As(err, &ce) || ce.Status != http.StatusTemporaryRedirect {
				t.Fatalf("Token through a redirect: %v, want *Error with status 307", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "redirect") || !strings.Contains(msg, "token_url") {
				t.Errorf("error does not say what happened and what to do: %q", msg)
			}
			for _, leak := range []string{"hunter2", "s3cr3t", "frag", secondAddr, "127.0.0.1"} {
				if strings.Contains(msg, leak) {
					t.Errorf("error shows %q: %q", leak, msg)
				}
			}
			log := logs.String()
			if !strings.Contains(log, secondAddr+"/token") {
				t.Errorf("the log does not name the redirect target %s:\n%s", secondAddr, log)
			}
			for _, leak := range []string{"hunter2", "s3cr3t", "frag", "inbound-token-of-alice", "client-s3cret"} {
				if strings.Contains(log, leak) {
					t.Errorf("log shows %q:\n%s", leak, log)
				}
			}
		})
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target received %d token requests", n)
	}
}
