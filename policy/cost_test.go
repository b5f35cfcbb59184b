package policy

import (
	"context"
	"strings"
	"testing"
	"time"
)

// bigArguments is a ~39 KB argument object: a list of 8000 numbers.
func bigArguments() map[string]any {
	items := make([]any, 8000)
	for i := range items {
		items[i] = float64(10000 + i)
	}
	return map[string]any{"items": items}
}

const nestedRule = `arguments.items.exists(x, arguments.items.exists(y, x == y + 100000.0))`

// A rule with a nested comprehension over a big argument object is cut off
// at the cost limit, and the call is denied (fail closed), whatever the
// rule's effect and the default, with a reason that says why. Listing and
// Explain stop at the limit too.
func TestCostLimitDenies(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"deny rule, then allow", Config{Default: "deny", Rules: []Rule{
			{Name: "expensive", Effect: "deny", When: nestedRule},
			{Name: "everyone", Effect: "allow", When: `true`},
		}}},
		{"allow rule, default allow", Config{Default: "allow", Rules: []Rule{
			{Name: "expensive", Effect: "allow", When: nestedRule},
		}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			eng := mustCompile(t, c.cfg)
			in := Input{Upstream: "crm", Method: "tools/call", Tool: "t", Arguments: bigArguments()}
			d := eng.Evaluate(context.Background(), in)
			if d.Allow || d.Rule != "expensive" || !strings.Contains(d.Reason, "cost limit") {
				t.Errorf("decision %+v, want a denial by rule expensive for exceeding the cost limit", d)
			}
			tr := eng.Explain(in)
			if tr[0].Outcome != OutcomeError || !tr[0].Decisive || !strings.Contains(tr[0].Error, "cost limit") {
				t.Errorf("explain %+v, want rule expensive decisive with a cost limit error", tr[0])
			}
		})
	}
}

// The cost limit does not stand in the way of ordinary rules that iterate
// over arguments.
func TestCostLimitOrdinary(t *testing.T) {
	eng := mustCompile(t, Config{Rules: []Rule{
		{Name: "no-big-ids", Effect: "deny", When: `arguments.items.exists(x, x > 1000000.0)`},
		{Name: "everyone", Effect: "allow", When: `true`},
	}})
	d := eng.Evaluate(context.Background(), Input{Arguments: bigArguments()})
	if !d.Allow || d.Rule != "everyone" {
		t.Errorf("decision %+v, want allow by everyone", d)
	}
}

// Evaluation stops when the request's context ends (here: before it
// starts), with a denial whatever the rule's effect.
func TestEvaluateInterruptedByContext(t *testing.T) {
	eng := mustCompile(t, Config{Default: "allow", Rules: []Rule{
		{Name: "loop", Effect: "allow", When: `arguments.items.all(x, x > 0.0)`},
	}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d := eng.Evaluate(ctx, Input{Arguments: bigArguments()})
	if d.Allow || d.Rule != "loop" || !strings.Contains(d.Reason, "interrupted") {
		t.Errorf("decision %+v, want a denial by rule loop, interrupted", d)
	}
	// A deadline that passes mid-evaluation.
	eng = mustCompile(t, Config{Default: "allow", Rules: []Rule{
		{Name: "loop", Effect: "allow", When: `arguments.items.all(x, arguments.items.all(y, x > 0.0))`},
	}})
	ctx, cancel = context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	d = eng.Evaluate(ctx, Input{Arguments: bigArguments()})
	if d.Allow || d.Rule != "loop" {
		t.Errorf("decision %+v, want a denial by rule loop", d)
	}
}
