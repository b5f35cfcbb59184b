package authserver

import (
	"context"
	"time"
)

// Background work intervals.
const (
	// revocationSyncInterval is how often a replica reads the families
	// other replicas revoked.
	revocationSyncInterval = 2 * time.Second
	// revocationSyncOverlap re-reads a little of the past on every sync
	// (replicas' clocks and commit order differ).
	revocationSyncOverlap = 30 * time.Second
	sweepInterval         = 10 * time.Minute
)

// syncRevocations loads the families revoked since `since` into memory.
func (s *Server) syncRevocations(ctx context.Context, since time.Time) error {
	fams, err := s.opts.Store.RevokedFamiliesSince(ctx, since)
	if err != nil {
		return err
	}
	s.keys.tok.addRevoked(s.now(), fams...)
	return nil
}

func (s *Server) run(ctx context.Context) {
	// New loaded the families revoked before; the overlap covers the gap.
	since := s.now()
	sync := time.NewTicker(revocationSyncInterval)
	defer sync.Stop()
	keys := time.NewTicker(keyReloadInterval)
	defer keys.Stop()
	sweep := time.NewTicker(sweepInterval)
	defer sweep.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-sync.C:
			t := s.now()
			if err := s.syncRevocations(ctx, since.Add(-revocationSyncOverlap)); err != nil {
				s.log.Warn("syncing revoked token families failed", "error", err)
				continue
			}
			since = t
		case <-keys.C:
			if err := s.keys.rotate(ctx, false); err != nil {
				s.log.Warn("rotating signing keys failed", "error", err)
			}
		case <-sweep.C:
			if err := s.opts.Store.Sweep(ctx, s.now()); err != nil {
				s.log.Warn("sweeping expired rows failed", "error", err)
			}
			if err := s.clients.Sweep(ctx); err != nil {
				s.log.Warn("sweeping unused client registrations failed", "error", err)
			}
		}
	}
}
