package dispatch

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/gateway/audit"
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
func (g *Dispatcher) admitAudit(o *call) error {
	if g.Audit.Writable() {
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
func (g *Dispatcher) record(ctx context.Context, o *call, err error) error {
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
	if o.id != nil {
		rec.OAuthClient = o.id.OAuthClient
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
		aerr = g.Audit.Offer(context.WithoutCancel(ctx), rec)
	} else {
		aerr = g.Audit.Log(context.WithoutCancel(ctx), rec)
	}
	switch {
	case aerr == nil, refusal:
		return nil
	case errors.Is(aerr, audit.ErrNotWritten):
		g.Log.Warn("audit record queued: the audit sink is failing; it is written when the sink recovers",
			"method", o.method, "request_id", o.requestID, "seq", rec.Seq, "error", aerr.Error())
		return nil
	}
	g.Log.Error("audit record not written; result withheld", "error", aerr.Error(), "method", o.method,
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
