package policy

import (
	"errors"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	ok := Rule{Name: "ok", Effect: "allow", When: "true"}
	tests := []struct {
		name string
		cfg  Config
		want []string // every line of the joined error, in order
	}{
		{
			name: "unknown variable",
			cfg: Config{Rules: []Rule{ok, ok2("b"), {Name: "sales-use-salesforce", Effect: "allow",
				When: `upstream == "x" && usr.roles == []`}}},
			want: []string{`policy.rules[2] (sales-use-salesforce).when: line 1, column 20: undeclared reference to 'usr' (did you mean 'user'?)`},
		},
		{
			name: "unknown user field",
			cfg:  Config{Rules: []Rule{{Name: "r", Effect: "deny", When: `"x" in user.rols`}}},
			want: []string{`policy.rules[0] (r).when: line 1, column 12: undefined field 'rols'`},
		},
		{
			name: "position on a later line",
			cfg:  Config{Rules: []Rule{{Name: "multi", Effect: "deny", When: "upstream == \"a\" &&\n  tol == \"b\""}}},
			want: []string{`policy.rules[0] (multi).when: line 2, column 3: undeclared reference to 'tol' (did you mean 'tool'?)`},
		},
		{
			name: "syntax error",
			cfg:  Config{Rules: []Rule{{Name: "syn", Effect: "deny", When: `tool == "a" &&`}}},
			want: []string{`policy.rules[0] (syn).when: line 1, column 15: Syntax error: mismatched input '<EOF>'`},
		},
		{
			name: "non-bool result",
			cfg:  Config{Rules: []Rule{{Name: "s", Effect: "deny", When: `tool + "x"`}}},
			want: []string{`policy.rules[0] (s).when: expression has type string, want bool`},
		},
		{
			name: "dyn result is not bool",
			cfg:  Config{Rules: []Rule{{Name: "d", Effect: "deny", When: `user.claims.admin`}}},
			want: []string{`policy.rules[0] (d).when: expression has type dyn, want bool (compare explicitly, e.g. user.claims.admin == true)`},
		},
		{
			name: "wrong operand types",
			cfg:  Config{Rules: []Rule{{Name: "t", Effect: "deny", When: `tool > 3`}}},
			want: []string{`policy.rules[0] (t).when: line 1, column 6: found no matching overload for '_>_' applied to '(string, int)'`},
		},
		{
			name: "duplicate names, bad effect, bad default, missing name and when",
			cfg: Config{Default: "block", Rules: []Rule{
				ok,
				{Name: "ok", Effect: "allow", When: "true"},
				{Name: "e", Effect: "permit", When: "true"},
				{Effect: "deny", When: "true"},
				{Name: "w", Effect: "deny", When: "  "},
			}},
			want: []string{
				`policy.default: must be "deny" or "allow", got "block"`,
				`policy.rules[1] (ok).name: duplicate of policy.rules[0]`,
				`policy.rules[2] (e).effect: must be "allow" or "deny", got "permit"`,
				`policy.rules[3].name: required`,
				`policy.rules[4] (w).when: required (a CEL expression of type bool)`,
			},
		},
		{
			name: "every broken rule is reported",
			cfg: Config{Rules: []Rule{
				{Name: "a", Effect: "deny", When: `x == 1`},
				{Name: "b", Effect: "deny", When: `y == 1`},
			}},
			want: []string{
				`policy.rules[0] (a).when: line 1, column 1: undeclared reference to 'x'`,
				`policy.rules[1] (b).when: line 1, column 1: undeclared reference to 'y'`,
			},
		},
		{
			name: "rate limits",
			cfg: Config{RateLimits: []RateLimit{
				{Upstream: "crm", RequestsPerSecond: 1},
				{Upstream: "crm", RequestsPerSecond: 0, Burst: -1},
				{RequestsPerSecond: 1},
			}},
			want: []string{
				`policy.rate_limits[1] (crm).upstream: duplicate of policy.rate_limits[0]`,
				`policy.rate_limits[1] (crm).requests_per_second: must be a finite number > 0, got 0`,
				`policy.rate_limits[1] (crm).burst: must be >= 0 (0 means max(1, ceil(requests_per_second))), got -1`,
				`policy.rate_limits[2].upstream: required (an upstream name or "*")`,
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			eng, err := Compile(tc.cfg)
			if err == nil {
				t.Fatalf("Compile succeeded (%v), want errors %q", eng, tc.want)
			}
			if eng != nil {
				t.Error("Compile returned an engine with an error")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("got %d error lines, want %d:\n%s", len(lines), len(tc.want), err)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("error line %d:\n got  %s\n want %s…", i, lines[i], w)
				}
			}
			if err := tc.cfg.Validate(); err == nil {
				t.Error("Validate accepted what Compile refused")
			}
		})
	}
}

func ok2(name string) Rule { return Rule{Name: name, Effect: "deny", When: "false"} }

func TestCompileErrorsAreJoined(t *testing.T) {
	t.Parallel()
	_, err := Compile(Config{Default: "x", Rules: []Rule{{Name: "a", Effect: "deny", When: "nope"}}})
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != 2 {
		t.Fatalf("want an errors.Join of 2 errors, got %T %v", err, err)
	}
}
