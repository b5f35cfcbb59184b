package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/internal/app/devidp"
	"github.com/mandate-gw/mandate/internal/testenv/nodetools"
)

// whoami is the part of the whoami tool's structured result the tests check.
type whoami struct {
	Issuer  string   `json:"issuer"`
	Subject string   `json:"subject"`
	Email   string   `json:"email"`
	Roles   []string `json:"roles"`
	Scopes  []string `json:"scopes"`
}

func TestValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := `server:
  listen: 127.0.0.1:8080
  public_url: http://127.0.0.1:8080
identity:
  issuer: http://127.0.0.1:9999
  required_scopes: [mcp]
`
	tests := []struct {
		name string
		yaml string
		// want are substrings of stderr; "FILE" is replaced by the file's path.
		want []string
	}{
		{"typo key", strings.Replace(good, "required_scopes", "requird_scopes", 1),
			[]string{"FILE:6:", "identity.requird_scopes", "unknown key"}},
		{"missing issuer", strings.Replace(good, "  issuer: http://127.0.0.1:9999\n", "", 1),
			[]string{"FILE:4:", "identity.issuer", "required"}},
		{"bad duration", strings.Replace(good, "  public_url: http://127.0.0.1:8080\n", "  public_url: http://127.0.0.1:8080\n  shutdown_grace: 5 parsecs\n", 1),
			[]string{"FILE:4:", "server.shutdown_grace", "5 parsecs"}},
		{"undefined variable", strings.Replace(good, "http://127.0.0.1:9999", "${MANDATE_E2E_SURELY_UNDEFINED}", 1),
			[]string{"FILE:5:", "identity.issuer", "MANDATE_E2E_SURELY_UNDEFINED", "not set"}},
	}
	t.Run("valid", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(dir, "good.yaml")
		if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runMandate(t, "validate", "--config", path)
		if code != 0 || !strings.Contains(stdout, path+": ok") {
			t.Fatalf("validate good config: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("example config.yaml", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(repoRoot, "config.yaml")
		code, stdout, stderr := runMandate(t, "validate", "--config", path)
		if code != 0 {
			t.Fatalf("validate %s: exit %d, stdout %q, stderr %q", path, code, stdout, stderr)
		}
	})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, fmt.Sprintf("bad%d.yaml", i))
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runMandate(t, "validate", "--config", path)
			if code != 1 {
				t.Errorf("exit code = %d, want 1 (stdout %q, stderr %q)", code, stdout, stderr)
			}
			for _, w := range tt.want {
				w = strings.ReplaceAll(w, "FILE", path)
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not contain %q", stderr, w)
				}
			}
		})
	}
}

