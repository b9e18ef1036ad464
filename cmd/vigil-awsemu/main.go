// Command vigil-awsemu serves an offline AWS — EC2, STS and Route 53 on one
// address, IMDSv2 per instance on addresses of their own, and optionally DNS
// for the hosted zones — from a World file, for the demo and manual tests.
// Point Vigil's aws endpoint at -listen and each node's IMDS endpoint at its
// -imds address.
//
// Faults are injected at runtime through the unsigned admin API:
//
//	curl -X POST localhost:4566/_emu/faults -d '{"action":"ReplaceRoute","latency_ms":2000}'
//	curl -X DELETE localhost:4566/_emu/faults
//	curl localhost:4566/_emu/state
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/awsops/awsemu"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	a, err := setup(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigil-awsemu: %v\n", err)
		os.Exit(2)
	}
	if err := a.serve(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "vigil-awsemu: %v\n", err)
		os.Exit(1)
	}
}

// imdsFlag collects -imds INSTANCE_ID=ADDR.
type imdsFlag map[string]string

func (f imdsFlag) String() string {
	parts := make([]string, 0, len(f))
	for id, addr := range f {
		parts = append(parts, id+"="+addr)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

func (f imdsFlag) Set(v string) error {
	id, addr, ok := strings.Cut(v, "=")
	if !ok || id == "" || addr == "" {
		return fmt.Errorf("want INSTANCE_ID=ADDR, got %q", v)
	}
	if _, dup := f[id]; dup {
		return fmt.Errorf("instance %s given twice", id)
	}
	f[id] = addr
	return nil
}

// app is the emulator with its listeners open.
type app struct {
	log    *slog.Logger
	server *awsemu.Server
	api    net.Listener
	imds   map[string]net.Listener
	dns    net.PacketConn
	// shared serves every instance's IMDS on one address, each client
	// by its source address (bySource: address → instance).
	shared   net.Listener
	bySource map[netip.Addr]string
}

// setup parses the flags, loads the World and opens every listener.
func setup(args []string, stderr io.Writer) (*app, error) {
	fs := flag.NewFlagSet("vigil-awsemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	world := fs.String("world", "", "World `file` (YAML), required")
	listen := fs.String("listen", "127.0.0.1:4566", "`address` of the EC2, STS and Route 53 APIs")
	dnsAddr := fs.String("dns", "", "UDP `address` to answer DNS queries for the hosted zones on (default: none)")
	throttle := fs.Bool("throttle", false, "throttle EC2 calls like AWS (token buckets per credential)")
	imds := imdsFlag{}
	fs.Var(imds, "imds", "serve an instance's IMDS: `INSTANCE_ID=ADDR` (repeatable)")
	sharedAddr := fs.String("imds-listen", "", "serve the IMDS of the -imds-client instances on this `address`, telling them apart by source address")
	clients := imdsFlag{}
	fs.Var(clients, "imds-client", "an instance of -imds-listen and the source address it asks from: `INSTANCE_ID=IP` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() != 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *world == "" {
		return nil, errors.New("-world is required")
	}
	w, err := awsemu.LoadWorld(*world)
	if err != nil {
		return nil, err
	}
	for id := range imds {
		if !hasInstance(w, id) {
			return nil, fmt.Errorf("-imds %s: no such instance in %s", id, *world)
		}
	}
	bySource := map[netip.Addr]string{}
	for id, ip := range clients {
		if !hasInstance(w, id) {
			return nil, fmt.Errorf("-imds-client %s: no such instance in %s", id, *world)
		}
		a, err := netip.ParseAddr(ip)
		if err != nil {
			return nil, fmt.Errorf("-imds-client %s=%s: not an IP address", id, ip)
		}
		bySource[a] = id
	}
	if (*sharedAddr == "") != (len(bySource) == 0) {
		return nil, errors.New("-imds-listen and -imds-client go together")
	}

	a := &app{
		log:      slog.New(slog.NewTextHandler(stderr, nil)),
		server:   awsemu.New(w),
		imds:     map[string]net.Listener{},
		bySource: bySource,
	}
	a.server.SetLogger(a.log)
	a.server.SetThrottling(*throttle)
	if a.api, err = net.Listen("tcp", *listen); err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	for id, addr := range imds {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			a.close()
			return nil, fmt.Errorf("listen imds %s: %w", id, err)
		}
		a.imds[id] = l
	}
	if *sharedAddr != "" {
		if a.shared, err = net.Listen("tcp", *sharedAddr); err != nil {
			a.close()
			return nil, fmt.Errorf("listen imds: %w", err)
		}
	}
	if *dnsAddr != "" {
		if a.dns, err = net.ListenPacket("udp", *dnsAddr); err != nil {
			a.close()
			return nil, fmt.Errorf("listen dns: %w", err)
		}
	}
	return a, nil
}

func hasInstance(w *awsemu.World, id string) bool {
	for _, in := range w.Instances {
		if in.ID == id {
			return true
		}
	}
	return false
}

// close closes every listener opened.
func (a *app) close() {
	if a.api != nil {
		a.api.Close()
	}
	for _, l := range a.imds {
		l.Close()
	}
	if a.shared != nil {
		a.shared.Close()
	}
	if a.dns != nil {
		a.dns.Close()
	}
}

// bySourceHandler serves each client the IMDS of its instance, found by
// the request's source address.
func (a *app) bySourceHandler() http.Handler {
	handlers := map[netip.Addr]http.Handler{}
	for ip, id := range a.bySource {
		handlers[ip] = a.server.IMDSHandler(id)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src, err := netip.ParseAddrPort(r.RemoteAddr)
		h, ok := handlers[src.Addr().Unmap()]
		if err != nil || !ok {
			http.Error(w, "no instance at this source address", http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serve serves until ctx ends, then shuts every server down.
func (a *app) serve(ctx context.Context) error {
	var (
		wg      sync.WaitGroup
		errMu   sync.Mutex
		firstEr error
		servers []*http.Server
	)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fail := func(err error) {
		errMu.Lock()
		if firstEr == nil {
			firstEr = err
		}
		errMu.Unlock()
		cancel()
	}
	start := func(name string, l net.Listener, h http.Handler) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
		servers = append(servers, srv)
		a.log.Info("listening", "server", name, "addr", l.Addr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
				fail(fmt.Errorf("serve %s: %w", name, err))
			}
		}()
	}
	start("api", a.api, a.server.Handler())
	ids := make([]string, 0, len(a.imds))
	for id := range a.imds {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		start("imds "+id, a.imds[id], a.server.IMDSHandler(id))
	}
	if a.shared != nil {
		start("imds by source", a.shared, a.bySourceHandler())
	}
	if a.dns != nil {
		a.log.Info("listening", "server", "dns", "addr", a.dns.LocalAddr().String())
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.server.ServeDNS(a.dns); err != nil {
				fail(err)
			}
		}()
	}

	<-ctx.Done()
	a.log.Info("shutting down")
	shutCtx, done := context.WithTimeout(context.Background(), 5*time.Second)
	defer done()
	for _, srv := range servers {
		if err := srv.Shutdown(shutCtx); err != nil {
			srv.Close()
		}
	}
	if a.dns != nil {
		a.dns.Close()
	}
	wg.Wait()
	return firstEr
}
