package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
	"github.com/mandate-gw/mandate/gateway/front"
)

// CodeAuditUnavailable: the audit sink cannot write, so Mandate refuses
// operations it could not record.
const CodeAuditUnavailable = -32030

// errClassAuditUnavailable is the error class of an operation refused
// because the audit sink cannot write.
const errClassAuditUnavailable = "audit_unavailable"

// admitAudit is the audit part of the admit step, before anything reaches
// an upstream: while the audit sink cannot write (a write failed and its
// queue is not written yet, a write is stuck, or the queue is full), new
// operations are refused, so that no side effect happens without its
// record. It is one atomic load when the sink is healthy.
func (g *Gateway) admitAudit(o *call) error {
	if g.audit.Writable() {
		return nil
	}
	o.outcome, o.errClass = audit.OutcomeError, errClassAuditUnavailable
	o.errMsg = "refused: the audit sink cannot write"
	return &jsonrpc.Error{Code: CodeAuditUnavailable,
		Message: "audit log unavailable: Mandate does not run operations it cannot record; try again later"}
}

// record is the dispatch pipeline's last step: it records one operation —
// metrics, the span and the audit record.
//
// An admitted operation's record is kept: written, or — while the sink
// fails — queued and written by the audit logger's retries; its result is
// delivered either way (the upstream already ran: withholding the answer
// would undo nothing, and a client retrying could repeat a side effect).
// The record of a refusal for an unwritable sink is optional (it may be
// dropped and counted when the queue is full). Only when a record can be
// neither written nor queued (the logger is closed, at shutdown) is the
// result withheld, and the record's gist goes to the operational log.
func (g *Gateway) record(ctx context.Context, o *call, err error) error {
	if o.outcome == "" {
		o.outcome = audit.OutcomeOK
		if err != nil {
			o.outcome = audit.OutcomeError
		}
	}
	if err != nil && o.errMsg == "" {
		o.errMsg = err.Error()
		var je *jsonrpc.Error
		if errors.As(err, &je) {
			o.errClass = jsonrpcClass(je.Code)
		}
	}
	rec := &audit.Record{
		Time:       o.start,
		RequestID:  o.requestID,
		User:       audit.UserFromIdentity(o.id),
		Method:     o.method,
		Upstream:   o.upstream,
		Tool:       o.tool,
		Resource:   o.resource,
		Prompt:     o.prompt,
		Outcome:    o.outcome,
		ErrorClass: o.errClass,
		Error:      o.errMsg,
		LatencyMS:  float64(time.Since(o.start).Microseconds()) / 1000,
		Arguments:  o.args,
	}
	if o.ss != nil {
		rec.SessionID = o.ss.ID()
		if ip := o.ss.InitializeParams(); ip != nil && ip.ClientInfo != nil {
			rec.Client = strings.TrimSpace(ip.ClientInfo.Name + " " + ip.ClientInfo.Version)
		}
	}
	if o.decision != nil {
		rec.Decision = &audit.DecisionRef{Allow: o.decision.Allow, Rule: o.decision.Rule, Reason: o.decision.Reason}
	}
	if s := o.info.Snapshot(); s.Flow != "" {
		rec.Credential = &audit.CredentialRef{Flow: s.Flow, PlatformSubject: s.PlatformSubject,
			ServiceAccount: s.ServiceAccount, CacheHit: s.CacheHit}
	}
	g.observe(ctx, o, err)
	refusal := o.errClass == errClassAuditUnavailable
	var aerr error
	if refusal {
		aerr = g.audit.Offer(context.WithoutCancel(ctx), rec)
	} else {
		aerr = g.audit.Log(context.WithoutCancel(ctx), rec)
	}
	switch {
	case aerr == nil, refusal:
		return nil
	case errors.Is(aerr, audit.ErrNotWritten):
		g.log.Warn("audit record queued: the audit sink is failing; it is written when the sink recovers",
			"method", o.method, "request_id", o.requestID, "seq", rec.Seq, "error", aerr.Error())
		return nil
	}
	g.log.Error("audit record not written; result withheld", "error", aerr.Error(), "method", o.method,
		"request_id", o.requestID, "issuer", rec.User.Issuer, "subject", rec.User.Subject, "upstream", o.upstream,
		"tool", o.tool, "resource", o.resource, "prompt", o.prompt, "outcome", o.outcome)
	return &jsonrpc.Error{Code: CodeAuditUnavailable, Message: "audit log unavailable; the result was withheld"}
}

func jsonrpcClass(code int64) string {
	switch code {
	case jsonrpc.CodeInvalidParams:
		return "invalid_params"
	case CodeRateLimited:
		return "rate_limited"
	case CodeCredentials:
		return "credentials"
	case CodeResourceNotFound:
		return "not_found"
	}
	return "upstream_error"
}

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
