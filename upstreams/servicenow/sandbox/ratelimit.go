package sandbox

// Inbound REST API rate limiting: hourly rules per user, per role or for
// all users, with the documented headers and 429 answer.

import (
	"net/http"
	"strconv"
)

// RuleAllUsers is the sys_id of the rule Options.RateLimitPerHour defines.
const RuleAllUsers = "7a1e0c53c3112210a6f1b2e4c8d9e001"

// RateLimitRule is a row of Rate Limit Rules [sys_rate_limit_rules]: at
// most PerHour Table API requests per user per clock hour, for one user
// (UserName), for users with a role (Role), or, with neither, for all
// users.
type RateLimitRule struct {
	SysID    string // X-RateLimit-Rule; 32 hex characters
	UserName string
	Role     string
	PerHour  int
}

func rateRules(opts *Options) []RateLimitRule {
	var rules []RateLimitRule
	if opts.RateLimitPerHour > 0 {
		rules = append(rules, RateLimitRule{SysID: RuleAllUsers, PerHour: opts.RateLimitPerHour})
	}
	for _, r := range opts.RateLimitRules {
		if r.PerHour > 0 {
			rules = append(rules, r)
		}
	}
	return rules
}

// ruleFor picks the rule that applies to u, by the documented priority
// (ServiceNow docs, "Inbound REST API rate limiting"): a rule for the single
// user overrides rules for users with a role, which override rules for all
// users; among several role rules that match, the one allowing the fewest
// requests applies. nil when no rule matches.
func (s *Server) ruleFor(u *User) *RateLimitRule {
	var user, role, all *RateLimitRule
	for i := range s.rateRules {
		r := &s.rateRules[i]
		switch {
		case r.UserName != "":
			if r.UserName == u.UserName && (user == nil || r.PerHour < user.PerHour) {
				user = r
			}
		case r.Role != "":
			if u.hasRole(r.Role) && (role == nil || r.PerHour < role.PerHour) {
				role = r
			}
		default:
			if all == nil || r.PerHour < all.PerHour {
				all = r
			}
		}
	}
	switch {
	case user != nil:
		return user
	case role != nil:
		return role
	}
	return all
}

// allowRequest counts the request against the rule that applies to u and
// answers 429 when the rule's hourly allowance is spent. Per the same docs
// page, a request that matches a rule carries X-RateLimit-Limit (requests
// allowed per hour), X-RateLimit-Reset (UNIX time the window resets) and
// X-RateLimit-Rule (the rule's sys_id); one over the limit answers 429 Too
// Many Requests with Retry-After (seconds to wait) and an error message in
// the usual error body. The page documents no X-RateLimit-Remaining, so a
// client cannot rely on one and the sandbox sends none.
func (s *Server) allowRequest(w http.ResponseWriter, u *User) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	rule := s.ruleFor(u)
	if rule == nil {
		return true
	}
	now := s.now()
	hour := now.Unix() / 3600
	if hour != s.rateHour {
		s.rateHour = hour
		clear(s.rateCount)
	}
	reset := (hour + 1) * 3600
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(rule.PerHour))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset, 10))
	h.Set("X-RateLimit-Rule", rule.SysID)
	key := rule.SysID + "/" + u.SysID
	if s.rateCount[key] >= rule.PerHour {
		h.Set("Retry-After", strconv.FormatInt(max(reset-now.Unix(), 1), 10))
		writeError(w, http.StatusTooManyRequests, "Too Many Requests",
			"Rate limit of "+strconv.Itoa(rule.PerHour)+" requests per hour exceeded for user "+u.UserName)
		return false
	}
	s.rateCount[key]++
	return true
}
