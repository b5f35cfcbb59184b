// Command benchidp runs the in-process development IdP (internal/app/devidp, a
// real zitadel/oidc OpenID Provider) on a fixed loopback address for the
// benchmark, registers the client Mandate exchanges tokens with, logs users in
// and writes their access tokens (audience -audience) to -tokens, one per
// line: alice first, then -users generated users (user0001, …). It writes its
// issuer to -issuer-file, prints "ready", and serves until killed.
//
// With -usernames FILE it also writes the login names of those users, one
// per line in the order of -tokens (benchsignin signs the same users in at
// Mandate's authorization server).
//
// With -cold-users N it also creates N more users (cold00001, …) and writes
// their tokens to -cold-tokens: a pool of users Mandate has never seen, for
// the cold-path scenarios (each op a new user's first call).
//
// With -signin-redirect-uri (Mandate's public_url + /oauth/callback) it also
// registers Mandate's confidential OpenID Connect client, the one Mandate's
// authorization server signs users in with (authorization_server.idp):
// -signin-client-id and -signin-client-secret (by default the token-exchange
// client's), that redirect URI, and -signin-audience (by default -audience)
// as the aud of the IdP tokens it gets, the audience Mandate's identity
// section expects. Users have no password, so a login_hint signs them in
// without the picker.
//
//	benchidp -addr 127.0.0.1:9010 -audience http://127.0.0.1:9003/mcp -users 64 \
//	         -tokens /tmp/x/tokens.txt -issuer-file /tmp/x/issuer.txt \
//	         -signin-redirect-uri http://127.0.0.1:9003/oauth/callback
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9010", "listen address (loopback)")
	audience := flag.String("audience", "", "aud of the user tokens (Mandate's MCP URL); required")
	users := flag.Int("users", 0, "users to generate in addition to alice")
	tokensPath := flag.String("tokens", "tokens.txt", "file to write the user tokens to, one per line")
	issuerPath := flag.String("issuer-file", "", "file to write the issuer URL to (optional)")
	lifetime := flag.Duration("lifetime", 2*time.Hour, "user token lifetime")
	exchangeLifetime := flag.Duration("exchange-lifetime", time.Hour, "lifetime of exchanged tokens")
	clientID := flag.String("client-id", "mandate", "client allowed to exchange tokens")
	clientSecret := flag.String("client-secret", "mandate-secret", "its secret")
	coldUsers := flag.Int("cold-users", 0, "users to generate for -cold-tokens")
	coldPath := flag.String("cold-tokens", "cold-tokens.txt", "file to write the cold users' tokens to")
	usernamesPath := flag.String("usernames", "", "file to write the login names of the -tokens users to, in the same order (optional)")
	var sc signinClient
	flag.StringVar(&sc.id, "signin-client-id", "", "Mandate's sign-in client (authorization_server.idp.client_id); default -client-id")
	flag.StringVar(&sc.secret, "signin-client-secret", "", "its secret; default -client-secret")
	flag.StringVar(&sc.redirectURI, "signin-redirect-uri", "", "register the sign-in client with this redirect URI (Mandate's public_url + /oauth/callback)")
	flag.StringVar(&sc.audience, "signin-audience", "", "aud of the IdP tokens the sign-in client gets; default -audience")
	flag.Parse()
	if *audience == "" {
		log.Fatal("benchidp: -audience is required")
	}
	if sc.audience == "" {
		sc.audience = *audience
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	idp, err := devidp.Start(ctx, devidp.Options{Addr: *addr, ExchangeTokenLifetime: *exchangeLifetime})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	if err := registerClients(idp, *clientID, *clientSecret, sc); err != nil {
		log.Fatal(err)
	}
	mint := func(prefix string, n int, path, namesPath string, withAlice bool) {
		var names []string
		if withAlice {
			names = append(names, "alice")
		}
		for i := 1; i <= n; i++ {
			name := fmt.Sprintf("%s%04d", prefix, i)
			u := devidp.User{ID: "user-" + name, Username: name, Email: name + "@example.com",
				Roles: []string{"employee"}, Groups: []string{"bench"}}
			if err := idp.AddUser(u); err != nil {
				log.Fatal(err)
			}
			names = append(names, name)
		}
		tokens, err := mintTokens(ctx, idp, names, *audience, *lifetime)
		if err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
		if namesPath != "" {
			if err := os.WriteFile(namesPath, []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
				log.Fatal(err)
			}
		}
	}
	mint("user", *users, *tokensPath, *usernamesPath, true)
	if *coldUsers > 0 {
		mint("cold", *coldUsers, *coldPath, "", false)
	}
	if *issuerPath != "" {
		if err := os.WriteFile(*issuerPath, []byte(idp.Issuer()+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("ready issuer=%s token_url=%s tokens=%d cold=%d\n", idp.Issuer(), idp.TokenURL(), *users+1, *coldUsers)
	<-ctx.Done()
}

// signinClient is Mandate's sign-in client at the IdP (its authorization
// server's authorization_server.idp); no redirectURI means none.
type signinClient struct {
	id, secret, redirectURI, audience string
}

// registerClients registers the token-exchange client and, when
// sc.redirectURI is set, Mandate's sign-in client: a confidential client
// with that redirect URI whose code-flow tokens have aud sc.audience. The
// two may be one client (the same id): it then keeps the exchange grant.
func registerClients(idp *devidp.IdP, clientID, clientSecret string, sc signinClient) error {
	if err := idp.RegisterClient(clientID, clientSecret); err != nil {
		return err
	}
	if sc.redirectURI == "" {
		if sc.id != "" || sc.secret != "" {
			return errors.New("benchidp: -signin-client-id and -signin-client-secret need -signin-redirect-uri")
		}
		return nil
	}
	if sc.id == "" {
		sc.id = clientID
	}
	if sc.secret == "" {
		sc.secret = clientSecret
	}
	if sc.id == clientID && sc.secret != clientSecret {
		return errors.New("benchidp: the sign-in client is the token-exchange client (same id) but has another secret")
	}
	return idp.AddClient(devidp.ClientConfig{ID: sc.id, Secret: sc.secret,
		RedirectURIs: []string{sc.redirectURI}, Audience: []string{sc.audience}})
}

// mintTokens logs every user in (8 at a time) and returns their access
// tokens in the order of names.
func mintTokens(ctx context.Context, idp *devidp.IdP, names []string, audience string, lifetime time.Duration) ([]string, error) {
	tokens := make([]string, len(names))
	var wg sync.WaitGroup
	errs := make(chan error, len(names))
	sem := make(chan struct{}, 8)
	for i, n := range names {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			tok, err := idp.Token(ctx, n, devidp.TokenOptions{Audience: []string{audience}, Scopes: []string{"mcp"}, Lifetime: lifetime})
			if err != nil {
				errs <- fmt.Errorf("token for %s: %w", n, err)
				return
			}
			tokens[i] = tok
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return nil, err
	}
	return tokens, nil
}
