package devidp_test

import (
	"context"
	"testing"

	"github.com/mandate-gw/mandate/internal/app/devidp"
)

// BenchmarkStart measures Start+Close, including the RSA-2048 key generation.
func BenchmarkStart(b *testing.B) {
	for b.Loop() {
		idp, err := devidp.Start(context.Background(), devidp.Options{})
		if err != nil {
			b.Fatal(err)
		}
		idp.Close()
	}
}

// BenchmarkToken measures one programmatic login (four HTTP round trips and
// two signatures).
func BenchmarkToken(b *testing.B) {
	idp, err := devidp.Start(context.Background(), devidp.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer idp.Close()
	opts := devidp.TokenOptions{Audience: []string{"http://127.0.0.1:8080/mcp"}}
	for b.Loop() {
		if _, err := idp.Token(context.Background(), "alice", opts); err != nil {
			b.Fatal(err)
		}
	}
}
