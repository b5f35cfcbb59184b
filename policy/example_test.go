package policy_test

import (
	"context"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/policy"
)

const exampleYAML = `
default: deny
rules:
  - name: no-large-refunds
    effect: deny
    when: 'tool == "refund" && arguments.amount > 1000'
  - name: support-refunds
    effect: allow
    when: 'tool == "refund" && "support" in user.roles'
  - name: sales-use-salesforce
    effect: allow
    when: 'upstream == "salesforce" && "sales" in user.roles'
rate_limits:
  - {upstream: salesforce, requests_per_second: 5, burst: 10}
`

func Example() {
	var cfg policy.Config
	dec := yaml.NewDecoder(strings.NewReader(exampleYAML))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		panic(err)
	}
	eng, err := policy.Compile(cfg)
	if err != nil {
		panic(err)
	}
	support := policy.UserInput{Subject: "sam", Roles: []string{"support"}}

	// tools/list: is the refund tool shown to sam?
	fmt.Println(eng.Visible(policy.Input{User: support, Upstream: "pay", Method: "tools/list", Tool: "refund"}))
	// tools/call with real arguments.
	call := policy.Input{User: support, Upstream: "pay", Method: "tools/call", Tool: "refund"}
	call.Arguments = map[string]any{"amount": 50.0}
	fmt.Println(eng.Evaluate(context.Background(), call))
	call.Arguments = map[string]any{"amount": 5000.0}
	fmt.Println(eng.Evaluate(context.Background(), call))
	call.User.Roles = nil
	call.Arguments = map[string]any{"amount": 50.0}
	fmt.Println(eng.Evaluate(context.Background(), call))
	// Output:
	// {true support-refunds rule "support-refunds" (allow)}
	// {true support-refunds rule "support-refunds" (allow)}
	// {false no-large-refunds rule "no-large-refunds" (deny)}
	// {false  default deny}
}

func ExampleCompile_errors() {
	_, err := policy.Compile(policy.Config{Rules: []policy.Rule{
		{Name: "sales", Effect: "allow", When: `"sales" in usr.roles`},
		{Name: "sales", Effect: "permit", When: `tool`},
	}})
	fmt.Println(err)
	// Output:
	// policy.rules[0] (sales).when: line 1, column 12: undeclared reference to 'usr' (did you mean 'user'?)
	// policy.rules[1] (sales).name: duplicate of policy.rules[0]
	// policy.rules[1] (sales).effect: must be "allow" or "deny", got "permit"
	// policy.rules[1] (sales).when: expression has type string, want bool (compare explicitly, e.g. user.claims.admin == true)
}

func ExampleEngine_Explain() {
	eng, _ := policy.Compile(policy.Config{Rules: []policy.Rule{
		{Name: "eng-only", Effect: "deny", When: `user.claims.department != "eng"`},
		{Name: "anyone", Effect: "allow", When: `true`},
	}})
	for _, tr := range eng.Explain(policy.Input{User: policy.UserInput{Subject: "x"}}) {
		fmt.Printf("%s %s: %s %s decisive=%v\n", tr.Rule, tr.Effect, tr.Outcome, tr.Error, tr.Decisive)
	}
	// Output:
	// eng-only deny: error no such key: department decisive=true
	// anyone allow: matched  decisive=false
}

func ExampleLimiter() {
	lim, err := policy.NewLimiter([]policy.RateLimit{{Upstream: "salesforce", RequestsPerSecond: 1, Burst: 2}}, policy.LimiterOptions{})
	if err != nil {
		panic(err)
	}
	for range 3 {
		ok, retry := lim.Allow("issuer\x00alice", "salesforce")
		fmt.Println(ok, retry > 0)
	}
	// Output:
	// true false
	// true false
	// false true
}
