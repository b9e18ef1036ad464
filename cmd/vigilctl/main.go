// Command vigilctl operates a Vigil node: it shows the cluster's status,
// starts, stops and moves failover groups, suspends monitors and checks
// configuration files. It talks to the local vigild over its control socket.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
