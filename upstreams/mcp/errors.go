package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/upstreams/credentials"

	"github.com/mandate-gw/mandate/upstreams"
)

// JSON-RPC error codes the adapter returns for failures of the upstream
// itself (as opposed to JSON-RPC errors the upstream returned, which pass
// through with their own code). All lie in the implementation-defined server
// error range -32000..-32099. Every such error's Data is a JSON object with
// at least {"upstream": "<name>"}.
const (
	// CodeUpstreamUnavailable: the upstream could not be reached, the
	// connection broke during the call, or it answered with an HTTP error.
	CodeUpstreamUnavailable = upstreams.CodeUpstreamUnavailable
	// CodeUpstreamTimeout: the call took longer than the upstream's timeout
	// (or the caller's deadline).
	CodeUpstreamTimeout = upstreams.CodeUpstreamTimeout
	// CodeUpstreamBadResponse: the upstream answered with something that is
	// not a valid MCP/JSON-RPC response (invalid JSON, wrong shape, a stream
	// that ended without a response).
	CodeUpstreamBadResponse = upstreams.CodeUpstreamBadResponse
	// CodeUpstreamUnauthorized: the upstream refused the user's platform
	// credentials (HTTP 401 even after one fresh token) or denied access
	// (HTTP 403).
	CodeUpstreamUnauthorized = upstreams.CodeUpstreamUnauthorized
	// CodeResultTooLarge: the upstream's response exceeded the upstream's
	// max_result_bytes; it was cut off, never buffered whole.
	CodeResultTooLarge = upstreams.CodeResultTooLarge
	// CodeCredentialsUnavailable: Mandate could not obtain a platform token
	// for the user (token endpoint refusal, consent or sign-in required).
	// Data carries "oauth_error" and "interaction_required".
	CodeCredentialsUnavailable = upstreams.CodeCredentialsUnavailable
	// CodeSessionClosed: the upstream session was closed (by Session.Close
	// or Adapter.Close) or belongs to another user.
	CodeSessionClosed = upstreams.CodeSessionClosed
)

// errTimeout is the cancellation cause of a call that ran past the
// upstream's timeout (the adapter's own, or the caller's bound by the same
// timeout).
var errTimeout = upstreams.ErrTimeout

// errConnectionLost cancels an operation whose response broke off.
var errConnectionLost = errors.New("upstream connection lost mid-response")

// errTooLarge is returned by response bodies past max_result_bytes.
var errTooLarge = errors.New("response exceeds max_result_bytes")

// rpcError builds an adapter error naming the upstream.
func (a *Adapter) rpcError(code int64, extra map[string]any, format string, args ...any) *jsonrpc.Error {
	data := map[string]any{"upstream": a.name}
	for k, v := range extra {
		data[k] = v
	}
	raw, _ := json.Marshal(data)
	return &jsonrpc.Error{
		Code:    code,
		Message: "upstream " + a.name + ": " + fmt.Sprintf(format, args...),
		Data:    raw,
	}
}

// redirectError reports a refused upstream redirect; the target goes to
// the operational log only.
func (a *Adapter) redirectError(what string, e *redirectError) *jsonrpc.Error {
	a.log.Warn("upstream redirect refused; set the upstream's url to the final address", "status", e.status, "redirect_to", e.target)
	return a.rpcError(CodeUpstreamUnavailable, map[string]any{"http_status": e.status}, "%s%s", what, e.Error())
}

// outcome classifies an error for health accounting.
type outcome int

const (
	outcomeOK      outcome = iota // upstream answered (possibly with a JSON-RPC error)
	outcomeFailure                // upstream is at fault: down, slow, garbage
	outcomeNeutral                // user- or caller-specific: credentials, cancellation
)

