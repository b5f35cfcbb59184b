// Package rest is the plumbing Mandate's native REST adapters (salesforce,
// servicenow) share; each adapter keeps only what is platform-specific
// (its tools, query languages, URL layout and error body format).
//
//   - Client (New) validates the upstream's config, owns the HTTP client
//     (redirects never followed), and sends each request with the calling
//     user's platform token from the credentials.Source. A 401 invalidates
//     that token, and the request is retried once with a fresh one.
//     Responses are bounded by max_result_bytes (ErrTooLarge), calls by the
//     upstream's timeout; the credential used is recorded in callinfo for
//     the audit record; one debug record per request, never a token.
//   - Call.Classify maps every failure to the JSON-RPC codes of package
//     upstreams (timeout, credentials, too large, unreachable, the
//     platform's own refusals through Platform.ClassifyAPI) with a message
//     for the user; ToolFailure and RPCFailure turn it into a tool error
//     result or a *jsonrpc.Error. A caller whose own context ended gets a
//     plain error (the call was abandoned, not failed).
//   - Session (Client.Open) implements upstreams.Session over a Service:
//     a fixed tool set (Tools, NewTools), resources and templates, a
//     resource reader, one completion. Every call takes the caller's
//     identity from its ctx and fails without one.
//   - DecodeArgs, LimitArg, ToolError, Result, Object, Clip, Sanitize,
//     RetryAfter: helpers for tool handlers and error parsers.
//
// Usage, in an adapter:
//
//	cl, err := rest.New(cfg, rest.Platform{
//		Kind: "servicenow", Name: "ServiceNow", Flows: "jwt_bearer",
//		TooLargeHint: "request fewer fields",
//		ParseError:   parseAPIError,
//		ClassifyAPI:  classifyAPI,
//	}, rest.Deps(deps))
//	svc := &rest.Service{Tools: rest.NewTools([]rest.Tool{{Def: def, Run: func(c *rest.Call, p *mcp.CallToolParams) (*mcp.CallToolResult, error) {
//		var args struct{ Table string `json:"table"` }
//		if err := rest.DecodeArgs(def.Name, p.Arguments, &args); err != nil {
//			return nil, err
//		}
//		resp, err := c.Do(http.MethodGet, "/api/now/table/"+args.Table, nil, nil)
//		if err != nil {
//			return c.ToolFailure(err)
//		}
//		return rest.Result(string(resp.Body), nil), nil
//	}}})}
//	sess, err := cl.Open(svc)
package rest
