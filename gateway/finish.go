package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/front"
)

// auditAuthFailure records a refused request (no or bad credentials). The
// token is never recorded; the record says why it was refused and from
// where. Failures from one address beyond front.AuthFailureBurst per window are
// counted, not recorded one by one (auditAuthSummaries writes the counts).
func (g *Gateway) auditAuthFailure(r *http.Request, e *authn.Error, requestID, remote string) {
	if !g.authAudit.Allow(remote) {
		return
	}
	outcome := audit.OutcomeUnauthenticated
	if e.Status == http.StatusForbidden {
		outcome = audit.OutcomeDenied
	}
	class := e.Code
	if class == "" {
		class = "missing_token"
	}
	// The session id was validated by checkSessionID (bounded, visible ASCII).
	rec := &audit.Record{Time: time.Now(), RequestID: requestID, Method: audit.MethodAuth, RemoteAddr: remote,
		SessionID: r.Header.Get("Mcp-Session-Id"), Outcome: outcome, ErrorClass: class, Error: e.Description}
	g.offer(r.Context(), rec)
}

// auditAuthSummaries records the authentication failures that were
// counted instead of recorded, one record per address (the busiest ones)
// and one for the rest.
func (g *Gateway) auditAuthSummaries(sums []front.AuthSummary) {
	for _, s := range sums {
		msg := fmt.Sprintf("%d authentication failures from this address since %s were not recorded one by one (more than %d per %s)",
			s.Count, s.Since.UTC().Format(time.RFC3339), front.AuthFailureBurst, g.authAudit.Window)
		if s.Addr == "" {
			msg = fmt.Sprintf("%d authentication failures from other addresses since %s were not recorded one by one",
				s.Count, s.Since.UTC().Format(time.RFC3339))
		}
		g.offer(context.Background(), &audit.Record{Method: audit.MethodAuth, RemoteAddr: s.Addr,
			Outcome: audit.OutcomeUnauthenticated, ErrorClass: "auth_failures_suppressed", Error: msg})
	}
}

// offer writes an optional record (see audit.Logger.Offer).
func (g *Gateway) offer(ctx context.Context, rec *audit.Record) {
	err := g.audit.Offer(context.WithoutCancel(ctx), rec)
	if err != nil && !errors.Is(err, audit.ErrNotWritten) && !errors.Is(err, audit.ErrDropped) {
		g.log.Error("audit record not written", "error", err, "method", rec.Method)
	}
}
