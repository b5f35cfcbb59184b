package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/audit"
)

// breakableSink is an audit sink that fails every write while broken.
type breakableSink struct {
	syncBuffer
	broken atomic.Bool
}

func (s *breakableSink) Write(p []byte) (int, error) {
	if s.broken.Load() {
		return 0, errors.New("no space left on device")
	}
	return s.syncBuffer.Write(p)
}

func (u *testUpstream) requests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.subjects)
}

func readyz(t *testing.T, env *muxEnv) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(env.gw.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	return resp.StatusCode, body
}

// TestAuditSinkFailureRefusesBeforeTheUpstream: once the audit sink cannot
// write, new operations are refused before any upstream is called (a
// JSON-RPC error with CodeAuditUnavailable), /readyz says not ready, and
// the result of a call that already ran upstream when its record failed is
// delivered (its record stays queued and is written on recovery). When the
// sink recovers, calls work again and every queued record is in the log.
func TestAuditSinkFailureRefusesBeforeTheUpstream(t *testing.T) {
	sink := &breakableSink{}
	env := startMuxOpts(t, nil, Options{AuditOutput: sink, auditRetry: 5 * time.Millisecond})
	env.audit = &sink.syncBuffer
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	for range 2 { // both take the forwarding path
		if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}
	if code, _ := readyz(t, env); code != http.StatusOK {
		t.Fatalf("readyz = %d before the failure", code)
	}

	// The sink fails while a call is already admitted: the upstream ran,
	// so its result is delivered and its record is kept in the queue.
	sink.broken.Store(true)
	res, err := callJSON(t, alice, "crm_echo", map[string]any{"n": "ran-while-failing"})
	if err != nil || res.IsError {
		t.Fatalf("call whose record failed after the upstream ran: %v %+v", err, res)
	}

	// Now every new operation is refused before any upstream call.
	before, beforeDocs := env.crm.requests(), env.docs.requests()
	refused := func(what string, err error) {
		t.Helper()
		var je *jsonrpc.Error
		if !errors.As(err, &je) || je.Code != CodeAuditUnavailable || !strings.Contains(je.Message, "audit") {
			t.Errorf("%s while the audit sink fails: %v, want code %d", what, err, CodeAuditUnavailable)
		}
	}
	_, err = callJSON(t, alice, "crm_who", map[string]any{})
	refused("tools/call", err)
	_, err = alice.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "docs_greet", Arguments: map[string]string{"who": "x"}})
	refused("prompts/get", err)
	_, err = alice.ReadResource(context.Background(), &mcp.ReadResourceParams{URI: "docs://handbook"})
	refused("resources/read", err)
	_, err = alice.ListTools(context.Background(), nil)
	refused("tools/list", err)
	if n, m := env.crm.requests(), env.docs.requests(); n != before || m != beforeDocs {
		t.Errorf("upstreams were called while the audit sink failed: crm %d→%d, docs %d→%d", before, n, beforeDocs, m)
	}
	code, body := readyz(t, env)
	checks, _ := body["checks"].(map[string]any)
	if code != http.StatusServiceUnavailable || checks["audit"] != "failing" {
		t.Errorf("readyz while failing = %d %v, want 503 with checks.audit failing", code, body)
	}

	// Recovery: the queue is written in the background, calls work again.
	sink.broken.Store(false)
	deadline := time.Now().Add(10 * time.Second)
	for !env.gw.g.audit.Writable() {
		if time.Now().After(deadline) {
			t.Fatal("audit sink did not recover")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if code, _ := readyz(t, env); code != http.StatusOK {
		t.Errorf("readyz = %d after recovery", code)
	}
	if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
		t.Fatalf("call after recovery: %v", err)
	}
	res2, _ := audit.Verify(strings.NewReader(sink.String()))
	if !res2.OK {
		t.Fatalf("audit log after recovery: %s", res2)
	}
	var ranWhileFailing, refusals int
	for _, r := range sink.Lines() {
		if r["tool"] == "echo" && r["outcome"] == "ok" {
			ranWhileFailing++
		}
		if r["error_class"] == "audit_unavailable" {
			refusals++
		}
	}
	if ranWhileFailing != 1 || refusals != 4 {
		t.Errorf("after recovery the log has %d records of the call that ran while failing (want 1) and %d refusals (want 4):\n%s",
			ranWhileFailing, refusals, sink.String())
	}
}
