package policy

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"

	"github.com/mandate-gw/mandate/internal/identity"
)

// Input is what a decision is made about: who asks to do what, where.
// The zero value is a valid (anonymous, empty) input.
type Input struct {
	// User is the caller.
	User UserInput
	// Upstream is the upstream's configured name.
	Upstream string
	// Method is the MCP method, e.g. "tools/call", "resources/read",
	// "prompts/get". Visible maps list methods to their call method.
	Method string
	// Tool, Resource and Prompt name the target as the upstream knows it
	// (not namespaced by Mandate); Resource is the URI. Unused ones are "".
	Tool, Resource, Prompt string
	// Arguments are the call's arguments as decoded JSON; nil when listing
	// or when the call has none (CEL sees an empty map either way).
	Arguments map[string]any
}

// UserInput is the `user` variable of a rule. The cel tags are the field
// names rules use (user.subject, user.roles, user.claims.department, ...);
// a misspelt field is a compile error.
type UserInput struct {
	Subject string   `cel:"subject"`
	Email   string   `cel:"email"`
	Issuer  string   `cel:"issuer"`
	Roles   []string `cel:"roles"`
	Groups  []string `cel:"groups"`
	Scopes  []string `cel:"scopes"`
	// Claims are every claim of the inbound token (decoded JSON); rules
	// read them as user.claims.name (dyn).
	Claims map[string]any `cel:"claims"`
}

// UserFrom builds the `user` variable from the authenticated identity.
// A nil identity gives the zero UserInput. The slices and map are shared,
// not copied; identities are immutable.
func UserFrom(id *identity.Identity) UserInput {
	if id == nil {
		return UserInput{}
	}
	return UserInput{
		Subject: id.Subject,
		Email:   id.Email,
		Issuer:  id.Issuer,
		Roles:   id.Roles,
		Groups:  id.Groups,
		Scopes:  id.Scopes,
		Claims:  id.Claims,
	}
}

// Decision is the outcome of Evaluate or Visible. It goes into the audit
// record and the policy span; Reason never contains argument or claim
// values.
type Decision struct {
	// Allow reports whether the request may proceed.
	Allow bool `json:"allow"`
	// Rule is the name of the deciding rule; "" when the default decided.
	Rule string `json:"rule,omitempty"`
	// Reason is a short, stable explanation, e.g. `rule "x" (allow)`,
	// `rule "x" (deny: evaluation error, fails closed)` or `default deny`.
	Reason string `json:"reason"`
}

// Outcome is how one rule evaluated in a RuleTrace.
type Outcome string

// Outcomes of a rule in Explain.
const (
	// OutcomeMatched: `when` was true.
	OutcomeMatched Outcome = "matched"
	// OutcomeNotMatched: `when` was false.
	OutcomeNotMatched Outcome = "not_matched"
	// OutcomeError: `when` failed (e.g. a missing map key). An allow rule
	// that fails does not match; a deny rule that fails matches.
	OutcomeError Outcome = "error"
	// OutcomeDependsOnArguments (ExplainVisible only): the result depends
	// on the call's arguments. An allow rule then makes the item visible;
	// a deny rule is skipped.
	OutcomeDependsOnArguments Outcome = "depends_on_arguments"
)

// RuleTrace is how one rule evaluated for an input (see Explain).
type RuleTrace struct {
	// Rule and Effect are the rule's name and effect.
	Rule   string `json:"rule"`
	Effect string `json:"effect"`
	// Outcome is matched, not_matched, error or (ExplainVisible only)
	// depends_on_arguments.
	Outcome Outcome `json:"outcome"`
	// Error is the evaluation error when Outcome is error. It may quote
	// input values: show it to operators, do not audit it.
	Error string `json:"error,omitempty"`
	// Decisive marks the rule that decided (at most one per trace).
	Decisive bool `json:"decisive,omitempty"`
}

// Engine is a compiled policy. It is immutable and safe for concurrent use;
// swap a new one in (atomic.Pointer) on reload.
type Engine struct {
	allowByDefault bool
	defaultReason  string
	rules          []compiledRule
	adapter        types.Adapter
	pool           sync.Pool // *activation
	readsArgs      bool      // some rule refers to `arguments` (ReadsArguments)
}

