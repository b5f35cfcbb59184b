package policy

import (
	"context"
	"testing"
)

// TestReadsArguments: whether a policy reads `arguments` comes from the
// checked expressions, so text that merely mentions the word (a string
// literal, a comment, a field of another variable, a comprehension
// variable of that name) does not make every call decode its arguments.
func TestReadsArguments(t *testing.T) {
	tests := []struct {
		name  string
		rules []string
		want  bool
	}{
		{"no rules", nil, false},
		{"string literal", []string{`tool == "arguments"`}, false},
		{"comment", []string{"tool == \"x\" // checks arguments later\n"}, false},
		{"claim named arguments", []string{`user.claims.arguments == "x"`}, false},
		{"has on a claim named arguments", []string{`has(user.claims.arguments)`}, false},
		{"comprehension variable shadows", []string{`["a"].exists(arguments, arguments == tool)`}, false},
		{"has", []string{`has(arguments.x)`}, true},
		{"select", []string{`arguments.limit <= 100`}, true},
		{"index", []string{`arguments["limit"] <= 100`}, true},
		{"in", []string{`"limit" in arguments`}, true},
		{"size", []string{`size(arguments) == 0`}, true},
		{"optional", []string{`arguments.?limit.orValue(0) <= 100`}, true},
		{"inside a comprehension", []string{`user.roles.exists(r, r in arguments)`}, true},
		{"comprehension over arguments", []string{`arguments.all(k, k != "sql")`}, true},
		{"root-scoped while shadowed", []string{`["a"].exists(arguments, .arguments.size() > 0)`}, true},
		{"accumulator scope ends", []string{`[1].map(arguments, arguments).size() == 1 && has(arguments.x)`}, true},
		{"second rule", []string{`tool == "arguments"`, `has(arguments.q)`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{}
			for i, w := range tt.rules {
				c.Rules = append(c.Rules, Rule{Name: string(rune('a' + i)), Effect: EffectAllow, When: w})
			}
			e := mustCompile(t, c)
			if got := e.ReadsArguments(); got != tt.want {
				t.Errorf("ReadsArguments() = %v, want %v for %q", got, tt.want, tt.rules)
			}
			if tt.want {
				return
			}
			// A policy that does not read arguments decides the same
			// whatever they are.
			in := Input{Method: "tools/call", Tool: "a", User: UserInput{Roles: []string{"x"}, Claims: map[string]any{"arguments": "x"}}}
			without := e.Evaluate(context.Background(), in)
			in.Arguments = map[string]any{"x": 1, "limit": 5, "a": "a"}
			if with := e.Evaluate(context.Background(), in); with != without {
				t.Errorf("decision depends on arguments: %+v without, %+v with", without, with)
			}
		})
	}
	var nilEngine *Engine
	if nilEngine.ReadsArguments() {
		t.Error("nil Engine reads arguments")
	}
}