func TestInspectorCLI(t *testing.T) {
	nodetools.RequireInspector(t)
	t.Parallel()
	idp := startIdP(t)
	m := startMandate(t, baseConfig(idp.Issuer()))
	alice := token(t, idp, "alice", m.MCPURL)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("tools/list", func(t *testing.T) {
		out, err := nodetools.RunInspector(ctx, m.MCPURL, alice, "tools/list")
		if err != nil {
			t.Fatal(err)
		}
		var res struct {
			Tools []struct {
				Name        string         `json:"name"`
				InputSchema map[string]any `json:"inputSchema"`
			} `json:"tools"`
		}
		if err := nodetools.InspectorResult(out, &res); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tool := range res.Tools {
			names = append(names, tool.Name)
		}
		if !slices.Contains(names, "whoami") {
			t.Fatalf("tools/list = %v, want whoami among them", names)
		}
	})

	for _, user := range []struct{ name, sub, role string }{{"alice", "user-alice", "sales"}, {"bob", "user-bob", "support"}} {
		t.Run("tools/call whoami as "+user.name, func(t *testing.T) {
			tok := alice
			if user.name != "alice" {
				tok = token(t, idp, user.name, m.MCPURL)
			}
			out, err := nodetools.RunInspector(ctx, m.MCPURL, tok, "tools/call", "--tool-name", "whoami")
			if err != nil {
				t.Fatal(err)
			}
			var res struct {
				IsError           bool   `json:"isError"`
				StructuredContent whoami `json:"structuredContent"`
				Content           []struct {
					Type, Text string
				} `json:"content"`
			}
			if err := nodetools.InspectorResult(out, &res); err != nil {
				t.Fatal(err)
			}
			w := res.StructuredContent
			if res.IsError || w.Subject != user.sub || w.Issuer != idp.Issuer() || !slices.Contains(w.Roles, user.role) {
				t.Fatalf("whoami as %s = %s", user.name, out)
			}
			if len(res.Content) == 0 || !strings.Contains(res.Content[0].Text, user.sub) {
				t.Errorf("whoami text content = %+v, want it to name %s", res.Content, user.sub)
			}
		})
	}

	bobOtherAud := token(t, idp, "bob", "https://someone-else.example.com/mcp")
	for _, tc := range []struct{ name, token string }{
		{"no token", ""},
		{"garbage token", "not-a-jwt-at-all"},
		{"token for another audience", bobOtherAud},
		{"tampered token", tamper(alice)},
	} {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			out, err := nodetools.RunInspector(ctx, m.MCPURL, tc.token, "tools/call", "--tool-name", "whoami")
			var ie *nodetools.InspectorError
			if !errors.As(err, &ie) {
				t.Fatalf("inspector with %s: err = %v, output %s; want an InspectorError", tc.name, err, out)
			}
			if ie.ExitCode != nodetools.InspectorExitAuthRequired || ie.Code != "auth_required" {
				t.Errorf("inspector with %s: exit %d code %q, want exit %d auth_required (%v)", tc.name, ie.ExitCode, ie.Code, nodetools.InspectorExitAuthRequired, err)
			}
			if strings.Contains(string(out), "user-") {
				t.Errorf("refused call printed an identity: %s", out)
			}
			if tc.token != "" && strings.Contains(err.Error(), tc.token) {
				t.Errorf("error text contains the token")
			}
		})
	}

	t.Run("still serving after refusals", func(t *testing.T) {
		if m.Exited() {
			t.Fatalf("mandate exited")
		}
		out, err := nodetools.RunInspector(ctx, m.MCPURL, alice, "tools/call", "--tool-name", "whoami")
		if err != nil {
			t.Fatal(err)
		}
		var res struct{ StructuredContent whoami }
		if err := nodetools.InspectorResult(out, &res); err != nil || res.StructuredContent.Subject != "user-alice" {
			t.Fatalf("whoami after refusals = %s (%v)", out, err)
		}
	})
}

// tamper flips one character of the JWT's signature.
func tamper(tok string) string {
	b := []byte(tok)
	i := len(b) - 5
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// headerTransport adds a bearer token to every request of a go-sdk client.
type headerTransport struct {
	token string
	base  http.RoundTripper
}

func (h *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	if h.token != "" {
		r.Header.Set("Authorization", "Bearer "+h.token)
	}
	return h.base.RoundTrip(r)
}

// connect opens a go-sdk client session to endpoint with token.
func connect(ctx context.Context, endpoint, token string) (*mcp.ClientSession, error) {
	c := mcp.NewClient(&mcp.Implementation{Name: "mandate-e2e", Version: "1"}, nil)
	return c.Connect(ctx, &mcp.StreamableClientTransport{
		Endpoint:   endpoint,
		HTTPClient: &http.Client{Transport: &headerTransport{token: token, base: http.DefaultTransport}},
	}, nil)
}

func callWhoAmI(ctx context.Context, cs *mcp.ClientSession) (whoami, error) {
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return whoami{}, err
	}
	if res.IsError {
		return whoami{}, fmt.Errorf("whoami returned an error result: %+v", res.Content)
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		return whoami{}, err
	}
	var w whoami
	return w, json.Unmarshal(b, &w)
}

func TestGoSDKClient(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	for _, mode := range []string{"stateful", "stateless"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			cfg := strings.Replace(baseConfig(idp.Issuer()), "  shutdown_grace: 5s\n", "  shutdown_grace: 5s\n  session:\n    mode: "+mode+"\n", 1)
			m := startMandate(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			for _, u := range []struct{ name, sub string }{{"alice", "user-alice"}, {"bob", "user-bob"}} {
				cs, err := connect(ctx, m.MCPURL, token(t, idp, u.name, m.MCPURL))
				if err != nil {
					t.Fatalf("connect as %s: %v", u.name, err)
				}
				tools, err := cs.ListTools(ctx, nil)
				if err != nil {
					t.Fatalf("tools/list as %s: %v", u.name, err)
				}
				if !slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "whoami" }) {
					t.Errorf("tools/list as %s has no whoami", u.name)
				}
				w, err := callWhoAmI(ctx, cs)
				if err != nil {
					t.Fatalf("whoami as %s: %v", u.name, err)
				}
				if w.Subject != u.sub || w.Issuer != idp.Issuer() || !slices.Contains(w.Scopes, "mcp") {
					t.Errorf("whoami as %s = %+v, want subject %s, issuer %s, scope mcp", u.name, w, u.sub, idp.Issuer())
				}
				cs.Close()
			}
			if _, err := connect(ctx, m.MCPURL, ""); err == nil {
				t.Errorf("connect without a token succeeded")
			}
			if code := m.Stop(t); code != 0 {
				t.Errorf("exit code after SIGTERM = %d, want 0", code)
			}
		})
	}
}

