package policy

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// Atoms for generated rules. Some fail at run time on some inputs (missing
// claim, no groups, missing or mistyped argument) so fail-closed paths are
// exercised too.
var (
	plainAtoms = []string{
		`upstream == "a"`, `upstream == "b"`, `tool == "t1"`, `tool == "t2"`,
		`"sales" in user.roles`, `"admin" in user.roles`,
		`user.claims.dept == "eng"`, `has(user.claims.dept)`,
		`method == "tools/call"`, `user.email.endsWith("@example.com")`,
		`1 / size(user.groups) == 1`, `true`, `false`,
	}
	argAtoms = []string{
		`arguments.amount > 100`, `has(arguments.amount) && arguments.amount < 50`,
		`arguments.mode == "read"`, `size(arguments) == 0`, `!has(arguments.force)`,
		`"x" in arguments`, `arguments.?mode.orValue("") == "write"`,
		`arguments.all(k, k != "force")`,
	}
	argSets = []map[string]any{
		nil, {}, {"amount": 10.0}, {"amount": 500.0}, {"amount": "x"},
		{"mode": "read"}, {"mode": "write", "force": true}, {"x": 1, "amount": 75.0},
		{"mode": "read", "amount": 10.0}, {"force": false},
	}
)

func genExpr(r *rand.Rand, atoms []string, depth int) string {
	if depth == 0 || r.IntN(3) == 0 {
		return atoms[r.IntN(len(atoms))]
	}
	switch r.IntN(3) {
	case 0:
		return "(" + genExpr(r, atoms, depth-1) + ") && (" + genExpr(r, atoms, depth-1) + ")"
	case 1:
		return "(" + genExpr(r, atoms, depth-1) + ") || (" + genExpr(r, atoms, depth-1) + ")"
	default:
		return "!(" + genExpr(r, atoms, depth-1) + ")"
	}
}

func genPolicy(r *rand.Rand, atoms []string) Config {
	c := Config{Default: []string{"allow", "deny"}[r.IntN(2)]}
	for i := range 1 + r.IntN(5) {
		c.Rules = append(c.Rules, Rule{
			Name:   fmt.Sprintf("r%d", i),
			Effect: []string{"allow", "deny"}[r.IntN(2)],
			When:   genExpr(r, atoms, 2),
		})
	}
	return c
}

func pick[T any](r *rand.Rand, xs ...T) T { return xs[r.IntN(len(xs))] }

func genInput(r *rand.Rand) Input {
	u := UserInput{
		Subject: "u",
		Email:   pick(r, "", "a@example.com", "b@evil.test"),
		Roles:   pick(r, nil, []string{"sales"}, []string{"admin", "sales"}, []string{"ops"}),
		Groups:  pick(r, nil, []string{"g"}, []string{"g", "h"}),
		Claims:  pick(r, nil, map[string]any{}, map[string]any{"dept": "eng"}, map[string]any{"dept": 3.0}),
	}
	return Input{User: u, Upstream: pick(r, "a", "b", "c"), Method: "tools/list", Tool: pick(r, "t1", "t2", "t3")}
}

// TestListCallConsistency checks, over generated policies and inputs, the
// contract documented on Engine.Visible:
//
//  1. never misses: a tool Visible hides is denied by Evaluate for every
//     arguments value tried (nil and empty included);
//  2. never shows the forbidden: when no argument-dependent rule is on the
//     deciding path, Visible equals Evaluate for every arguments value, so
//     in particular a visible tool's call with no or empty arguments is
//     allowed by the same rule;
//  3. for policies that never mention `arguments`, (2) applies to every
//     input.
func TestListCallConsistency(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name     string
		atoms    []string
		withArgs bool
	}{
		{"without arguments", plainAtoms, false},
		{"with arguments", append(append([]string{}, plainAtoms...), argAtoms...), true},
	} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(42, uint64(len(mode.atoms))))
			var hidden, exact, argDep, argDepWitnessed int
			for range 400 {
				cfg := genPolicy(r, mode.atoms)
				eng := mustCompile(t, cfg)
				for range 25 {
					in := genInput(r)
					vis, dep := eng.visible(in)
					if dep && !mode.withArgs {
						t.Fatalf("argument-free policy reported an argument dependency:\n%s", describe(cfg, in))
					}
					call := in
					call.Method = "tools/call"
					witnessed := false
					for _, args := range argSets {
						call.Arguments = args
						d := eng.Evaluate(context.Background(), call)
						if !vis.Allow && d.Allow {
							t.Fatalf("hidden tool is callable with arguments %v: Visible %+v, Evaluate %+v\n%s", args, vis, d, describe(cfg, in))
						}
						if !dep && d != vis {
							t.Fatalf("argument-independent decision differs for arguments %v: Visible %+v, Evaluate %+v\n%s", args, vis, d, describe(cfg, in))
						}
						witnessed = witnessed || d.Allow
					}
					switch {
					case !vis.Allow:
						hidden++
					case !dep:
						exact++
					default:
						argDep++
						if witnessed {
							argDepWitnessed++
						}
					}
				}
			}
			t.Logf("hidden=%d visible(exact)=%d visible(argument-dependent)=%d of which some tried arguments allowed=%d",
				hidden, exact, argDep, argDepWitnessed)
			if hidden == 0 || exact == 0 {
				t.Errorf("generator too weak: hidden=%d exact=%d", hidden, exact)
			}
			if mode.withArgs && argDep == 0 {
				t.Error("generator produced no argument-dependent decision")
			}
		})
	}
}

func describe(c Config, in Input) string {
	var b strings.Builder
	fmt.Fprintf(&b, "default %s\n", c.Default)
	for _, r := range c.Rules {
		fmt.Fprintf(&b, "  %s %s: %s\n", r.Name, r.Effect, r.When)
	}
	fmt.Fprintf(&b, "input %+v", in)
	return b.String()
}
