package credentials

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkCachedToken is the hot path: a cached token for the caller.
func BenchmarkCachedToken(b *testing.B) {
	ts := exchangeServer(b, 3600, nil)
	src := mustSource(b, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	ctx := user(context.Background(), "alice", time.Now().Add(time.Hour))
	if _, err := src.Token(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := src.Token(ctx)
		if err != nil || !r.CacheHit {
			b.Fatal("miss")
		}
	}
}

// BenchmarkCachedTokenParallel: many goroutines, 64 users, one cache.
func BenchmarkCachedTokenParallel(b *testing.B) {
	ts := exchangeServer(b, 3600, nil)
	src := mustSource(b, NewBroker(BrokerOptions{}), "crm", exchangeConfig(ts))
	ctxs := make([]context.Context, 64)
	for i := range ctxs {
		ctxs[i] = user(context.Background(), fmt.Sprintf("user%02d", i), time.Now().Add(time.Hour))
		if _, err := src.Token(ctxs[i]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if r, err := src.Token(ctxs[i%len(ctxs)]); err != nil || !r.CacheHit {
				b.Fatal("miss")
			}
			i++
		}
	})
}
