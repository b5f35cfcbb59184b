package store

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Lock excludes the other holders of a name: on PostgreSQL across two
// Store instances (replicas), on SQLite (one replica) within the Store.
// Another name is not held up. A waiter gives up when its ctx ends.
func TestContractLock(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		first := b.open(t)
		replicas := []Store{first, first}
		if b.driver == DriverPostgres {
			replicas[1] = b.open(t)
		}
		var inside, most atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				unlock, err := replicas[i%2].Lock(ctx, "idp-session:s1")
				if err != nil {
					t.Error(err)
					return
				}
				n := inside.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(5 * time.Millisecond)
				inside.Add(-1)
				unlock()
			})
		}
		wg.Wait()
		if m := most.Load(); m != 1 {
			t.Fatalf("%d holders of one lock at once, want 1", m)
		}

		unlock, err := replicas[0].Lock(ctx, "held")
		if err != nil {
			t.Fatal(err)
		}
		other, err := replicas[1].Lock(ctx, "another")
		if err != nil {
			t.Fatalf("another name waited for a held lock: %v", err)
		}
		other()
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		if u, err := replicas[1].Lock(short, "held"); err == nil {
			u()
			t.Fatal("a held lock was taken twice")
		}
		unlock()
		again, err := replicas[1].Lock(ctx, "held")
		if err != nil {
			t.Fatalf("the lock after unlock: %v", err)
		}
		again()
	})
}
