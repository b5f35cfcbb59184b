package dispatch

import (
	"strconv"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"

	"github.com/mandate-gw/mandate/upstreams"
)

// errorTypeLabel is the error.type metric attribute for an error class.
// Two families of classes carry values that someone outside chooses: the
// JSON-RPC code an upstream answered (jsonrpc_<code>) and the OAuth error
// code a token endpoint answered (credentials_<code>). As labels they would
// let a hostile upstream create a series per value, so they are bucketed:
// known codes by name, the rest as jsonrpc_server_error (the server range
// -32000..-32099), jsonrpc_other or credentials_other. The audit record and
// the span keep the exact class. Other classes are Mandate's own constants
// and pass through.
func errorTypeLabel(class string) string {
	switch {
	case strings.HasPrefix(class, "jsonrpc_"):
		code, err := strconv.ParseInt(class[len("jsonrpc_"):], 10, 64)
		if err != nil {
			return "jsonrpc_other"
		}
		if name, ok := jsonrpcCodeNames[code]; ok {
			return "jsonrpc_" + name
		}
		if code >= -32099 && code <= -32000 {
			return "jsonrpc_server_error"
		}
		return "jsonrpc_other"
	case strings.HasPrefix(class, "credentials_"):
		if oauthErrorCodes[class[len("credentials_"):]] {
			return class
		}
		return "credentials_other"
	}
	return class
}

// jsonrpcCodeNames names the JSON-RPC codes of the specification, MCP and
// Mandate's adapters.
var jsonrpcCodeNames = map[int64]string{
	jsonrpc.CodeParseError:               "parse_error",
	jsonrpc.CodeInvalidRequest:           "invalid_request",
	jsonrpc.CodeMethodNotFound:           "method_not_found",
	jsonrpc.CodeInvalidParams:            "invalid_params",
	jsonrpc.CodeInternalError:            "internal_error",
	CodeResourceNotFound:                 "resource_not_found",
	upstreams.CodeUpstreamUnavailable:    "upstream_unavailable",
	upstreams.CodeUpstreamTimeout:        "upstream_timeout",
	upstreams.CodeUpstreamBadResponse:    "upstream_bad_response",
	upstreams.CodeUpstreamUnauthorized:   "upstream_unauthorized",
	upstreams.CodeResultTooLarge:         "result_too_large",
	upstreams.CodeCredentialsUnavailable: "credentials_unavailable",
	upstreams.CodeSessionClosed:          "session_closed",
	upstreams.CodeRateLimited:            "rate_limited",
}

// oauthErrorCodes are the registered OAuth error codes a token endpoint
// may answer (RFC 6749, 6750, 8628, 8693, 9449, OpenID Connect), and
// "error" for failures without one.
var oauthErrorCodes = map[string]bool{
	"error":           true,
	"invalid_request": true, "invalid_client": true, "invalid_grant": true, "unauthorized_client": true,
	"unsupported_grant_type": true, "invalid_scope": true, "invalid_target": true,
	"access_denied": true, "unsupported_response_type": true, "server_error": true, "temporarily_unavailable": true,
	"interaction_required": true, "login_required": true, "consent_required": true, "account_selection_required": true,
	"invalid_token": true, "insufficient_scope": true,
	"authorization_pending": true, "slow_down": true, "expired_token": true,
	"invalid_dpop_proof": true, "use_dpop_nonce": true,
}
