package dispatch

import "testing"

func TestErrorTypeLabel(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "",
		"policy_denied":              "policy_denied",
		"upstream_error":             "upstream_error",
		"jsonrpc_-32700":             "jsonrpc_parse_error",
		"jsonrpc_-32600":             "jsonrpc_invalid_request",
		"jsonrpc_-32601":             "jsonrpc_method_not_found",
		"jsonrpc_-32602":             "jsonrpc_invalid_params",
		"jsonrpc_-32603":             "jsonrpc_internal_error",
		"jsonrpc_-32002":             "jsonrpc_resource_not_found",
		"jsonrpc_-32010":             "jsonrpc_upstream_unavailable",
		"jsonrpc_-32017":             "jsonrpc_rate_limited",
		"jsonrpc_-32000":             "jsonrpc_server_error",
		"jsonrpc_-32099":             "jsonrpc_server_error",
		"jsonrpc_-32100":             "jsonrpc_other",
		"jsonrpc_0":                  "jsonrpc_other",
		"jsonrpc_x":                  "jsonrpc_other",
		"credentials_invalid_grant":  "credentials_invalid_grant",
		"credentials_error":          "credentials_error",
		"credentials_made_up_123456": "credentials_other",
	} {
		if got := errorTypeLabel(in); got != want {
			t.Errorf("errorTypeLabel(%q) = %q, want %q", in, got, want)
		}
	}
}