// TestSIGTERM: a request in flight when SIGTERM arrives still gets its
// answer, no new connection is accepted, and the process exits 0 within
// shutdown_grace.
func TestSIGTERM(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	m := startMandate(t, baseConfig(idp.Issuer()))
	tok := token(t, idp, "alice", m.MCPURL)

	// A request whose body is only half sent is in flight: the handler runs
	// and is reading the body.
	body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`
	conn, err := net.Dial("tcp", m.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /mcp HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: %d\r\n\r\n", m.Addr, tok, len(body))
	half := len(body) / 2
	if _, err := io.WriteString(conn, head+body[:half]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the server start the handler

	start := time.Now()
	if err := m.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes promptly.
	deadline := time.Now().Add(3 * time.Second)
	for !portClosed(m.Addr) {
		if time.Now().After(deadline) {
			t.Fatalf("port %s still accepting connections 3s after SIGTERM", m.Addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m.Exited() {
		t.Fatalf("mandate exited with a request in flight; logs:\n%s", m.Logs())
	}

	// The in-flight request completes.
	if _, err := io.WriteString(conn, body[half:]); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the in-flight response: %v", err)
	}
	rb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(rb), `"serverInfo"`) {
		t.Fatalf("in-flight initialize after SIGTERM = %d %s", resp.StatusCode, rb)
	}
	conn.Close()

	code, ok := m.Wait(5*time.Second + 5*time.Second) // shutdown_grace 5s + margin
	if !ok {
		t.Fatalf("mandate still running %v after SIGTERM", time.Since(start))
	}
	if code != 0 {
		t.Fatalf("exit code = %d, want 0; logs:\n%s", code, m.Logs())
	}
	if !strings.Contains(m.Logs(), "shutting down") {
		t.Errorf("logs do not mention the shutdown:\n%s", m.Logs())
	}
}

// TestLogsHoldNoTokens runs good and bad requests at debug level and scans
// everything the process wrote for any token or its signature.
func TestLogsHoldNoTokens(t *testing.T) {
	t.Parallel()
	idp := startIdP(t)
	m := startMandate(t, baseConfig(idp.Issuer()), "--log-level", "debug")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	alice := token(t, idp, "alice", m.MCPURL)
	wrongAud := token(t, idp, "bob", "https://other.example.com/mcp")
	noScope, err := idp.Token(ctx, "alice", devidp.TokenOptions{Audience: []string{m.MCPURL}})
	if err != nil {
		t.Fatal(err)
	}
	tampered := tamper(alice)
	secrets := []string{alice, wrongAud, noScope, tampered}

	cs, err := connect(ctx, m.MCPURL, alice)
	if err != nil {
		t.Fatal(err)
	}
	if w, err := callWhoAmI(ctx, cs); err != nil || w.Subject != "user-alice" {
		t.Fatalf("whoami = %+v, %v", w, err)
	}
	cs.Close()
	for _, bad := range []string{wrongAud, noScope, tampered} {
		if _, err := connect(ctx, m.MCPURL, bad); err == nil {
			t.Errorf("connect with a bad token succeeded")
		}
	}
	if code := m.Stop(t); code != 0 {
		t.Errorf("exit code = %d, want 0", code)
	}
	logs := m.Logs()
	if !strings.Contains(logs, `"level":"DEBUG"`) && !strings.Contains(logs, `"level":"INFO"`) {
		t.Fatalf("expected JSON logs, got:\n%s", logs)
	}
	for i, s := range secrets {
		sig := s[strings.LastIndexByte(s, '.')+1:]
		if strings.Contains(logs, s) || strings.Contains(logs, sig) {
			t.Errorf("token %d (or its signature) appears in the logs", i)
		}
	}
}
