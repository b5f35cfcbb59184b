// Command mandate-demo runs Mandate's self-contained demo on 127.0.0.1: an
// IdP, Salesforce and ServiceNow sandboxes, an MCP upstream and the gateway.
// It is a separate binary so that the product binary, cmd/mandate, carries
// no IdP and no sandbox.
//
//	go run ./cmd/mandate-demo          serve the demo until Ctrl-C
//	go run ./cmd/mandate-demo --tour   run a scripted tour as every demo user, then exit
//	go run ./cmd/mandate-demo -h       every flag (--dir, ports, --log-level)
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mandate-gw/mandate/internal/app/demo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := demo.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
