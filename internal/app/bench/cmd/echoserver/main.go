// Command echoserver is the benchmark's reference MCP upstream: a go-sdk
// server over streamable HTTP (stateful sessions) at /mcp with three tools:
//
//	echo       returns its "text" argument
//	sleep10ms  sleeps -sleep (default 10ms), then returns "ok"
//	whoami     returns the sub claim of the request's bearer JWT, read
//	           WITHOUT verification (load tests check that every answer
//	           names the caller), or "anonymous" when there is none
//
// With -require-bearer, requests without an Authorization: Bearer header get
// 401. With -debug-addr it serves GET /memstats (Go heap after a forced GC,
// goroutines; JSON) on a separate listener. It logs nothing per request.
//
//	echoserver -addr 127.0.0.1:9001
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mandate-gw/mandate/internal/app/bench"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

type echoArgs struct {
	Text string `json:"text" jsonschema:"the text to return"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9001", "listen address")
	requireBearer := flag.Bool("require-bearer", false, "answer 401 to requests without a bearer token")
	sleep := flag.Duration("sleep", 10*time.Millisecond, "how long sleep10ms sleeps")
	idle := flag.Duration("session-timeout", 10*time.Minute, "close sessions idle this long")
	debugAddr := flag.String("debug-addr", "", "serve GET /memstats on this address")
	flag.Parse()

	srv := mcp.NewServer(&mcp.Implementation{Name: "bench-echo", Version: "1"}, nil)
	mcp.AddTool(srv, &mcp.Tool{Name: "echo", Description: "Returns its text argument."},
		func(_ context.Context, _ *mcp.CallToolRequest, a echoArgs) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: a.Text}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "sleep10ms", Description: "Sleeps, then returns ok."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			t := time.NewTimer(*sleep)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
				return nil, nil, ctx.Err()
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
		})
	mcp.AddTool(srv, &mcp.Tool{Name: "whoami", Description: "Returns the subject of the caller's bearer token (unverified)."},
		func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			who := "anonymous"
			if req.Extra != nil && req.Extra.Header != nil {
				if tok := bench.BearerToken(req.Extra.Header.Get("Authorization")); tok != "" {
					sub, err := bench.UnverifiedSubject(tok)
					if err != nil {
						return nil, nil, fmt.Errorf("whoami: %w", err)
					}
					who = sub
				}
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: who}}}, nil, nil
		})

	var h http.Handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv },
		&mcp.StreamableHTTPOptions{SessionTimeout: *idle})
	if *requireBearer {
		next := h
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if bench.BearerToken(r.Header.Get("Authorization")) == "" {
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				http.Error(w, "bearer token required", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", h)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	if *debugAddr != "" {
		dln, err := net.Listen("tcp", *debugAddr)
		if err != nil {
			log.Fatal(err)
		}
		dmux := http.NewServeMux()
		dmux.Handle("GET /memstats", bench.MemStatsHandler())
		go func() { _ = http.Serve(dln, dmux) }()
	}
	fmt.Printf("echoserver listening on http://%s/mcp\n", ln.Addr())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}
