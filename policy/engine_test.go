package policy

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/mandate-gw/mandate/internal/identity"
)

// caseFile is the format of testdata/policies/*.yaml.
type caseFile struct {
	Policy Config     `yaml:"policy"`
	Cases  []yamlCase `yaml:"cases"`
}

type yamlCase struct {
	Name        string    `yaml:"name"`
	Input       yamlInput `yaml:"input"`
	Allow       bool      `yaml:"allow"`
	Rule        string    `yaml:"rule"`
	Visible     *bool     `yaml:"visible"`
	VisibleRule string    `yaml:"visible_rule"`
}

type yamlInput struct {
	User struct {
		Subject string         `yaml:"subject"`
		Email   string         `yaml:"email"`
		Issuer  string         `yaml:"issuer"`
		Roles   []string       `yaml:"roles"`
		Groups  []string       `yaml:"groups"`
		Scopes  []string       `yaml:"scopes"`
		Claims  map[string]any `yaml:"claims"`
	} `yaml:"user"`
	Upstream  string         `yaml:"upstream"`
	Method    string         `yaml:"method"`
	Tool      string         `yaml:"tool"`
	Resource  string         `yaml:"resource"`
	Prompt    string         `yaml:"prompt"`
	Arguments map[string]any `yaml:"arguments"`
}

func (y yamlInput) input() Input {
	u := y.User
	return Input{
		User:     UserInput{Subject: u.Subject, Email: u.Email, Issuer: u.Issuer, Roles: u.Roles, Groups: u.Groups, Scopes: u.Scopes, Claims: u.Claims},
		Upstream: y.Upstream, Method: y.Method, Tool: y.Tool, Resource: y.Resource, Prompt: y.Prompt,
		Arguments: y.Arguments,
	}
}

func decodeStrict(t testing.TB, data []byte, v any) {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding yaml: %v", err)
	}
}

func mustCompile(t testing.TB, c Config) *Engine {
	t.Helper()
	e, err := Compile(c)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

func TestPolicyFiles(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("testdata/policies/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no policy files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var cf caseFile
			decodeStrict(t, data, &cf)
			if len(cf.Cases) == 0 {
				t.Fatal("file has no cases")
			}
			eng := mustCompile(t, cf.Policy)
			for _, tc := range cf.Cases {
				t.Run(tc.Name, func(t *testing.T) {
					t.Parallel()
					in := tc.Input.input()
					got := eng.Evaluate(context.Background(), in)
					if got.Allow != tc.Allow || got.Rule != tc.Rule {
						t.Errorf("Evaluate = %+v, want allow=%v rule=%q", got, tc.Allow, tc.Rule)
					}
					if got.Reason == "" {
						t.Errorf("Evaluate gave no reason: %+v", got)
					}
					if tc.Visible != nil {
						v := eng.Visible(in)
						if v.Allow != *tc.Visible || v.Rule != tc.VisibleRule {
							t.Errorf("Visible = %+v, want allow=%v rule=%q", v, *tc.Visible, tc.VisibleRule)
						}
					}
					// Explain must name the same deciding rule as Evaluate.
					var decisive []string
					for _, tr := range eng.Explain(in) {
						if tr.Decisive {
							decisive = append(decisive, tr.Rule)
						}
					}
					wantDecisive := []string(nil)
					if got.Rule != "" {
						wantDecisive = []string{got.Rule}
					}
					if diff := cmp.Diff(wantDecisive, decisive); diff != "" {
						t.Errorf("Explain decisive rules (-want +got):\n%s", diff)
					}
				})
			}
		})
	}
}

func TestReasons(t *testing.T) {
	t.Parallel()
	eng := mustCompile(t, Config{Rules: []Rule{
		{Name: "a", Effect: "allow", When: `tool == "a"`},
		{Name: "d", Effect: "deny", When: `tool == "d"`},
		{Name: "err", Effect: "deny", When: `tool == "e" && user.claims.secret_claim == "s3cr3t-value"`},
		{Name: "args", Effect: "allow", When: `tool == "x" && arguments.n == 1`},
	}})
	tests := []struct {
		tool string
		want Decision
	}{
		{"a", Decision{Allow: true, Rule: "a", Reason: `rule "a" (allow)`}},
		{"d", Decision{Rule: "d", Reason: `rule "d" (deny)`}},
		{"e", Decision{Rule: "err", Reason: `rule "err" (deny: evaluation error, fails closed)`}},
		{"zzz", Decision{Reason: "default deny"}},
	}
	for _, tc := range tests {
		got := eng.Evaluate(context.Background(), Input{Tool: tc.tool, Method: "tools/call"})
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("tool %q (-want +got):\n%s", tc.tool, diff)
		}
	}
	v := eng.Visible(Input{Tool: "x", Method: "tools/list"})
	want := Decision{Allow: true, Rule: "args", Reason: `rule "args" (allow, depends on arguments: checked again at call time)`}
	if diff := cmp.Diff(want, v); diff != "" {
		t.Errorf("Visible (-want +got):\n%s", diff)
	}
	// The default allow reason.
	if got := mustCompile(t, Config{Default: "allow"}).Evaluate(context.Background(), Input{}); got != (Decision{Allow: true, Reason: "default allow"}) {
		t.Errorf("default allow: %+v", got)
	}
}

