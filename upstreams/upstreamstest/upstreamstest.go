// Package upstreamstest is the contract test suite every upstream adapter
// (mcp, salesforce, servicenow) runs: generic guarantees the gateway relies
// on, independent of what the upstream serves.
//
// Every registered kind runs it from one table, the contracts map in
// upstreams/kinds/contract_test.go (TestEveryKindHasAContract fails for a
// registered kind without a case there). A case builds its adapter through
// the registry, as the gateway does:
//
//	upstreams.KindSalesforce: func(t *testing.T) upstreamstest.Harness {
//		… start the sandbox …
//		return upstreamstest.Harness{
//			New: func(t *testing.T) upstreams.Adapter { a, _ := upstreams.NewAdapter(cfg, deps); return a },
//			Users: [2]upstreamstest.User{
//				{Identity: rita, Want: wantRecords("006…1", "006…2")},
//				{Identity: morgan, Want: wantRecords("006…1", "006…2", "006…3")},
//			},
//			Call: mcp.CallToolParams{Name: "my_pipeline"},
//		}
//	},
//
// What Run checks (each a subtest):
//
//   - tools: ListTools returns tools with non-empty, unique names, an input
//     schema that is a map[string]any with "type": "object" (what the
//     gateway's catalog accepts), an object output schema when one is
//     given, and includes Harness.Call's tool.
//   - users_differ: the call gives each user their own result (Want), and
//     the two results differ.
//   - unknown_tool: an unknown tool name is a *jsonrpc.Error with code -32602.
//   - malformed_arguments: arguments that are not a JSON object, or invalid
//     JSON, return an error or an IsError result — never a panic.
//   - cancelled: a call with an already cancelled context returns within
//     Harness.Prompt with an error or an IsError result.
//   - no_identity: a call whose context carries no identity fails (error or
//     IsError) with a message that mentions the user, identity or
//     authentication.
//   - concurrent_users: 50 concurrent calls, alternating between the two
//     users (each on a session opened with their identity), each result
//     satisfying its own caller's Want — results never mix.
//   - close: Session.Close is idempotent (twice, both nil), a call on a
//     closed session fails without panicking, and Adapter.Close is
//     idempotent too.
package upstreamstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
)

// Harness is what an adapter's test provides.
type Harness struct {
	// New returns a fresh adapter under test, ready to call (its upstream
	// running). Run closes it. Called once per subtest.
	New func(t *testing.T) upstreams.Adapter
	// Users are two users whose results for Call differ.
	Users [2]User
	// Call is one tool call whose result depends on the caller.
	Call mcp.CallToolParams
	// Prompt bounds how long a cancelled call may take to return; default
	// 5s. (A bound for "promptly", not a performance assertion.)
	Prompt time.Duration
	// Concurrency is the number of concurrent calls of concurrent_users;
	// default 50.
	Concurrency int
	// SessionBound says sessions are bound to the identity of Open (the mcp
	// adapter: one upstream session per user). A call without an identity
	// then runs as that user — never as anyone else — instead of failing;
	// no_identity checks exactly that.
	SessionBound bool
}

// User is one caller.
type User struct {
	// Identity is put into each call's context with identity.NewContext.
	Identity *identity.Identity
	// Want returns nil when res is this user's result for Harness.Call,
	// else what is wrong with it.
	Want func(res *mcp.CallToolResult) error
}

// Run runs the contract suite.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil || h.Users[0].Identity == nil || h.Users[1].Identity == nil || h.Users[0].Want == nil || h.Users[1].Want == nil || h.Call.Name == "" {
		t.Fatal("upstreamstest: Harness needs New, two Users with Identity and Want, and Call")
	}
	if h.Prompt <= 0 {
		h.Prompt = 5 * time.Second
	}
	if h.Concurrency <= 0 {
		h.Concurrency = 50
	}
	t.Run("tools", func(t *testing.T) { t.Parallel(); testTools(t, h) })
	t.Run("users_differ", func(t *testing.T) { t.Parallel(); testUsersDiffer(t, h) })
	t.Run("unknown_tool", func(t *testing.T) { t.Parallel(); testUnknownTool(t, h) })
	t.Run("malformed_arguments", func(t *testing.T) { t.Parallel(); testMalformed(t, h) })
	t.Run("cancelled", func(t *testing.T) { t.Parallel(); testCancelled(t, h) })
	t.Run("no_identity", func(t *testing.T) { t.Parallel(); testNoIdentity(t, h) })
	t.Run("concurrent_users", func(t *testing.T) { t.Parallel(); testConcurrent(t, h) })
	t.Run("close", func(t *testing.T) { t.Parallel(); testClose(t, h) })
}

func newAdapter(t *testing.T, h Harness) upstreams.Adapter {
	t.Helper()
	a := h.New(t)
	if a == nil {
		t.Fatal("Harness.New returned nil")
	}
	t.Cleanup(func() { _ = a.Close() })
	return a
}

func ctxFor(t *testing.T, u User) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return identity.NewContext(ctx, u.Identity)
}

