package authserver

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/secret"
)

// refresh: the IdP refusing a refresh token (invalid_grant) ends the
// session; an unreachable IdP does not.
func TestIdPRefreshRefusalEndsSession(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	idp, err := devidp.Start(ctx, devidp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = idp.Close() })
	if err := idp.RegisterClient("mandate", "s3cret"); err != nil {
		t.Fatal(err)
	}
	newLogin := func(issuer string) *idpLogin {
		s := &Server{cfg: Config{IdP: IdPClientConfig{ClientID: "mandate", ClientSecret: secret.String("s3cret")}},
			opts: Options{Issuer: "http://127.0.0.1:1", IdPIssuer: issuer}}
		s.log = slog.New(slog.DiscardHandler)
		l, err := newIDPLogin(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	if _, err := newLogin(idp.Issuer()).refresh(ctx, "not-a-refresh-token"); !errors.Is(err, ErrSessionEnded) {
		t.Errorf("refused refresh: %v, want ErrSessionEnded", err)
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := "http://" + ln.Addr().String()
	ln.Close()
	if _, err := newLogin(down).refresh(ctx, "rt"); err == nil || errors.Is(err, ErrSessionEnded) {
		t.Errorf("unreachable IdP: %v, want a transient error", err)
	}
}
