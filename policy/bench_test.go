package policy

import (
	"context"
	"testing"
)

// benchPolicy is a realistic five-rule policy; the benchmark input is
// decided by the fourth rule, so four rules are evaluated.
var benchPolicy = Config{Default: "deny", Rules: []Rule{
	{Name: "block-contractors", Effect: "deny", When: `"contractor" in user.groups`},
	{Name: "no-large-refunds", Effect: "deny", When: `tool == "refund" && arguments.amount > 1000`},
	{Name: "finance-ledger", Effect: "allow", When: `upstream == "ledger" && user.claims.?department.orValue("") == "finance"`},
	{Name: "sales-use-salesforce", Effect: "allow", When: `upstream == "salesforce" && "sales" in user.roles`},
	{Name: "staff-read", Effect: "allow", When: `user.email.endsWith("@example.com") && method == "resources/read"`},
}}

var benchInput = Input{
	User: UserInput{Subject: "alice", Email: "alice@example.com", Issuer: "https://idp.example/",
		Roles: []string{"employee", "sales"}, Groups: []string{"emea", "staff"},
		Claims: map[string]any{"department": "sales", "sub": "alice"}},
	Upstream: "salesforce", Method: "tools/call", Tool: "query",
	Arguments: map[string]any{"soql": "SELECT Id FROM Account LIMIT 10"},
}

func BenchmarkEvaluate(b *testing.B) {
	eng := mustCompile(b, benchPolicy)
	if d := eng.Evaluate(context.Background(), benchInput); !d.Allow || d.Rule != "sales-use-salesforce" {
		b.Fatalf("unexpected decision %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		eng.Evaluate(context.Background(), benchInput)
	}
}

func BenchmarkEvaluateParallel(b *testing.B) {
	eng := mustCompile(b, benchPolicy)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			eng.Evaluate(context.Background(), benchInput)
		}
	})
}

func BenchmarkVisible(b *testing.B) {
	eng := mustCompile(b, benchPolicy)
	in := benchInput
	in.Method, in.Arguments = "tools/list", nil
	if d := eng.Visible(in); !d.Allow {
		b.Fatalf("unexpected decision %+v", d)
	}
	b.ReportAllocs()
	for b.Loop() {
		eng.Visible(in)
	}
}

func BenchmarkLimiterAllow(b *testing.B) {
	l, err := NewLimiter([]RateLimit{{Upstream: "*", RequestsPerSecond: 1e9, Burst: 1 << 30}}, LimiterOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		l.Allow("https://idp.example/\x00alice", "salesforce")
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(benchPolicy); err != nil {
			b.Fatal(err)
		}
	}
}
