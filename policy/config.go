package policy

import (
	"errors"
	"fmt"
	"math"
)

// Effects and defaults. The yaml spellings are public API.
const (
	// EffectAllow grants the request when a rule's `when` is true.
	EffectAllow = "allow"
	// EffectDeny refuses the request when a rule's `when` is true (or fails).
	EffectDeny = "deny"
	// DefaultEffect is the effect applied when no rule matches and
	// Config.Default is empty.
	DefaultEffect = EffectDeny
	// AllUpstreams in RateLimit.Upstream applies a limit to every upstream
	// that has no limit of its own.
	AllUpstreams = "*"
)

// Config is the `policy:` section of the Mandate configuration.
//
//	policy:
//	  default: deny
//	  rules:
//	    - name: sales-use-salesforce
//	      effect: allow
//	      when: 'upstream == "salesforce" && "sales" in user.roles'
//	  rate_limits:
//	    - upstream: salesforce
//	      requests_per_second: 5
//	      burst: 10
type Config struct {
	// Default is the effect when no rule matches: "deny" (the default when
	// empty) or "allow".
	Default string `yaml:"default" json:"default,omitempty"`
	// Rules are evaluated in order; the first rule whose `when` is true
	// decides.
	Rules []Rule `yaml:"rules" json:"rules,omitempty"`
	// RateLimits are per-user token buckets, one per (user, upstream).
	RateLimits []RateLimit `yaml:"rate_limits" json:"rate_limits,omitempty"`
}

// Rule is one ordered policy rule.
type Rule struct {
	// Name identifies the rule in decisions, audit records and errors.
	// Required and unique within the policy.
	Name string `yaml:"name" json:"name"`
	// Effect is "allow" or "deny". Required.
	Effect string `yaml:"effect" json:"effect"`
	// When is a CEL expression of type bool over the variables user,
	// upstream, method, tool, resource, prompt and arguments (see the
	// package documentation). Required.
	When string `yaml:"when" json:"when"`
	// Description is free text for humans; it has no effect.
	Description string `yaml:"description" json:"description,omitempty"`
}

// RateLimit limits how fast each user may call one upstream.
type RateLimit struct {
	// Upstream is an upstream name, or "*" for every upstream without a
	// limit of its own. Each upstream gets its own bucket per user, also
	// under "*". Required; at most one entry per upstream.
	Upstream string `yaml:"upstream" json:"upstream"`
	// RequestsPerSecond is the sustained rate (tokens added per second).
	// Must be > 0; fractions are allowed (0.5 = one request every 2 s).
	RequestsPerSecond float64 `yaml:"requests_per_second" json:"requests_per_second"`
	// Burst is the bucket size: how many requests may run back to back.
	// Zero means max(1, ceil(requests_per_second)).
	Burst int `yaml:"burst" json:"burst,omitempty"`
}

// effectiveBurst applies the documented default for Burst.
func (r RateLimit) effectiveBurst() int {
	if r.Burst > 0 {
		return r.Burst
	}
	return max(1, int(math.Ceil(r.RequestsPerSecond)))
}

// Validate reports every problem in c (rule syntax and types included),
// each with its path, joined with errors.Join. It has no side effects.
func (c Config) Validate() error {
	_, err := Compile(c)
	return err
}

// validateRateLimits checks limits; paths are prefixed with "policy.".
func validateRateLimits(limits []RateLimit) error {
	var errs []error
	seen := make(map[string]int, len(limits))
	for i, l := range limits {
		path := fmt.Sprintf("policy.rate_limits[%d]", i)
		if l.Upstream == "" {
			errs = append(errs, fmt.Errorf("%s.upstream: required (an upstream name or %q)", path, AllUpstreams))
		} else {
			path = fmt.Sprintf("%s (%s)", path, l.Upstream)
			if j, dup := seen[l.Upstream]; dup {
				errs = append(errs, fmt.Errorf("%s.upstream: duplicate of policy.rate_limits[%d]", path, j))
			} else {
				seen[l.Upstream] = i
			}
		}
		if !(l.RequestsPerSecond > 0) || math.IsInf(l.RequestsPerSecond, 0) {
			errs = append(errs, fmt.Errorf("%s.requests_per_second: must be a finite number > 0, got %v", path, l.RequestsPerSecond))
		}
		if l.Burst < 0 {
			errs = append(errs, fmt.Errorf("%s.burst: must be >= 0 (0 means max(1, ceil(requests_per_second))), got %d", path, l.Burst))
		}
	}
	return errors.Join(errs...)
}
