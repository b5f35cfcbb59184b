package policy

import (
	"strings"

	celast "cel.dev/cel-go/common/ast"
)

// ReadsArguments reports whether some rule reads the `arguments`
// variable. When none does, a decision does not depend on a call's
// arguments, so callers need not decode them for policy. It is answered
// from the checked expressions, not the rule text: the word in a string
// literal, a comment, a field (user.claims.arguments) or a comprehension
// variable of that name does not count. A nil Engine reads nothing.
func (e *Engine) ReadsArguments() bool {
	return e != nil && e.readsArgs
}

// argumentsVar is the name of the variable ReadsArguments looks for.
const argumentsVar = "arguments"

// readsArguments reports whether the checked expression x refers to the
// global `arguments` variable. The checker has already resolved every
// identifier: a reference to the global is named "arguments", or
// ".arguments" when a local of that name would otherwise shadow it; a
// comprehension variable named "arguments" is told apart by scope, which
// follows the checker's (iteration variables in the loop condition and
// step, the accumulator there and in the result).
func readsArguments(x celast.Expr) bool {
	var locals []string
	var walk func(celast.Expr) bool
	shadowed := func() bool {
		for _, l := range locals {
			if l == argumentsVar {
				return true
			}
		}
		return false
	}
	walk = func(x celast.Expr) bool {
		if x == nil {
			return false
		}
		switch x.Kind() {
		case celast.IdentKind:
			name := x.AsIdent()
			if strings.HasPrefix(name, ".") {
				return name[1:] == argumentsVar
			}
			return name == argumentsVar && !shadowed()
		case celast.SelectKind:
			return walk(x.AsSelect().Operand())
		case celast.CallKind:
			c := x.AsCall()
			if c.IsMemberFunction() && walk(c.Target()) {
				return true
			}
			for _, a := range c.Args() {
				if walk(a) {
					return true
				}
			}
		case celast.ListKind:
			for _, el := range x.AsList().Elements() {
				if walk(el) {
					return true
				}
			}
		case celast.MapKind:
			for _, en := range x.AsMap().Entries() {
				if m := en.AsMapEntry(); walk(m.Key()) || walk(m.Value()) {
					return true
				}
			}
		case celast.StructKind:
			for _, f := range x.AsStruct().Fields() {
				if walk(f.AsStructField().Value()) {
					return true
				}
			}
		case celast.ComprehensionKind:
			c := x.AsComprehension()
			if walk(c.IterRange()) || walk(c.AccuInit()) {
				return true
			}
			n := len(locals)
			locals = append(locals, c.AccuVar(), c.IterVar())
			if c.HasIterVar2() {
				locals = append(locals, c.IterVar2())
			}
			inLoop := walk(c.LoopCondition()) || walk(c.LoopStep())
			locals = append(locals[:n], c.AccuVar())
			inResult := walk(c.Result())
			locals = locals[:n]
			return inLoop || inResult
		}
		return false
	}
	return walk(x)
}