type compiledRule struct {
	name   string
	effect string
	allow  bool
	call   cel.Program // plain evaluation
	list   cel.Program // partial evaluation, `arguments` unknown
	loops  bool        // has a comprehension: evaluate with the caller's context
	// readsArgs: the expression refers to the `arguments` variable.
	readsArgs bool
	// Precomputed reasons, so a decision does not allocate.
	reasonMatch, reasonError, reasonArgs, reasonCost, reasonInterrupted string
}

// MaxCost bounds the cost of evaluating one rule, in CEL cost units (about
// one per operation, and per element or per few bytes for functions over
// lists and strings; a rule over ordinary arguments costs tens). A rule
// that exceeds it (say a nested comprehension over a big argument list)
// is stopped and the decision is a denial, whatever the rule's effect.
const MaxCost = 1_000_000

// Size bounds for the static cost estimate that decides whether a rule
// needs cost tracking: `user` comes from a verified token (at most 16 KiB),
// `upstream` and `method` are names Mandate knows, `tool`, `resource`,
// `prompt` and `arguments` come from a request body (server.max_body_bytes,
// 4 MiB by default); all with a wide margin. Every string, list or map
// reachable from a variable is assumed to be that large.
const (
	maxUserSize      = 64 << 10
	maxNameSize      = 1 << 10
	maxArgumentsSize = 64 << 20
)

// inputBounds is the cost.Estimator of that estimate.
type inputBounds struct{}

func (inputBounds) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

func (inputBounds) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	switch p := n.Path(); {
	case len(p) == 0:
		return nil
	case p[0] == "user":
		return &cost.SizeEstimate{Max: maxUserSize}
	case p[0] == "upstream" || p[0] == "method":
		return &cost.SizeEstimate{Max: maxNameSize}
	default:
		return &cost.SizeEstimate{Max: maxArgumentsSize}
	}
}

// interruptEvery is how many comprehension iterations pass between checks
// of the caller's context.
const interruptEvery = 100

const userTypeName = "policy.UserInput"

// env is the CEL environment every rule compiles in; built once.
var env = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[UserInput](), ext.ParseStructTags(true)),
		cel.Variable("user", cel.ObjectType(userTypeName)),
		cel.Variable("upstream", cel.StringType),
		cel.Variable("method", cel.StringType),
		cel.Variable("tool", cel.StringType),
		cel.Variable("resource", cel.StringType),
		cel.Variable("prompt", cel.StringType),
		cel.Variable("arguments", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Lists(),
	)
})

// Compile checks c completely and compiles every rule. All problems are
// reported, each with its path, joined with errors.Join, e.g.
//
//	policy.rules[2] (sales).when: line 1, column 14: undeclared reference to 'usr'
func Compile(c Config) (*Engine, error) {
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("policy: building CEL environment: %w", err)
	}
	var errs []error
	eng := &Engine{adapter: e.CELTypeAdapter()}
	switch c.Default {
	case "", EffectDeny:
		eng.defaultReason = "default deny"
	case EffectAllow:
		eng.allowByDefault = true
		eng.defaultReason = "default allow"
	default:
		errs = append(errs, fmt.Errorf("policy.default: must be %q or %q, got %q", EffectDeny, EffectAllow, c.Default))
	}
	seen := make(map[string]int, len(c.Rules))
	for i, r := range c.Rules {
		path := fmt.Sprintf("policy.rules[%d]", i)
		if r.Name == "" {
			errs = append(errs, fmt.Errorf("%s.name: required", path))
		} else {
			path = fmt.Sprintf("%s (%s)", path, r.Name)
			if j, dup := seen[r.Name]; dup {
				errs = append(errs, fmt.Errorf("%s.name: duplicate of policy.rules[%d]", path, j))
			} else {
				seen[r.Name] = i
			}
		}
		if r.Effect != EffectAllow && r.Effect != EffectDeny {
			errs = append(errs, fmt.Errorf("%s.effect: must be %q or %q, got %q", path, EffectAllow, EffectDeny, r.Effect))
		}
		cr, err := compileRule(e, path, r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		eng.rules = append(eng.rules, cr)
		eng.readsArgs = eng.readsArgs || cr.readsArgs
	}
	if err := validateRateLimits(c.RateLimits); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	eng.pool.New = func() any { return &activation{adapter: eng.adapter} }
	return eng, nil
}

