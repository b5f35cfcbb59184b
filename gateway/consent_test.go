package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/dispatch"
	"github.com/mandate-gw/mandate/internal/identity"
	"github.com/mandate-gw/mandate/upstreams"
	"github.com/mandate-gw/mandate/upstreams/credentials"
)

// connectedUsers stands in for the per-user grants of the authorization_code flow
// until that flow lands: which users have connected their account at a
// gated upstream.
type connectedUsers struct {
	mu sync.Mutex
	m  map[string]bool // subject → connected
}

func newGrants() *connectedUsers { return &connectedUsers{m: map[string]bool{}} }

func (g *connectedUsers) set(sub string, ok bool) { g.mu.Lock(); g.m[sub] = ok; g.mu.Unlock() }
func (g *connectedUsers) has(sub string) bool     { g.mu.Lock(); defer g.mu.Unlock(); return g.m[sub] }

// gatedSource wraps an upstream's real credentials source: for a user who
// has not connected it answers what the broker answers when the
// authorization_code flow finds no grant — a *credentials.Error wrapping a
// *credentials.ConsentRequiredError.
type gatedSource struct {
	credentials.Source
	upstream string
	g        *connectedUsers
}

func (s *gatedSource) Token(ctx context.Context) (credentials.Result, error) {
	if id := identity.FromContext(ctx); id == nil || !s.g.has(id.Subject) {
		return credentials.Result{}, &credentials.Error{Upstream: s.upstream, Flow: "authorization_code",
			Err: &credentials.ConsentRequiredError{Upstream: s.upstream, Reason: "no_grant"}}
	}
	return s.Source.Token(ctx)
}

// testLink is the connect link of the tests' ConnectLink: deterministic, so
// that two gateways give the same answer.
func testLink(upstream, subject string) (string, string) {
	return "https://mandate.test/connect/start?t=" + upstream + "." + subject, "el-" + upstream + "-" + subject
}

// consentOptions gates the credentials of the upstreams in gated and, when
// links is true, gives the dispatcher testLink as its ConnectLink; hook sees
// the dispatcher too.
func consentOptions(gated map[string]*connectedUsers, links bool, hook func(*dispatch.Dispatcher)) Options {
	return Options{
		NewAdapter: func(cfg upstreams.Config, src credentials.Source) (upstreams.Adapter, error) {
			if g := gated[cfg.Name]; g != nil {
				src = &gatedSource{Source: src, upstream: cfg.Name, g: g}
			}
			return upstreams.NewAdapter(cfg, upstreams.Deps{Credentials: src})
		},
		dispatchHook: func(d *dispatch.Dispatcher) {
			if links {
				d.ConnectLink = func(id *identity.Identity, upstream, reason string) (string, string, error) {
					if reason != "no_grant" {
						return "", "", fmt.Errorf("reason %q", reason)
					}
					u, e := testLink(upstream, id.Subject)
					return u, e, nil
				}
			}
			if hook != nil {
				hook(d)
			}
		},
	}
}

var urlElicitation = &mcp.ClientCapabilities{Elicitation: &mcp.ElicitationCapabilities{URL: &mcp.URLElicitationCapabilities{}}}

// lastCallRecord is the last tools/call audit record.
func lastCallRecord(t *testing.T, env *muxEnv) map[string]any {
	t.Helper()
	lines := env.audit.Lines()
	for i := len(lines) - 1; i >= 0; i-- {
		if lines[i]["method"] == "tools/call" {
			return lines[i]
		}
	}
	t.Fatal("no tools/call audit record")
	return nil
}

// checkConsentRecord checks the audit record of a call answered with "connect
// first", and that no audit line carries a connect link.
func checkConsentRecord(t *testing.T, env *muxEnv, class string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		rec := lastCallRecord(t, env)
		if rec["outcome"] == "error" && rec["error_class"] == class {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit record %v, want outcome error, error_class %s", rec, class)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if strings.Contains(env.audit.String(), "connect/start") {
		t.Errorf("the audit log carries a connect link:\n%s", env.audit.String())
	}
}

