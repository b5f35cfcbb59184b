// Command mandate is the Mandate MCP gateway.
//
//	mandate serve    --config config.yaml   run the gateway
//	mandate validate --config config.yaml   check a configuration file
//	mandate demo                            run a self-contained demo
//	mandate version                         print the version
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mandate-gw/mandate/gateway/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
