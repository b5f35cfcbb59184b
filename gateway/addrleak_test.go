package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mandate-gw/mandate/gateway/dispatch"
)

// closedAddr returns a loopback host:port where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestNoInternalAddressesToClients: an upstream or token endpoint that
// cannot be reached is reported to the client and on /readyz by its name
// and the cause ("connection refused"), never by its internal host:port.
func TestNoInternalAddressesToClients(t *testing.T) {
	upAddr, tokenAddr := closedAddr(t), closedAddr(t)
	_, upPort, _ := net.SplitHostPort(upAddr)
	_, tokenPort, _ := net.SplitHostPort(tokenAddr)
	env := startMux(t, func(c *Config) {
		c.Upstreams[1].URL = "http://" + upAddr + "/mcp"                       // docs: down
		c.Upstreams[0].Credentials.TokenURL = "http://" + tokenAddr + "/token" // crm: token endpoint down
	})
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	var seen []string
	_, err := alice.GetPrompt(context.Background(), &mcp.GetPromptParams{Name: "docs_greet", Arguments: map[string]string{"who": "x"}})
	if err == nil {
		t.Fatal("prompts/get on an unreachable upstream succeeded")
	}
	seen = append(seen, err.Error())
	for _, tool := range []string{"docs_who", "crm_who"} {
		res, err := callJSON(t, alice, tool, map[string]any{})
		switch {
		case err != nil:
			seen = append(seen, err.Error())
		case res.IsError:
			seen = append(seen, toolText(res))
		default:
			t.Fatalf("%s on an unreachable upstream succeeded", tool)
		}
	}
	resp, err := http.Get(env.gw.srv.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	seen = append(seen, string(body))
	for _, s := range seen {
		if strings.Contains(s, upPort) || strings.Contains(s, tokenPort) || strings.Contains(s, "127.0.0.1:") {
			t.Errorf("an internal address reached the client: %s", s)
		}
	}
	if !strings.Contains(seen[0], "connection refused") {
		t.Errorf("the cause is gone from the message: %s", seen[0])
	}
	t.Logf("client sees: %q", seen)
}

// TestNoInternalAddressesOnTheFastPath: a warm call whose upstream went
// away (the fast path's raw POST fails to dial) is reported without the
// upstream's address.
func TestNoInternalAddressesOnTheFastPath(t *testing.T) {
	env := startMux(t, nil)
	alice := connect(t, env.gw.mcpURL, env.aliceTk)
	for range 2 {
		if _, err := callJSON(t, alice, "crm_who", map[string]any{}); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(env.crm.srv.URL, "http://"))
	env.crm.srv.CloseClientConnections()
	env.crm.srv.Close()
	fast := dispatch.ForwardedCalls()
	res, err := callJSON(t, alice, "crm_who", map[string]any{})
	msg := ""
	switch {
	case err != nil:
		msg = err.Error()
	case res.IsError:
		msg = toolText(res)
	default:
		t.Fatal("a call to a stopped upstream succeeded")
	}
	if dispatch.ForwardedCalls() == fast {
		t.Log("note: the call did not take the fast path")
	}
	if strings.Contains(msg, port) || strings.Contains(msg, "127.0.0.1") {
		t.Errorf("the upstream's address reached the client: %s", msg)
	}
	t.Logf("client sees: %q", msg)
}
