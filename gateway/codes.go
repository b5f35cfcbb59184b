package gateway

import "github.com/mandate-gw/mandate/gateway/dispatch"

// JSON-RPC error codes Mandate returns (see package dispatch).
const (
	CodeRateLimited      = dispatch.CodeRateLimited
	CodeCredentials      = dispatch.CodeCredentials
	CodeUpstream         = dispatch.CodeUpstream
	CodeResourceNotFound = dispatch.CodeResourceNotFound
	CodeAuditUnavailable = dispatch.CodeAuditUnavailable
)