func open(t *testing.T, a upstreams.Adapter, u User) upstreams.Session {
	t.Helper()
	s, err := a.Open(ctxFor(t, u), upstreams.OpenOptions{})
	if err != nil {
		t.Fatalf("Open as %s: %v", u.Identity.Subject, err)
	}
	if s == nil {
		t.Fatalf("Open as %s returned a nil session", u.Identity.Subject)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// call runs fn, turning a panic into a test failure.
func call(t *testing.T, what string, fn func() (*mcp.CallToolResult, error)) (res *mcp.CallToolResult, err error) {
	t.Helper()
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("%s panicked: %v", what, p)
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return fn()
}

// ResultText joins the text contents of res (for Want functions and
// messages).
func ResultText(res *mcp.CallToolResult) string {
	if res == nil {
		return ""
	}
	var parts []string
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			parts = append(parts, tc.Text)
		}
	}
	return strings.Join(parts, "\n")
}

// Structured returns res.StructuredContent round-tripped through JSON
// into a generic value (map[string]any for objects), whatever Go type the
// adapter used.
func Structured(res *mcp.CallToolResult) (any, error) {
	if res == nil || res.StructuredContent == nil {
		return nil, errors.New("no structured content")
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return nil, err
	}
	var v any
	err = json.Unmarshal(b, &v)
	return v, err
}

func testTools(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	s := open(t, a, h.Users[0])
	res, err := s.ListTools(ctxFor(t, h.Users[0]), &mcp.ListToolsParams{})
	if err != nil {
		t.Fatalf("ListTools: %v", err)
	}
	if res == nil || len(res.Tools) == 0 {
		t.Fatal("ListTools returned no tools")
	}
	seen := map[string]bool{}
	for i, tool := range res.Tools {
		if tool == nil {
			t.Errorf("tool %d is nil", i)
			continue
		}
		if tool.Name == "" || strings.ContainsAny(tool.Name, " \t\r\n") || len(tool.Name) > 128 {
			t.Errorf("tool %d has an invalid name %q", i, tool.Name)
		}
		if seen[tool.Name] {
			t.Errorf("tool name %q is listed twice", tool.Name)
		}
		seen[tool.Name] = true
		m, ok := tool.InputSchema.(map[string]any)
		if !ok || m["type"] != "object" {
			t.Errorf("tool %q: input schema must be a map[string]any with \"type\": \"object\", got %T %v", tool.Name, tool.InputSchema, tool.InputSchema)
		}
		if _, err := json.Marshal(tool); err != nil {
			t.Errorf("tool %q does not marshal: %v", tool.Name, err)
		}
		if tool.OutputSchema != nil {
			b, _ := json.Marshal(tool.OutputSchema)
			var om map[string]any
			if json.Unmarshal(b, &om) != nil || om["type"] != "object" {
				t.Errorf("tool %q: output schema must be an object schema, got %s", tool.Name, b)
			}
		}
	}
	if !seen[h.Call.Name] {
		t.Errorf("ListTools does not include Harness.Call's tool %q", h.Call.Name)
	}
}

func testUsersDiffer(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	var texts [2]string
	for i, u := range h.Users {
		s := open(t, a, u)
		p := h.Call
		res, err := call(t, "CallTool", func() (*mcp.CallToolResult, error) { return s.CallTool(ctxFor(t, u), &p) })
		if err != nil {
			t.Fatalf("user %s: CallTool: %v", u.Identity.Subject, err)
		}
		if res == nil {
			t.Fatalf("user %s: CallTool returned a nil result", u.Identity.Subject)
		}
		if err := u.Want(res); err != nil {
			t.Errorf("user %s: %v\nresult: %s", u.Identity.Subject, err, ResultText(res))
		}
		texts[i] = ResultText(res)
		if sc, err := Structured(res); err == nil {
			b, _ := json.Marshal(sc)
			texts[i] += string(b)
		}
	}
	if texts[0] == texts[1] {
		t.Errorf("both users got the same result; the harness must pick users whose visible data differ:\n%s", texts[0])
	}
	if err := h.Users[1].Want(mustCall(t, a, h.Users[0], h.Call)); err == nil {
		t.Errorf("user %s's result also satisfies user %s's Want: Want cannot tell the users apart", h.Users[0].Identity.Subject, h.Users[1].Identity.Subject)
	}
}

func mustCall(t *testing.T, a upstreams.Adapter, u User, p mcp.CallToolParams) *mcp.CallToolResult {
	t.Helper()
	s := open(t, a, u)
	res, err := s.CallTool(ctxFor(t, u), &p)
	if err != nil || res == nil {
		t.Fatalf("user %s: CallTool: %v", u.Identity.Subject, err)
	}
	return res
}

