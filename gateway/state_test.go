package gateway

import (
	"testing"

	"github.com/mandate-gw/mandate/policy"
)

// TestStateUsesArgsFromPolicy: calls decode their arguments for policy
// only when a rule's compiled expression reads `arguments`, not when the
// word merely appears in a rule's text.
func TestStateUsesArgsFromPolicy(t *testing.T) {
	tests := []struct {
		when string
		want bool
	}{
		{`tool == "arguments"`, false},
		{"upstream == \"crm\" // arguments are not read\n", false},
		{`has(user.claims.arguments)`, false},
		{`tool == "x"`, false},
		{`has(arguments.x)`, true},
		{`arguments.limit <= 10`, true},
	}
	for _, tt := range tests {
		cfg := &Config{}
		cfg.Catalog.WhoAmI.Disabled = true
		cfg.Policy.Rules = []policy.Rule{{Name: "r", Effect: policy.EffectAllow, When: tt.when}}
		st, err := (&Gateway{}).buildState(cfg, 1)
		if err != nil {
			t.Fatalf("%q: %v", tt.when, err)
		}
		if st.UsesArgs != tt.want {
			t.Errorf("%q: usesArgs = %v, want %v", tt.when, st.UsesArgs, tt.want)
		}
	}
}
