// Package policy decides who may do what through Mandate. It compiles the
// `policy:` section of the configuration once (CEL rules, cel.dev/cel-go)
// and evaluates it purely: an Input (user, upstream, MCP method, target,
// arguments) gives a Decision that names the rule that decided. It also
// holds the per-user rate limits of the same section.
//
// # Rules
//
// Rules are tried in order; the first whose `when` is true decides with its
// effect; if none does, `default` (deny unless set to allow) decides.
//
//	policy:
//	  default: deny
//	  rules:
//	    - name: no-large-refunds
//	      effect: deny
//	      when: 'tool == "refund" && arguments.amount > 1000'
//	    - name: sales-use-salesforce
//	      effect: allow
//	      when: 'upstream == "salesforce" && "sales" in user.roles'
//	  rate_limits:
//	    - {upstream: salesforce, requests_per_second: 5, burst: 10}
//	    - {upstream: "*", requests_per_second: 20}
//
// Variables of a `when` expression (it must have type bool):
//
//	user       object: subject, email, issuer (string); roles, groups,
//	           scopes (list(string)); claims (map(string, dyn): every claim
//	           of the inbound token, e.g. user.claims.department)
//	upstream   string: the upstream's configured name
//	method     string: the MCP method, e.g. "tools/call", "resources/read"
//	tool, resource, prompt
//	           string: the target as the upstream names it (not namespaced);
//	           resource is the URI; "" when not applicable
//	arguments  map(string, dyn): the call's arguments (empty when none)
//
// The CEL standard library plus the strings, sets and lists extensions and
// optionals are available (`user.email.endsWith("@example.com")`,
// `sets.intersects(user.groups, ["a", "b"])`,
// `user.claims.?region.orValue("") == "emea"`). Misspelt variables or user
// fields, wrong operand types and non-bool results are compile errors that
// name the rule and the line and column.
//
// # Errors fail closed
//
// Evaluating a rule can fail at run time: a missing claim or argument
// (`user.claims.department` when the token has none), a type mismatch, a
// division by zero. A failing allow rule does not match; a failing deny rule
// matches, so the request is denied. Guard optional data with has() or
// optionals when that is not what you want.
//
// A rule that costs more than MaxCost to evaluate (nested comprehensions
// over large arguments), or that is still iterating when Evaluate's
// context ends, denies the request whatever its effect.
//
// # Listing and calling agree
//
// A user's tools/list (resources, prompts) shows only what they may call.
// The gateway asks Visible for each item and Evaluate for each call.
// Visible evaluates as the corresponding call (tools/list → tools/call, ...)
// with `arguments` unknown: rules that do not depend on arguments act as in
// Evaluate; an allow rule that depends on them shows the item (the call is
// checked with its real arguments); a deny rule that depends on them is
// skipped. So an item is hidden only if every call of it would be denied,
// and for policies that do not read `arguments` Visible and Evaluate
// always agree. See Engine.Visible. Engine.ReadsArguments says, from the
// compiled expressions, whether any rule reads them at all (callers skip
// decoding arguments when none does).
//
// # Usage
//
//	eng, err := policy.Compile(cfg.Policy) // at load/reload; err lists every problem
//	if err != nil { ... }
//	current.Store(eng)                     // atomic.Pointer[policy.Engine]
//
//	in := policy.Input{User: policy.UserFrom(id), Upstream: "crm",
//		Method: "tools/call", Tool: "get_account", Arguments: args}
//	d := current.Load().Evaluate(ctx, in) // d.Allow, d.Rule, d.Reason → audit, span
//	if !d.Allow { ... JSON-RPC error naming no hidden detail ... }
//
//	// tools/list: keep only visible tools.
//	in.Method, in.Arguments = "tools/list", nil
//	if current.Load().Visible(in).Allow { ... }
//
//	// Rate limits: one Limiter per process, updated on reload.
//	lim, err := policy.NewLimiter(cfg.Policy.RateLimits, policy.LimiterOptions{})
//	if ok, retry := lim.Allow(id.Key(), "crm"); !ok { ... retry after `retry` ... }
//	err = lim.Update(newCfg.Policy.RateLimits)
//
// Explain and ExplainVisible report every rule's outcome for one input, for
// `mandate explain`. Decision.Err and Limiter.Check turn refusals into
// *DeniedError and *RateLimitedError, whose messages are safe to send to
// clients (no rule names, no hidden detail).
package policy
