package upstreams

import (
	"errors"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/internal/errtext"
)

// JSON-RPC error codes shared by every adapter and the gateway (the
// server-defined range -32000..-32099). Clients can branch on them; the
// message always names the upstream and the cause.
const (
	// CodeUpstreamUnavailable: the upstream could not be reached.
	CodeUpstreamUnavailable = -32010
	// CodeUpstreamTimeout: the upstream did not answer within its timeout.
	CodeUpstreamTimeout = -32011
	// CodeUpstreamBadResponse: the upstream answered something that is not valid MCP/JSON.
	CodeUpstreamBadResponse = -32012
	// CodeUpstreamUnauthorized: the upstream refused the user's platform credentials.
	CodeUpstreamUnauthorized = -32013
	// CodeResultTooLarge: the upstream's answer exceeded max_result_bytes.
	CodeResultTooLarge = -32014
	// CodeCredentialsUnavailable: no platform token could be obtained for the user.
	CodeCredentialsUnavailable = -32015
	// CodeSessionClosed: the upstream session was closed.
	CodeSessionClosed = -32016
	// CodeRateLimited: the platform or Mandate's per-user limit refused the call.
	CodeRateLimited = -32017
)

// DescribeError renders a transport error for a message to the user: the
// innermost network cause where there is one ("dial: connection
// refused"), never a URL (which could carry query secrets) nor an internal
// address (host:port, IP).
func DescribeError(err error) string { return errtext.Transport(err) }

// ErrTimeout is the cancellation cause (context.WithTimeoutCause) of a
// context whose deadline is the upstream's configured timeout. A caller that
// bounds a call by that timeout itself sets it, so that the adapter reports
// the expiry as the upstream's timeout (CodeUpstreamTimeout, counted against
// its health) whichever of the two equal deadlines fires first, rather than
// as a deadline of the caller's.
var ErrTimeout = errors.New("upstream timeout")

// WithCause returns rpc — the error an adapter answers, whose code callers
// branch on (errors.As finds it) — still wrapping the cause it was mapped
// from, so that errors.As finds that too. Adapters use it for failures the
// gateway answers itself rather than passing on: a
// *credentials.ConsentRequiredError becomes a URL elicitation there, which
// needs the typed error, not its text. Its Error() is rpc's.
func WithCause(rpc *jsonrpc.Error, cause error) error {
	return &causedError{rpc: rpc, cause: cause}
}

type causedError struct {
	rpc   *jsonrpc.Error
	cause error
}

func (e *causedError) Error() string   { return e.rpc.Error() }
func (e *causedError) Unwrap() []error { return []error{e.rpc, e.cause} }