// TestConsentURLElicitation: a 2025-11-25 client that declared URL
// elicitation, calling a tool of an upstream where the user has not
// connected, gets -32042 with the connect link — when the listing that
// admits the tool needs the grant (the upstream session is opened) and
// when an open session's grant went away — and, once the connect service
// reports the connection, notifications/elicitation/complete; the retry
// then runs as the user.
func TestConsentURLElicitation(t *testing.T) {
	g := newGrants()
	env := startMuxOpts(t, nil, consentOptions(map[string]*connectedUsers{"crm": g}, true, nil))
	ctx := context.Background()
	completed := make(chan string, 4)
	c := mcp.NewClient(&mcp.Implementation{Name: "url-client", Version: "1"}, &mcp.ClientOptions{
		Capabilities: urlElicitation,
		ElicitationCompleteHandler: func(_ context.Context, r *mcp.ElicitationCompleteNotificationRequest) {
			completed <- r.Params.ElicitationID
		},
	})
	cs, err := c.Connect(ctx, transportFor(env.gw.mcpURL, env.aliceTk), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cs.Close() })
	wantURL, wantID := testLink("crm", "user-alice")

	expectElicitation := func(what string) {
		t.Helper()
		_, err := callJSON(t, cs, "crm_who", map[string]any{})
		var je *jsonrpc.Error
		if !errors.As(err, &je) || je.Code != mcp.CodeURLElicitationRequired {
			t.Fatalf("%s: %v, want JSON-RPC error %d", what, err, mcp.CodeURLElicitationRequired)
		}
		var data struct {
			Elicitations []mcp.ElicitParams `json:"elicitations"`
		}
		if err := json.Unmarshal(je.Data, &data); err != nil || len(data.Elicitations) != 1 {
			t.Fatalf("%s: error data %s (%v), want one elicitation", what, je.Data, err)
		}
		e := data.Elicitations[0]
		if e.Mode != "url" || e.URL != wantURL || e.ElicitationID != wantID || !strings.Contains(e.Message, "crm") {
			t.Errorf("%s: elicitation %+v, want mode url, url %s, elicitationId %s and a message naming crm", what, e, wantURL, wantID)
		}
		if !strings.Contains(je.Message, "crm") || strings.Contains(je.Message, "connect/start") {
			t.Errorf("%s: message %q: want one naming crm, without the link (it is in data)", what, je.Message)
		}
		checkConsentRecord(t, env, "consent_required")
	}
	expectElicitation("no grant, session opened by the call")

	g.set("user-alice", true)
	env.gw.g.dispatch.ElicitationCompleted(ctx, wantID)
	select {
	case id := <-completed:
		if id != wantID {
			t.Errorf("notifications/elicitation/complete for %q, want %q", id, wantID)
		}
	case <-time.After(5 * time.Second):
		t.Error("no notifications/elicitation/complete")
	}
	res, err := callJSON(t, cs, "crm_who", map[string]any{})
	if err != nil || res.IsError || !strings.Contains(toolText(res), "alice") {
		t.Fatalf("after connecting: %v %v", res, err)
	}

	// The grant goes away while the upstream session is open.
	g.set("user-alice", false)
	expectElicitation("grant gone, session open")
}

// TestConsentToolError: clients that cannot open a URL for the user (no
// elicitation, or form elicitation only) get a tool error that says what to
// open and why; without a connect service the tool error says that per-user
// connections are not configured.
func TestConsentToolError(t *testing.T) {
	g := newGrants()
	env := startMuxOpts(t, nil, consentOptions(map[string]*connectedUsers{"crm": g}, true, nil))
	wantURL, _ := testLink("crm", "user-bob")
	for name, caps := range map[string]*mcp.ClientCapabilities{
		"no elicitation": nil,
		"form only":      {Elicitation: &mcp.ElicitationCapabilities{Form: &mcp.FormElicitationCapabilities{}}},
	} {
		t.Run(name, func(t *testing.T) {
			c := mcp.NewClient(&mcp.Implementation{Name: "plain", Version: "1"}, &mcp.ClientOptions{Capabilities: caps})
			cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.bobTk), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close()
			res, err := callJSON(t, cs, "crm_who", map[string]any{})
			if err != nil || !res.IsError || !strings.Contains(toolText(res), wantURL) || !strings.Contains(toolText(res), "Connect your crm account first") {
				t.Fatalf("got %v %v, want a tool error naming crm and %s", res, err, wantURL)
			}
			checkConsentRecord(t, env, "consent_required")
		})
	}

	t.Run("not configured", func(t *testing.T) {
		env := startMuxOpts(t, nil, consentOptions(map[string]*connectedUsers{"crm": newGrants()}, false, nil))
		c := mcp.NewClient(&mcp.Implementation{Name: "url-client", Version: "1"}, &mcp.ClientOptions{Capabilities: urlElicitation})
		cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.aliceTk), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := callJSON(t, cs, "crm_who", map[string]any{})
		if err != nil || !res.IsError || !strings.Contains(toolText(res), "no per-user connections configured") {
			t.Fatalf("got %v %v, want a tool error saying per-user connections are not configured", res, err)
		}
		checkConsentRecord(t, env, "consent_required")
	})
}

