package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
)

// fuzzPolicy touches claims and arguments in many ways: nested access,
// optionals, comprehensions, string functions, numeric comparisons.
var fuzzPolicy = Config{Default: "allow", Rules: []Rule{
	{Name: "nested", Effect: "deny", When: `has(user.claims.org) && user.claims.org.unit.name == "x"`},
	{Name: "any-arg", Effect: "allow", When: `arguments.exists(k, k.startsWith("safe_") && arguments[k] == true)`},
	{Name: "amount", Effect: "deny", When: `tool == "pay" && arguments.amount > 100`},
	{Name: "opt", Effect: "allow", When: `user.claims.?level.orValue(0) >= 3`},
	{Name: "list", Effect: "deny", When: `"blocked" in user.claims.tags`},
	{Name: "strs", Effect: "deny", When: `string(arguments.q).lowerAscii().contains("drop")`},
	{Name: "types", Effect: "allow", When: `type(arguments.v) == list && size(arguments.v) > 2`},
	{Name: "every", Effect: "deny", When: `user.roles.all(r, r != "") && arguments.all(k, size(k) < 4)`},
}}

// FuzzEvaluate feeds arbitrary JSON claims and arguments (as the gateway
// gets them from tokens and tools/call) through Evaluate, Visible and
// Explain: nothing panics, decisions are deterministic, a hidden tool is
// never callable, and Explain agrees with Evaluate.
func FuzzEvaluate(f *testing.F) {
	eng := mustCompile(f, fuzzPolicy)
	f.Add([]byte(`{"level":3,"tags":["a"]}`), []byte(`{"amount":5}`), "pay", false)
	f.Add([]byte(`{"org":{"unit":{"name":"x"}}}`), []byte(`{"safe_x":true}`), "t", true)
	f.Add([]byte(`null`), []byte(`{"q":"DROP TABLE","v":[1,2,3]}`), "", false)
	f.Fuzz(func(t *testing.T, claimsJSON, argsJSON []byte, tool string, useNumber bool) {
		claims, ok1 := decodeObject(claimsJSON, useNumber)
		args, ok2 := decodeObject(argsJSON, useNumber)
		if !ok1 || !ok2 {
			return
		}
		in := Input{
			User:     UserInput{Subject: "s", Roles: []string{"r", tool}, Claims: claims},
			Upstream: "u", Method: "tools/call", Tool: tool, Arguments: args,
		}
		d1 := eng.Evaluate(context.Background(), in)
		d2 := eng.Evaluate(context.Background(), in)
		if d1 != d2 {
			t.Fatalf("non-deterministic: %+v vs %+v", d1, d2)
		}
		v := eng.Visible(in)
		if !v.Allow && d1.Allow {
			t.Fatalf("hidden but callable: Visible %+v, Evaluate %+v", v, d1)
		}
		var decisive string
		for _, tr := range eng.Explain(in) {
			if tr.Decisive {
				decisive = tr.Rule
			}
		}
		if decisive != d1.Rule {
			t.Fatalf("Explain decisive %q, Evaluate rule %q", decisive, d1.Rule)
		}
	})
}

func decodeObject(data []byte, useNumber bool) (map[string]any, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if useNumber {
		dec.UseNumber()
	}
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, false
	}
	return m, true
}
