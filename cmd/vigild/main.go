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
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"unicode"
)

func main() {
	var o options
	flag.StringVar(&o.config, "config", "/etc/vigil/cluster.yaml", "cluster configuration `file`")
	flag.StringVar(&o.server, "server", "", "this node's server `name` (default: the host name)")
	flag.StringVar(&o.socket, "socket", "/run/vigil/vigild.sock", "control socket `path`")
	flag.StringVar(&o.metrics, "metrics", "", "serve /metrics on this `address` (default: from the configuration)")
	flag.StringVar(&o.logLevel, "log-level", "info", "log `level`: debug, info, warn, error")
	flag.StringVar(&o.logFormat, "log-format", "text", "log `format`: text (logfmt) or json, one line per event")
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
	config, server, socket, metrics, logLevel, logFormat string
}

func run(o options) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level %q: %w", o.logLevel, err)
	}
	h, err := logHandler(os.Stderr, o.logFormat, level)
	if err != nil {
		return err
	}
	log := slog.New(h)
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

// logHandler returns the daemon's log handler: one line per event on w, as
// logfmt text or JSON, each with an event attribute.
func logHandler(w io.Writer, format string, level slog.Level) (slog.Handler, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case "text":
		return eventHandler{h: slog.NewTextHandler(w, opts)}, nil
	case "json":
		// Durations as text says them ("1.5ms"), not as nanoseconds.
		opts.ReplaceAttr = func(_ []string, a slog.Attr) slog.Attr {
			if a.Value.Kind() == slog.KindDuration {
				a.Value = slog.StringValue(a.Value.Duration().String())
			}
			return a
		}
		return eventHandler{h: slog.NewJSONHandler(w, opts)}, nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

// eventHandler gives every record an event attribute, a stable snake_case
// name to filter on: the one its call site set, else one made from the
// message (its part before ": " when that part has three words or more).
type eventHandler struct {
	h slog.Handler
	// named is set when attributes added with Logger.With hold an event.
	named bool
}

// Enabled implements slog.Handler.
func (e eventHandler) Enabled(ctx context.Context, l slog.Level) bool { return e.h.Enabled(ctx, l) }

// WithAttrs implements slog.Handler.
func (e eventHandler) WithAttrs(as []slog.Attr) slog.Handler {
	named := e.named
	for _, a := range as {
		named = named || a.Key == "event"
	}
	return eventHandler{h: e.h.WithAttrs(as), named: named}
}

// WithGroup implements slog.Handler.
func (e eventHandler) WithGroup(name string) slog.Handler {
	return eventHandler{h: e.h.WithGroup(name), named: e.named}
}

// Handle implements slog.Handler.
func (e eventHandler) Handle(ctx context.Context, r slog.Record) error {
	if !e.named {
		named := false
		r.Attrs(func(a slog.Attr) bool {
			named = a.Key == "event"
			return !named
		})
		if !named {
			r = r.Clone()
			r.AddAttrs(slog.String("event", eventName(r.Message)))
		}
	}
	return e.h.Handle(ctx, r)
}

// eventName makes an event name of a log message: "vip bound" is
// vip_bound, "eBPF heartbeat unavailable: serving ..." is
// ebpf_heartbeat_unavailable; at most 48 bytes, cut between words.
func eventName(msg string) string {
	if head, _, ok := strings.Cut(msg, ": "); ok && len(strings.Fields(head)) >= 3 {
		msg = head
	}
	words := strings.FieldsFunc(strings.ToLower(msg), func(r rune) bool {
		return !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)))
	})
	var b strings.Builder
	for _, w := range words {
		if b.Len() > 0 && b.Len()+1+len(w) > 48 {
			break
		}
		if b.Len() > 0 {
			b.WriteByte('_')
		}
		b.WriteString(w)
	}
	if b.Len() == 0 {
		return "log"
	}
	return b.String()
}