func TestFailClosed(t *testing.T) {
	t.Parallel()
	// The same erroring condition as an allow rule and as a deny rule,
	// under both defaults. Errors: missing map key, missing argument,
	// type mismatch in arguments, division by zero.
	conds := []string{
		`user.claims.department == "eng"`,
		`arguments.amount > 10`,
		`arguments.name.startsWith("x")`,
		`1 / size(user.roles) == 1`,
	}
	in := Input{User: UserInput{Claims: map[string]any{"other": 1}}, Method: "tools/call",
		Arguments: map[string]any{"name": 42.0}}
	for _, cond := range conds {
		for _, def := range []string{"allow", "deny"} {
			deny := mustCompile(t, Config{Default: def, Rules: []Rule{{Name: "r", Effect: "deny", When: cond}}})
			if got := deny.Evaluate(context.Background(), in); got.Allow || got.Rule != "r" {
				t.Errorf("deny rule %q, default %s: got %+v, want denied by r (fail closed)", cond, def, got)
			}
			allow := mustCompile(t, Config{Default: def, Rules: []Rule{{Name: "r", Effect: "allow", When: cond}}})
			got := allow.Evaluate(context.Background(), in)
			if got.Rule != "" || got.Allow != (def == "allow") {
				t.Errorf("allow rule %q, default %s: got %+v, want the default to decide", cond, def, got)
			}
			tr := allow.Explain(in)
			if len(tr) != 1 || tr[0].Outcome != OutcomeError || tr[0].Error == "" || tr[0].Decisive {
				t.Errorf("Explain for %q: %+v, want one non-decisive error with a message", cond, tr)
			}
		}
	}
}

func TestEvaluateVariables(t *testing.T) {
	t.Parallel()
	id := identity.Identity{
		Issuer: "https://idp.example/", Subject: "alice", Email: "alice@example.com",
		Roles: []string{"sales"}, Groups: []string{"emea"}, Scopes: []string{"crm.read"},
		Claims: map[string]any{"department": "sales", "level": 3.0, "nested": map[string]any{"x": []any{"a", "b"}}},
	}
	in := Input{User: UserFrom(&id), Upstream: "crm", Method: "resources/read",
		Resource: "crm://accounts/1", Prompt: "", Tool: "",
		Arguments: map[string]any{"limit": 10.0, "filter": map[string]any{"owner": "alice"}}}
	trueExprs := []string{
		`user.subject == "alice" && user.email == "alice@example.com" && user.issuer == "https://idp.example/"`,
		`"sales" in user.roles && "emea" in user.groups && "crm.read" in user.scopes`,
		`user.claims.department == "sales" && user.claims.level >= 3 && "b" in user.claims.nested.x`,
		`upstream == "crm" && method == "resources/read" && resource.startsWith("crm://") && tool == "" && prompt == ""`,
		`arguments.limit == 10 && arguments.filter.owner == user.subject`,
		`user.claims.?missing.orValue("none") == "none"`,
		`sets.intersects(user.groups, ["emea", "apac"])`,
		`resource.split("/").size() == 4 && upstream.upperAscii() == "CRM"`,
	}
	for _, expr := range trueExprs {
		eng := mustCompile(t, Config{Rules: []Rule{{Name: "r", Effect: "allow", When: expr}}})
		if got := eng.Evaluate(context.Background(), in); !got.Allow || got.Rule != "r" {
			t.Errorf("%s: got %+v, want allowed by r; trace %+v", expr, got, eng.Explain(in))
		}
	}
	if u := UserFrom(nil); !cmp.Equal(u, UserInput{}) {
		t.Errorf("UserFrom(nil) = %+v", u)
	}
}