// post2026 posts one 2026-07-28 request (per-request _meta, standard
// headers) and returns the JSON-RPC response.
func post2026(t *testing.T, env *muxEnv, tok, method, name, params string) map[string]any {
	t.Helper()
	meta := `"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"url":{}}}}`
	body := `{"jsonrpc":"2.0","id":"` + fmt.Sprint(time.Now().UnixNano()) + `","method":"` + method + `","params":{"name":"` + name + `",` + meta + "," + params + `}}`
	h := bearer(tok)
	h["Mcp-Protocol-Version"], h["Mcp-Method"], h["Mcp-Name"] = "2026-07-28", method, name
	_, out := env.gw.post(t, body, h)
	resp, _ := diffMessages(t, name, out)
	if resp == nil {
		t.Fatalf("no response: %s", out)
	}
	return resp
}

// TestConsentInputRequired: a 2026-07-28 client that declared URL
// elicitation gets an input_required result carrying the connect link and
// a sealed requestState; a retry with the requestState is refused when it
// was altered, is another user's, is for another call or has expired, ends
// the call when the user declined, asks again while the user has not
// connected, and runs the call once they have. A go-sdk client does the
// whole exchange by itself.
func TestConsentInputRequired(t *testing.T) {
	g := newGrants()
	var skew atomic.Int64
	env := startMuxOpts(t, func(c *Config) { c.Server.Session.Mode = SessionStateless },
		consentOptions(map[string]*connectedUsers{"crm": g}, true, func(d *dispatch.Dispatcher) {
			d.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		}))
	wantURL, _ := testLink("crm", "user-alice")
	args := `"arguments":{"a":1,"b":[true,"x"]}`
	ask := func(t *testing.T, tok, params string) (state string) {
		t.Helper()
		resp := post2026(t, env, tok, "tools/call", "crm_echo", params)
		res, _ := resp["result"].(map[string]any)
		if res == nil || res["resultType"] != "input_required" {
			t.Fatalf("answer %v, want an input_required result", resp)
		}
		if _, has := res["content"]; has {
			t.Errorf("input_required result with content: %v", res)
		}
		reqs, _ := res["inputRequests"].(map[string]any)
		if len(reqs) != 1 {
			t.Fatalf("inputRequests %v, want one", res["inputRequests"])
		}
		for _, r := range reqs {
			r, _ := r.(map[string]any)
			p, _ := r["params"].(map[string]any)
			if r["method"] != "elicitation/create" || p["mode"] != "url" || p["url"] != wantURL || !strings.Contains(fmt.Sprint(p["message"]), "crm") {
				t.Errorf("input request %v, want elicitation/create in url mode with %s", r, wantURL)
			}
		}
		state, _ = res["requestState"].(string)
		if state == "" {
			t.Fatalf("no requestState: %v", res)
		}
		checkConsentRecord(t, env, "consent_required")
		return state
	}
	retry := func(state, action string) string {
		return args + `,"inputResponses":{"mandate_connect":{"action":"` + action + `"}},"requestState":"` + state + `"`
	}
	refused := func(t *testing.T, resp map[string]any, want string) {
		t.Helper()
		e, _ := resp["error"].(map[string]any)
		if e == nil || e["code"] != float64(jsonrpc.CodeInvalidParams) || !strings.Contains(fmt.Sprint(e["message"]), want) {
			t.Fatalf("answer %v, want invalid params (%q)", resp, want)
		}
		checkConsentRecord(t, env, "invalid_request_state")
	}

	state := ask(t, env.aliceTk, args)
	t.Run("retry before connecting asks again", func(t *testing.T) {
		if again := ask(t, env.aliceTk, retry(state, "accept")); again == state {
			t.Error("the same requestState again")
		}
	})
	t.Run("tampered", func(t *testing.T) {
		b := []byte(state)
		b[len(b)/2] ^= 1
		if b[len(b)/2] == '-' || b[len(b)/2] == '_' { // keep it base64url
			b[len(b)/2] = 'A'
		}
		refused(t, post2026(t, env, env.aliceTk, "tools/call", "crm_echo", retry(string(b), "accept")), "invalid")
	})
	t.Run("another user", func(t *testing.T) {
		g.set("user-bob", true)
		defer g.set("user-bob", false)
		refused(t, post2026(t, env, env.bobTk, "tools/call", "crm_echo", retry(state, "accept")), "another call or user")
	})
	t.Run("another call", func(t *testing.T) {
		params := strings.Replace(retry(state, "accept"), `"a":1`, `"a":2`, 1)
		refused(t, post2026(t, env, env.aliceTk, "tools/call", "crm_echo", params), "another call or user")
	})
	t.Run("declined", func(t *testing.T) {
		resp := post2026(t, env, env.aliceTk, "tools/call", "crm_echo", retry(state, "decline"))
		res, _ := resp["result"].(map[string]any)
		if res == nil || res["isError"] != true || !strings.Contains(fmt.Sprint(res["content"]), "did not connect") {
			t.Fatalf("answer %v, want a tool error saying the user did not connect", resp)
		}
		checkConsentRecord(t, env, "consent_declined")
	})
	t.Run("connected: the retry runs the call", func(t *testing.T) {
		g.set("user-alice", true)
		defer g.set("user-alice", false)
		// The same arguments, encoded otherwise.
		params := strings.Replace(retry(state, "accept"), `{"a":1,"b":[true,"x"]}`, `{ "b": [true, "x"], "a": 1.0e0 }`, 1)
		resp := post2026(t, env, env.aliceTk, "tools/call", "crm_echo", params)
		res, _ := resp["result"].(map[string]any)
		if res == nil || res["isError"] == true || !strings.Contains(fmt.Sprint(res["content"]), `"a"`) {
			t.Fatalf("answer %v, want the tool's result", resp)
		}
	})
	t.Run("expired", func(t *testing.T) {
		skew.Store(int64(dispatch.RequestStateTTL + time.Second))
		defer skew.Store(0)
		refused(t, post2026(t, env, env.aliceTk, "tools/call", "crm_echo", retry(state, "accept")), "expired")
	})

	t.Run("go-sdk client", func(t *testing.T) {
		g.set("user-alice", false)
		asked := make(chan *mcp.ElicitParams, 1)
		c := mcp.NewClient(&mcp.Implementation{Name: "mrtr-client", Version: "1"}, &mcp.ClientOptions{
			Capabilities: urlElicitation,
			ElicitationHandler: func(_ context.Context, r *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
				asked <- r.Params
				g.set("user-alice", true) // the user opens the link and connects
				return &mcp.ElicitResult{Action: "accept"}, nil
			},
		})
		cs, err := c.Connect(context.Background(), transportFor(env.gw.mcpURL, env.aliceTk), &mcp.ClientSessionOptions{ProtocolVersion: "2026-07-28"})
		if err != nil {
			t.Fatal(err)
		}
		defer cs.Close()
		res, err := callJSON(t, cs, "crm_who", map[string]any{})
		if err != nil || res.IsError || !strings.Contains(toolText(res), "alice") {
			t.Fatalf("got %v %v, want the tool's result after connecting", res, err)
		}
		select {
		case p := <-asked:
			if p.Mode != "url" || p.URL != wantURL {
				t.Errorf("elicitation %+v, want url mode with %s", p, wantURL)
			}
		default:
			t.Error("the client was never asked to open the link")
		}
	})
}