// mapError turns the error of one upstream operation into what the caller
// sees: a *jsonrpc.Error, or, when the caller's own context was cancelled, an
// error wrapping context.Canceled. callCtx is the operation's context (with
// the adapter's timeout); parent is the caller's.
func (a *Adapter) mapError(parent, callCtx context.Context, err error, st *callState, connecting bool) (error, outcome) {
	what := ""
	if connecting {
		what = "connecting: "
	}
	snap := st.snapshot()
	if snap.tooLarge {
		return a.rpcError(CodeResultTooLarge, map[string]any{"max_result_bytes": a.maxBytes},
			"%sresponse exceeds the limit of %d bytes (max_result_bytes); it was discarded", what, a.maxBytes), outcomeFailure
	}
	if snap.redirect != nil {
		return a.redirectError(what, snap.redirect), outcomeFailure
	}
	var cerr *credentials.Error
	if errors.As(err, &cerr) {
		rerr := a.rpcError(CodeCredentialsUnavailable, map[string]any{
			"oauth_error":          cerr.Code,
			"interaction_required": cerr.Interaction,
			"consent_required":     cerr.Consent,
		}, "%s", cerr.Error())
		if cre := (*credentials.ConsentRequiredError)(nil); errors.As(cerr, &cre) {
			// The user must connect their account: the gateway answers
			// with a URL elicitation, for which it needs the typed error.
			return upstreams.WithCause(rerr, cerr), outcomeNeutral
		}
		return rerr, outcomeNeutral
	}
	switch snap.status {
	case 401:
		msg := "the upstream refused the user's credentials (HTTP 401, also after obtaining a fresh token)"
		if !a.hasCredentials {
			msg = "the upstream requires authentication (HTTP 401) but no credentials are configured for it"
		}
		return a.rpcError(CodeUpstreamUnauthorized, map[string]any{"http_status": 401}, "%s%s", what, msg), outcomeNeutral
	case 403:
		return a.rpcError(CodeUpstreamUnauthorized, map[string]any{"http_status": 403},
			"%sthe upstream denied access for this user (HTTP 403)", what), outcomeNeutral
	}
	if werr := upstreamRPCError(err); werr != nil {
		// The upstream answered with a JSON-RPC error: pass it through.
		return &jsonrpc.Error{Code: werr.Code, Message: "upstream " + a.name + ": " + werr.Message, Data: werr.Data}, outcomeOK
	}
	if errors.Is(context.Cause(callCtx), errTimeout) {
		return a.rpcError(CodeUpstreamTimeout, nil, "%stimed out after %s", what, a.timeout), outcomeFailure
	}
	if perr := parent.Err(); perr != nil {
		if errors.Is(perr, context.DeadlineExceeded) {
			return a.rpcError(CodeUpstreamTimeout, nil, "%sthe caller's deadline expired", what), outcomeNeutral
		}
		return fmt.Errorf("upstream %s: %w", a.name, context.Cause(parent)), outcomeNeutral
	}
	if snap.bodyErr != nil {
		return a.rpcError(CodeUpstreamUnavailable, nil, "%sconnection lost while reading the response: %s", what, upstreams.DescribeError(snap.bodyErr)), outcomeFailure
	}
	if connectionLost(snap.transportErr) {
		return a.rpcError(CodeUpstreamUnavailable, nil, "%sconnection lost while waiting for the response: %s", what, upstreams.DescribeError(snap.transportErr)), outcomeFailure
	}
	if snap.transportErr != nil {
		return a.rpcError(CodeUpstreamUnavailable, nil, "%sunavailable: %s", what, upstreams.DescribeError(snap.transportErr)), outcomeFailure
	}
	if snap.status >= 300 {
		return a.rpcError(CodeUpstreamUnavailable, map[string]any{"http_status": snap.status},
			"%sunavailable: HTTP %d", what, snap.status), outcomeFailure
	}
	if errors.Is(err, sdk.ErrSessionMissing) {
		return a.rpcError(CodeUpstreamUnavailable, nil, "%sthe upstream no longer knows this session (HTTP 404)", what), outcomeFailure
	}
	if snap.ok {
		// An answer arrived intact (no transport or read error), yet the call
		// failed: what came back was not a valid response.
		cause := strings.TrimPrefix(upstreams.DescribeError(err), "calling ")
		if snap.eof && strings.Contains(cause, "terminated without response") {
			cause = "the response stream ended without a response"
		}
		return a.rpcError(CodeUpstreamBadResponse, nil, "%sinvalid response: %s", what, cause), outcomeFailure
	}
	if errors.Is(err, sdk.ErrConnectionClosed) {
		return a.rpcError(CodeUpstreamUnavailable, nil, "%sthe upstream connection closed: %s", what, upstreams.DescribeError(err)), outcomeFailure
	}
	return a.rpcError(jsonrpc.CodeInternalError, nil, "%s%s", what, upstreams.DescribeError(err)), outcomeFailure
}

// upstreamRPCError finds a JSON-RPC error the upstream sent in err's tree,
// skipping go-sdk's local sentinels, which share the type (ErrRejected
// "rejected by transport" wraps every transport failure).
func upstreamRPCError(err error) *jsonrpc.Error {
	switch e := err.(type) {
	case nil:
		return nil
	case *jsonrpc.Error:
		if !localSentinel(e) {
			return e
		}
		return nil
	case interface{ Unwrap() error }:
		return upstreamRPCError(e.Unwrap())
	case interface{ Unwrap() []error }:
		for _, x := range e.Unwrap() {
			if w := upstreamRPCError(x); w != nil {
				return w
			}
		}
	}
	return nil
}

// localSentinel reports whether e is one of go-sdk's jsonrpc2 sentinel
// errors rather than something a peer sent.
func localSentinel(e *jsonrpc.Error) bool {
	switch {
	case e.Code == -32005 && e.Message == "rejected by transport",
		e.Code == -32003 && e.Message == "client is closing",
		e.Code == -32004 && e.Message == "server is closing",
		e.Code == -32001 && e.Message == "unknown error":
		return len(e.Data) == 0
	}
	return false
}

// connectionLost reports whether err means the connection broke after the
// request may have reached the upstream (as opposed to never connecting).
func connectionLost(err error) bool {
	return err != nil && (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