func TestNilEngineDenies(t *testing.T) {
	t.Parallel()
	var e *Engine
	if d := e.Evaluate(context.Background(), Input{}); d.Allow {
		t.Errorf("nil engine Evaluate allowed: %+v", d)
	}
	if d := e.Visible(Input{}); d.Allow {
		t.Errorf("nil engine Visible allowed: %+v", d)
	}
	if e.Explain(Input{}) != nil || e.Default() != EffectDeny {
		t.Error("nil engine Explain/Default")
	}
	if d := mustCompile(t, Config{}).Evaluate(context.Background(), Input{Tool: "x"}); d.Allow || d.Reason != "default deny" {
		t.Errorf("empty config: %+v, want default deny", d)
	}
}

func TestCallMethod(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"tools/list": "tools/call", "resources/list": "resources/read",
		"resources/templates/list": "resources/read", "prompts/list": "prompts/get",
		"tools/call": "tools/call", "completion/complete": "completion/complete", "": "",
	} {
		if got := CallMethod(in); got != want {
			t.Errorf("CallMethod(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestConcurrentEvaluate checks that pooled activations never leak one
// decision's input into another (run with -race).
func TestConcurrentEvaluate(t *testing.T) {
	t.Parallel()
	eng := mustCompile(t, Config{Rules: []Rule{
		{Name: "own", Effect: "allow", When: `user.subject == arguments.owner && tool == "t" + user.subject`},
		{Name: "vis", Effect: "allow", When: `tool == "list-" + user.subject`},
	}})
	var wg sync.WaitGroup
	for g := range 16 {
		wg.Go(func() {
			for i := range 500 {
				me := string(rune('a' + (g+i)%26))
				other := string(rune('a' + (g+i+1)%26))
				if d := eng.Evaluate(context.Background(), Input{User: UserInput{Subject: me}, Tool: "t" + me, Arguments: map[string]any{"owner": me}}); !d.Allow {
					t.Errorf("own call denied: %+v", d)
					return
				}
				if d := eng.Evaluate(context.Background(), Input{User: UserInput{Subject: me}, Tool: "t" + me, Arguments: map[string]any{"owner": other}}); d.Allow {
					t.Errorf("foreign call allowed: %+v", d)
					return
				}
				if d := eng.Visible(Input{User: UserInput{Subject: me}, Tool: "list-" + me}); !d.Allow || d.Rule != "vis" {
					t.Errorf("Visible: %+v", d)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestValidateIsCompile(t *testing.T) {
	t.Parallel()
	bad := Config{Rules: []Rule{{Name: "x", Effect: "allow", When: "usr"}}}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "undeclared reference to 'usr'") {
		t.Errorf("Validate = %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("empty config: %v", err)
	}
}

func TestExplainVisible(t *testing.T) {
	t.Parallel()
	eng := mustCompile(t, Config{Rules: []Rule{
		{Name: "big", Effect: "deny", When: `tool == "refund" && arguments.amount > 1000`},
		{Name: "list-method", Effect: "deny", When: `method == "tools/list"`},
		{Name: "missing", Effect: "allow", When: `user.claims.team == "a"`},
		{Name: "small", Effect: "allow", When: `tool == "refund" && arguments.amount <= 1000`},
		{Name: "all", Effect: "allow", When: `true`},
	}})
	in := Input{Tool: "refund", Method: "tools/list", Arguments: map[string]any{"amount": 5.0}}
	got := eng.ExplainVisible(in)
	want := []RuleTrace{
		{Rule: "big", Effect: "deny", Outcome: OutcomeDependsOnArguments},
		{Rule: "list-method", Effect: "deny", Outcome: OutcomeNotMatched}, // evaluated as tools/call
		{Rule: "missing", Effect: "allow", Outcome: OutcomeError, Error: "no such key: team"},
		{Rule: "small", Effect: "allow", Outcome: OutcomeDependsOnArguments, Decisive: true},
		{Rule: "all", Effect: "allow", Outcome: OutcomeMatched},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ExplainVisible (-want +got):\n%s", diff)
	}
	if d := eng.Visible(in); d.Rule != "small" || !d.Allow {
		t.Errorf("Visible = %+v, want allowed by small", d)
	}
}

func TestDecisionErr(t *testing.T) {
	t.Parallel()
	if err := (Decision{Allow: true, Rule: "r"}).Err(); err != nil {
		t.Errorf("allowed decision: %v", err)
	}
	d := Decision{Rule: "secret-rule-name", Reason: `rule "secret-rule-name" (deny)`}
	err := d.Err()
	var de *DeniedError
	if !errors.As(err, &de) || de.Decision != d {
		t.Fatalf("Err() = %#v, want *DeniedError carrying the decision", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("client-facing message leaks the rule: %q", err)
	}
}
