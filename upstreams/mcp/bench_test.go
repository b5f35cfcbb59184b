package mcp

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// BenchmarkCallTool compares one tools/call through the adapter (with a
// per-user credentials source, identity injection, callState, limits) with a
// direct go-sdk client to the same in-process upstream.
func BenchmarkCallTool(b *testing.B) {
	u := newUpstream(b, upstreamOptions{})
	args := json.RawMessage(`{"message":"hello"}`)
	b.Run("direct", func(b *testing.B) {
		tr := &http.Transport{}
		defer tr.CloseIdleConnections()
		c := sdk.NewClient(&sdk.Implementation{Name: "bench"}, nil)
		cs, err := c.Connect(context.Background(), &sdk.StreamableClientTransport{Endpoint: u.URL, HTTPClient: &http.Client{Transport: tr}}, &sdk.ClientSessionOptions{ProtocolVersion: "2025-11-25"})
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := cs.CallTool(context.Background(), &sdk.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("adapter", func(b *testing.B) {
		a, _ := testAdapter(b, u.URL, &fakeSource{}, nil)
		ctx := userCtx(context.Background(), "alice")
		s := open(b, a, ctx, newRecorder())
		defer s.Close()
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.CallTool(ctx, &sdk.CallToolParams{Name: "echo", Arguments: args}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