func compileRule(e *cel.Env, path string, r Rule) (compiledRule, error) {
	if strings.TrimSpace(r.When) == "" {
		return compiledRule{}, fmt.Errorf("%s.when: required (a CEL expression of type bool)", path)
	}
	ast, iss := e.Compile(r.When)
	if iss != nil && iss.Err() != nil {
		var errs []error
		for _, ce := range iss.Errors() {
			msg := strings.TrimSuffix(ce.Message, " (in container '')")
			errs = append(errs, fmt.Errorf("%s.when: line %d, column %d: %s",
				path, ce.Location.Line(), ce.Location.Column()+1, msg))
		}
		return compiledRule{}, errors.Join(errs...)
	}
	if !ast.OutputType().IsExactType(types.BoolType) {
		return compiledRule{}, fmt.Errorf("%s.when: expression has type %s, want bool (compare explicitly, e.g. user.claims.admin == true)",
			path, ast.OutputType())
	}
	// Cost tracking costs allocations on every evaluation: only rules
	// whose worst case (with inputs as large as a request can carry) may
	// exceed MaxCost pay for it, and only rules that iterate can be
	// interrupted, so only they get the caller's context.
	loops := len(celast.MatchDescendants(celast.NavigateAST(ast.NativeRep()), celast.KindMatcher(celast.ComprehensionKind))) > 0
	var opts []cel.ProgramOption
	if est, err := e.EstimateCost(ast, inputBounds{}); err != nil || est.Max > MaxCost {
		opts = append(opts, cel.CostLimit(MaxCost))
	}
	if loops {
		opts = append(opts, cel.InterruptCheckFrequency(interruptEvery))
	}
	call, err := e.Program(ast, append(opts, cel.EvalOptions(cel.OptOptimize))...)
	if err != nil {
		return compiledRule{}, fmt.Errorf("%s.when: %w", path, err)
	}
	list, err := e.Program(ast, append(opts, cel.EvalOptions(cel.OptOptimize, cel.OptPartialEval))...)
	if err != nil {
		return compiledRule{}, fmt.Errorf("%s.when: %w", path, err)
	}
	return compiledRule{
		name:              r.Name,
		effect:            r.Effect,
		allow:             r.Effect == EffectAllow,
		call:              call,
		list:              list,
		loops:             loops,
		readsArgs:         readsArguments(ast.NativeRep().Expr()),
		reasonMatch:       fmt.Sprintf("rule %q (%s)", r.Name, r.Effect),
		reasonError:       fmt.Sprintf("rule %q (deny: evaluation error, fails closed)", r.Name),
		reasonArgs:        fmt.Sprintf("rule %q (allow, depends on arguments: checked again at call time)", r.Name),
		reasonCost:        fmt.Sprintf("rule %q (deny: evaluation exceeded the cost limit of %d, fails closed)", r.Name, MaxCost),
		reasonInterrupted: fmt.Sprintf("rule %q (deny: evaluation interrupted, the request ended; fails closed)", r.Name),
	}, nil
}

// result is the three- (four-) valued outcome of one evaluation.
type result uint8

const (
	resFalse result = iota
	resTrue
	resError
	resUnknown // depends on `arguments` (Visible only)
	resCost    // stopped at MaxCost: denies, whatever the effect
	resAborted // stopped because ctx ended: denies, whatever the effect
)

// run evaluates p. ctx is used for rules with comprehensions (loops), the
// only CEL constructs whose evaluation can be interrupted; the others do
// not pay for it. nil ctx: no interruption.
func run(ctx context.Context, p cel.Program, loops bool, a *activation) (result, error) {
	var out ref.Val
	var err error
	if loops && ctx != nil {
		out, _, err = p.ContextEval(ctx, a)
	} else {
		out, _, err = p.Eval(a)
	}
	if err != nil {
		var ce interpreter.EvalCancelledError
		switch {
		case errors.As(err, &ce) && ce.Cause == interpreter.CostLimitExceeded:
			return resCost, err
		case errors.Is(err, interpreter.InterruptError{}):
			return resAborted, err
		}
		return resError, err
	}
	switch v := out.(type) {
	case types.Bool:
		if v {
			return resTrue, nil
		}
		return resFalse, nil
	case *types.Unknown:
		return resUnknown, nil
	}
	return resError, fmt.Errorf("expression returned %s, want bool", out.Type().TypeName())
}

