// Command vigild is the Vigil node daemon: it loads the cluster
// configuration, runs the heartbeat on every interconnect lane, decides which
// failover groups this node runs, drives their resources and monitors, and
// serves the local control API and Prometheus metrics.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	var o options
	flag.StringVar(&o.config, "config", "/etc/vigil/cluster.yaml", "cluster configuration `file`")
	flag.StringVar(&o.server, "server", "", "this node's server `name` (default: the host name)")
	flag.StringVar(&o.socket, "socket", "/run/vigil/vigild.sock", "control socket `path`")
	flag.StringVar(&o.metrics, "metrics", "", "serve /metrics on this `address` (default: from the configuration)")
	flag.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "vigild: unexpected arguments %q\n", flag.Args())
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "vigild: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	config, server, socket, metrics, logLevel string
}

func run(o options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", o.logLevel, err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if o.server == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("host name: %w", err)
		}
		o.server = h
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	d, err := newDaemon(o, log.With("server", o.server))
	if err != nil {
		return err
	}
	err = d.run(ctx)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}
