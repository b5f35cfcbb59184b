package gateway

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/gateway/audit"
	"github.com/mandate-gw/mandate/gateway/authn"
)

// finish records one operation: metrics, the span and the audit record. If
// the audit record cannot be written, it returns an error: an operation
// that cannot be audited must not deliver its result.
func (g *Gateway) finish(ctx context.Context, o *op, err error) error {
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
	if err := g.audit.Log(context.WithoutCancel(ctx), rec); err != nil {
		g.log.Error("audit record not written; result withheld", "error", err, "method", o.method)
		return &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "audit log unavailable; the result was withheld"}
	}
	return nil
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
// token is never recorded; the record says why it was refused.
func (g *Gateway) auditAuthFailure(r *http.Request, e *authn.Error, requestID string) {
	outcome := audit.OutcomeUnauthenticated
	if e.Status == http.StatusForbidden {
		outcome = audit.OutcomeDenied
	}
	class := e.Code
	if class == "" {
		class = "missing_token"
	}
	rec := &audit.Record{Time: time.Now(), RequestID: requestID, Method: audit.MethodAuth,
		SessionID: r.Header.Get("Mcp-Session-Id"), Outcome: outcome, ErrorClass: class, Error: e.Description}
	if err := g.audit.Log(context.WithoutCancel(r.Context()), rec); err != nil {
		g.log.Error("audit record not written", "error", err, "method", audit.MethodAuth)
	}
}
