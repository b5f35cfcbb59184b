// Command benchidp runs the in-process development IdP (internal/devidp, a
// real zitadel/oidc OpenID Provider) on a fixed loopback address for the
// benchmark, registers the client Mandate exchanges tokens with, logs users in
// and writes their access tokens (audience -audience) to -tokens, one per
// line: alice first, then -users generated users (user0001, …). It writes its
// issuer to -issuer-file, prints "ready", and serves until killed.
//
//	benchidp -addr 127.0.0.1:9010 -audience http://127.0.0.1:9003/mcp -users 64 \
//	         -tokens /tmp/x/tokens.txt -issuer-file /tmp/x/issuer.txt
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mandate-gw/mandate/internal/devidp"
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
	flag.Parse()
	if *audience == "" {
		log.Fatal("benchidp: -audience is required")
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	idp, err := devidp.Start(ctx, devidp.Options{Addr: *addr, ExchangeTokenLifetime: *exchangeLifetime})
	if err != nil {
		log.Fatal(err)
	}
	defer idp.Close()
	if err := idp.RegisterClient(*clientID, *clientSecret); err != nil {
		log.Fatal(err)
	}
	names := []string{"alice"}
	for i := 1; i <= *users; i++ {
		n := fmt.Sprintf("user%04d", i)
		u := devidp.User{ID: "user-" + n, Username: n, Email: n + "@example.com",
			Roles: []string{"employee"}, Groups: []string{"bench"}}
		if err := idp.AddUser(u); err != nil {
			log.Fatal(err)
		}
		names = append(names, n)
	}
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
			tok, err := idp.Token(ctx, n, devidp.TokenOptions{Audience: []string{*audience}, Scopes: []string{"mcp"}, Lifetime: *lifetime})
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
		log.Fatal(err)
	}
	if err := os.WriteFile(*tokensPath, []byte(strings.Join(tokens, "\n")+"\n"), 0o600); err != nil {
		log.Fatal(err)
	}
	if *issuerPath != "" {
		if err := os.WriteFile(*issuerPath, []byte(idp.Issuer()+"\n"), 0o600); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Printf("ready issuer=%s token_url=%s tokens=%d\n", idp.Issuer(), idp.TokenURL(), len(tokens))
	<-ctx.Done()
}