// Evaluate decides a call (tools/call, resources/read, prompts/get, ...).
// It is pure, does not block, and is safe for concurrent use. A nil Engine
// denies everything.
//
// A rule that costs more than MaxCost, or that is still iterating when
// ctx ends, stops the evaluation: the decision is a denial by that rule
// (fail closed), whatever its effect.
//
// Rules are tried in order and the first that matches decides; if none
// does, the default decides. A rule whose evaluation fails (a missing map
// key such as user.claims.department when the token has no such claim, a
// type mismatch in arguments, ...) does NOT match if it is an allow rule,
// and DOES match if it is a deny rule: the policy fails closed. Guard
// optional data with has() or optionals (`has(user.claims.department) &&
// ...`, `user.claims.?department.orValue("") == "x"`).
func (e *Engine) Evaluate(ctx context.Context, in Input) Decision {
	if e == nil {
		return Decision{Reason: "no policy"}
	}
	a := e.acquire(&in, false)
	defer e.release(a)
	for i := range e.rules {
		r := &e.rules[i]
		res, _ := run(ctx, r.call, r.loops, a)
		switch {
		case res == resCost:
			return Decision{Rule: r.name, Reason: r.reasonCost}
		case res == resAborted:
			return Decision{Rule: r.name, Reason: r.reasonInterrupted}
		case res == resTrue:
			return Decision{Allow: r.allow, Rule: r.name, Reason: r.reasonMatch}
		case res == resError && !r.allow:
			return Decision{Rule: r.name, Reason: r.reasonError}
		}
	}
	return Decision{Allow: e.allowByDefault, Reason: e.defaultReason}
}

// Visible decides whether an item appears in a list (tools/list,
// resources/list, resources/templates/list, prompts/list) for in.User.
// Set Tool, Resource or Prompt to the item; Method may be the list method
// or the call method (list methods are mapped to tools/call,
// resources/read and prompts/get, so rules need only speak of calls).
// in.Arguments is ignored. For resources/templates/list, Resource is the
// URI template.
//
// The rule: an item is visible exactly when some call of it could be
// allowed. Each rule is evaluated with `arguments` unknown (CEL partial
// evaluation):
//   - a rule whose result does not depend on arguments acts exactly as in
//     Evaluate (true decides; an error matches deny rules only);
//   - an allow rule whose result depends on arguments decides "visible"
//     (the call itself is checked again with its real arguments);
//   - a deny rule whose result depends on arguments is skipped (it denies
//     only some calls).
//
// Consequences, checked by the tests over generated rule sets:
// an item hidden by Visible is denied by Evaluate for every arguments
// value, so a user never misses a tool they could call; and when no rule
// on the deciding path depends on arguments, Visible and Evaluate agree
// exactly (same Allow, same Rule), so a user never sees a tool a call
// would deny. In particular, for policies that never mention `arguments`,
// listing and calling always agree.
func (e *Engine) Visible(in Input) Decision {
	d, _ := e.visible(in)
	return d
}

// visible also reports whether an argument-dependent rule was on the
// deciding path (skipped deny or deciding allow).
func (e *Engine) visible(in Input) (Decision, bool) {
	if e == nil {
		return Decision{Reason: "no policy"}, false
	}
	in.Method = CallMethod(in.Method)
	in.Arguments = nil
	a := e.acquire(&in, true)
	defer e.release(a)
	argDependent := false
	for i := range e.rules {
		r := &e.rules[i]
		res, _ := run(nil, r.list, r.loops, a)
		switch res {
		case resCost:
			return Decision{Rule: r.name, Reason: r.reasonCost}, argDependent
		case resTrue:
			return Decision{Allow: r.allow, Rule: r.name, Reason: r.reasonMatch}, argDependent
		case resError:
			if !r.allow {
				return Decision{Rule: r.name, Reason: r.reasonError}, argDependent
			}
		case resUnknown:
			argDependent = true
			if r.allow {
				return Decision{Allow: true, Rule: r.name, Reason: r.reasonArgs}, true
			}
		}
	}
	return Decision{Allow: e.allowByDefault, Reason: e.defaultReason}, argDependent
}

// CallMethod maps an MCP list method to the method that uses its items:
// tools/list → tools/call, resources/list and resources/templates/list →
// resources/read, prompts/list → prompts/get. Other methods are returned
// unchanged.
func CallMethod(method string) string {
	switch method {
	case "tools/list":
		return "tools/call"
	case "resources/list", "resources/templates/list":
		return "resources/read"
	case "prompts/list":
		return "prompts/get"
	}
	return method
}

// Explain evaluates every rule for a call (as Evaluate does, but without
// stopping at the first match) and reports each outcome; the rule that
// Evaluate would pick is marked Decisive. If none is, the default decided.
// Errors may quote input values: for operators (`mandate explain`), not
// for audit records.
func (e *Engine) Explain(in Input) []RuleTrace {
	return e.explain(in, false)
}

