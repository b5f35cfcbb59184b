// Command mandate is the Mandate MCP gateway.
//
//	mandate serve    --config config.yaml   run the gateway
//	mandate validate --config config.yaml   check a configuration file
//	mandate version                         print the version
//
// The self-contained demo is a separate binary, cmd/mandate-demo, so this
// one carries no IdP and no sandbox.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mandate-gw/mandate/cmd/mandate/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