func testUnknownTool(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	s := open(t, a, h.Users[0])
	for _, name := range []string{"no_such_tool_" + fmt.Sprint(time.Now().UnixNano()), "", h.Call.Name + " "} {
		res, err := call(t, "CallTool(unknown)", func() (*mcp.CallToolResult, error) {
			return s.CallTool(ctxFor(t, h.Users[0]), &mcp.CallToolParams{Name: name, Arguments: map[string]any{}})
		})
		var rpc *jsonrpc.Error
		if !errors.As(err, &rpc) {
			t.Errorf("tool %q: want *jsonrpc.Error, got err=%v res=%v", name, err, ResultText(res))
			continue
		}
		if rpc.Code != jsonrpc.CodeInvalidParams {
			t.Errorf("tool %q: code %d, want %d (%s)", name, rpc.Code, jsonrpc.CodeInvalidParams, rpc.Message)
		}
		if rpc.Message == "" {
			t.Errorf("tool %q: empty error message", name)
		}
	}
}

func failed(res *mcp.CallToolResult, err error) bool {
	return err != nil || (res != nil && res.IsError)
}

func testMalformed(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	s := open(t, a, h.Users[0])
	for _, args := range []any{
		json.RawMessage(`{"unterminated": `),
		json.RawMessage(`[1, 2, 3]`),
		json.RawMessage(`"a string"`),
		json.RawMessage(`42`),
		json.RawMessage(`{}garbage`),
		[]any{"not", "an", "object"},
		"plain string",
	} {
		res, err := call(t, "CallTool(malformed)", func() (*mcp.CallToolResult, error) {
			return s.CallTool(ctxFor(t, h.Users[0]), &mcp.CallToolParams{Name: h.Call.Name, Arguments: args})
		})
		if !failed(res, err) {
			t.Errorf("arguments %v: call succeeded, want an error or an IsError result", args)
		}
		if err == nil && res == nil {
			t.Errorf("arguments %v: nil result and nil error", args)
		}
	}
}

func testCancelled(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	s := open(t, a, h.Users[0])
	ctx, cancel := context.WithCancel(identity.NewContext(context.Background(), h.Users[0].Identity))
	cancel()
	done := make(chan struct{})
	var res *mcp.CallToolResult
	var err error
	go func() {
		defer close(done)
		p := h.Call
		res, err = call(t, "CallTool(cancelled)", func() (*mcp.CallToolResult, error) { return s.CallTool(ctx, &p) })
	}()
	select {
	case <-done:
	case <-time.After(h.Prompt):
		t.Fatalf("a call with a cancelled context did not return within %s", h.Prompt)
	}
	if !failed(res, err) {
		t.Errorf("a call with a cancelled context succeeded: %s", ResultText(res))
	}
}

func testNoIdentity(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	s := open(t, a, h.Users[0])
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := h.Call
	res, err := call(t, "CallTool(no identity)", func() (*mcp.CallToolResult, error) { return s.CallTool(ctx, &p) })
	if h.SessionBound {
		if failed(res, err) {
			return // refusing is fine too
		}
		if werr := h.Users[0].Want(res); werr != nil {
			t.Fatalf("a session bound to user 0 ran an identity-less call as someone else: %v", werr)
		}
		return
	}
	if !failed(res, err) {
		t.Fatalf("a call without an identity succeeded: %s", ResultText(res))
	}
	msg := ResultText(res)
	if err != nil {
		msg = err.Error()
	}
	low := strings.ToLower(msg)
	if !strings.Contains(low, "user") && !strings.Contains(low, "identity") && !strings.Contains(low, "authenticat") {
		t.Errorf("the error for a missing identity does not say what is missing: %q", msg)
	}
}

func testConcurrent(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	sessions := [2]upstreams.Session{open(t, a, h.Users[0]), open(t, a, h.Users[1])}
	var wg sync.WaitGroup
	errs := make(chan error, h.Concurrency)
	for i := range h.Concurrency {
		u := i % 2
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				if p := recover(); p != nil {
					errs <- fmt.Errorf("call %d panicked: %v", i, p)
				}
			}()
			p := h.Call
			res, err := sessions[u].CallTool(ctxFor(t, h.Users[u]), &p)
			if err != nil {
				errs <- fmt.Errorf("call %d as %s: %v", i, h.Users[u].Identity.Subject, err)
				return
			}
			if err := h.Users[u].Want(res); err != nil {
				errs <- fmt.Errorf("call %d as %s got a result that is not theirs: %v\n%s", i, h.Users[u].Identity.Subject, err, ResultText(res))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testClose(t *testing.T, h Harness) {
	a := newAdapter(t, h)
	s, err := a.Open(ctxFor(t, h.Users[0]), upstreams.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("first Session.Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Session.Close: %v", err)
	}
	p := h.Call
	res, err := call(t, "CallTool(after Close)", func() (*mcp.CallToolResult, error) { return s.CallTool(ctxFor(t, h.Users[0]), &p) })
	if !failed(res, err) {
		t.Errorf("a call on a closed session succeeded: %s", ResultText(res))
	}
	if err := a.Close(); err != nil {
		t.Errorf("first Adapter.Close: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Adapter.Close: %v", err)
	}
}