// ExplainVisible is Explain for Visible: arguments are unknown, list
// methods are mapped to call methods, and rules whose outcome depends on
// the arguments report OutcomeDependsOnArguments. The rule Visible would
// pick is marked Decisive.
func (e *Engine) ExplainVisible(in Input) []RuleTrace {
	in.Method = CallMethod(in.Method)
	in.Arguments = nil
	return e.explain(in, true)
}

func (e *Engine) explain(in Input, list bool) []RuleTrace {
	if e == nil {
		return nil
	}
	a := e.acquire(&in, list)
	defer e.release(a)
	out := make([]RuleTrace, len(e.rules))
	decided := false
	for i := range e.rules {
		r := &e.rules[i]
		p := r.call
		if list {
			p = r.list
		}
		res, err := run(nil, p, r.loops, a)
		t := RuleTrace{Rule: r.name, Effect: r.effect}
		switch res {
		case resTrue:
			t.Outcome = OutcomeMatched
		case resFalse:
			t.Outcome = OutcomeNotMatched
		case resUnknown:
			t.Outcome = OutcomeDependsOnArguments
		default:
			t.Outcome = OutcomeError
			if err != nil {
				t.Error = err.Error()
			}
		}
		decisive := res == resTrue || res == resCost || (res == resError && !r.allow) || (res == resUnknown && r.allow)
		if !decided && decisive {
			t.Decisive, decided = true, true
		}
		out[i] = t
	}
	return out
}

// Default reports the effect applied when no rule matches.
func (e *Engine) Default() string {
	if e != nil && e.allowByDefault {
		return EffectAllow
	}
	return EffectDeny
}

// activation resolves the CEL variables straight from an Input, converting
// each value at most once per decision. Pooled: a decision does not
// allocate one.
type activation struct {
	in      Input
	adapter types.Adapter
	partial bool // `arguments` is unknown (Visible)
	vals    [nVars]ref.Val
}

const (
	vUser = iota
	vUpstream
	vMethod
	vTool
	vResource
	vPrompt
	vArguments
	nVars
)

var (
	emptyArgs       = types.NewStringInterfaceMap(types.DefaultTypeAdapter, map[string]any{})
	unknownPatterns = []*cel.AttributePatternType{cel.AttributePattern("arguments")}
)

func (e *Engine) acquire(in *Input, partial bool) *activation {
	a := e.pool.Get().(*activation)
	a.in = *in
	a.partial = partial
	return a
}

func (e *Engine) release(a *activation) {
	a.in = Input{}
	a.vals = [nVars]ref.Val{}
	e.pool.Put(a)
}

// ResolveName implements interpreter.Activation.
func (a *activation) ResolveName(name string) (any, bool) {
	var i int
	switch name {
	case "user":
		i = vUser
	case "upstream":
		i = vUpstream
	case "method":
		i = vMethod
	case "tool":
		i = vTool
	case "resource":
		i = vResource
	case "prompt":
		i = vPrompt
	case "arguments":
		if a.partial {
			return nil, false
		}
		i = vArguments
	default:
		return nil, false
	}
	if v := a.vals[i]; v != nil {
		return v, true
	}
	var v ref.Val
	switch i {
	case vUser:
		v = a.adapter.NativeToValue(&a.in.User)
	case vUpstream:
		v = types.String(a.in.Upstream)
	case vMethod:
		v = types.String(a.in.Method)
	case vTool:
		v = types.String(a.in.Tool)
	case vResource:
		v = types.String(a.in.Resource)
	case vPrompt:
		v = types.String(a.in.Prompt)
	case vArguments:
		if len(a.in.Arguments) == 0 {
			v = emptyArgs
		} else {
			v = types.NewStringInterfaceMap(a.adapter, a.in.Arguments)
		}
	}
	a.vals[i] = v
	return v, true
}

// Parent implements interpreter.Activation.
func (a *activation) Parent() cel.Activation { return nil }

// UnknownAttributePatterns implements interpreter.PartialActivation.
func (a *activation) UnknownAttributePatterns() []*cel.AttributePatternType {
	if a.partial {
		return unknownPatterns
	}
	return nil
}

// AsPartialActivation lets the interpreter treat `arguments` as unknown
// when listing.
func (a *activation) AsPartialActivation() (cel.PartialActivation, bool) {
	return a, a.partial
}
