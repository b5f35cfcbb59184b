// Package credentials is Mandate's per-user credentials broker: for each
// (user, upstream) it obtains a platform token for THAT user by a standard
// OAuth flow, caches it, and hands upstream adapters an http.RoundTripper that
// attaches it.
//
// The user's own inbound token is never forwarded to an upstream (the MCP
// authorization spec forbids token passthrough: it makes the gateway a
// confused deputy). It is only ever sent to the configured token endpoint as
// the subject token of an RFC 8693 token exchange or as the assertion of an
// Entra On-Behalf-Of request. No password grant exists.
//
// Flows (Config.Flow). Each implements the Flow interface in its own file
// (flow_<name>.go) with its own configuration type (TokenExchangeConfig,
// EntraOBOConfig, JWTBearerConfig, ClientCredentialsConfig) parsed from the
// flat YAML section, and is registered by one line in flowTypes (flow.go);
// Broker.Source looks the flow up there. The contract suite
// (contract_test.go) runs every registered flow and fails for one it has no
// case for:
//
//   - token_exchange: RFC 8693, subject_token = the user's inbound token,
//     optional actor_token = the gateway's own client_credentials token.
//   - entra_obo: Microsoft Entra On-Behalf-Of.
//   - jwt_bearer: RFC 7523; Mandate signs a fresh assertion per exchange whose
//     sub is the platform username computed by the subject template (and the
//     optional subject map file). Salesforce, ServiceNow, Google DWD.
//   - client_credentials: an explicit service account; Token.ServiceAccount
//     is true so audit and traces can say so.
//   - none: public upstreams; no token, no Authorization header.
//
// A Source is a decorator stack, in the manner of oauth2.ReuseTokenSource:
// flow → single-flight (one exchange in flight per key, with its own timeout
// so one cancelled caller does not fail the others) → bounded LRU cache keyed
// by a SHA-256 of the upstream, the flow's whole parsed configuration (its
// FlowConfig as JSON: every field but the client secret, defaults applied,
// the subject map bytes parsed included), and the user's issuer and
// subject. A cached token lives until min(issued expiry, the user's inbound
// token expiry) minus cache_skew.
//
// Usage from an adapter:
//
//	broker := credentials.NewBroker(credentials.BrokerOptions{Logger: log}) // once per process
//	src, err := broker.Source("crm", cfg.Credentials)                      // per (re)load
//	client := &http.Client{Transport: credentials.Transport(src, nil)}
//	req, _ := http.NewRequestWithContext(identity.NewContext(ctx, id), "GET", url, nil)
//	resp, err := client.Do(req) // Authorization: Bearer <platform token for id>
//
// Token endpoint failures are *Error values whose Error() text is written for
// the MCP user (sign in again, consent, ask an administrator) and never
// contains a token or secret.
package credentials
