package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/control/node"
	"github.com/vigil-ha/vigil/control/np"
	"github.com/vigil-ha/vigil/control/resource"
	"github.com/vigil-ha/vigil/control/script"
	"github.com/vigil-ha/vigil/dataplane/heartbeat"
	"github.com/vigil-ha/vigil/dataplane/ping"
	"github.com/vigil-ha/vigil/dataplane/vip"
	"github.com/vigil-ha/vigil/metrics"
)

// daemon wires the layers of one node together.
type daemon struct {
	o       options
	log     *slog.Logger
	cfg     *config.Config
	node    *node.Node
	hb      *heartbeat.Engine
	binder  vip.Binder
	pinger  *ping.Pinger
	metrics *metrics.Metrics
}

func newDaemon(o options, log *slog.Logger) (*daemon, error) {
	cfg, err := config.Load(o.config)
	if err != nil {
		return nil, err
	}
	self := cfg.ServerIndex(o.server)
	if self < 0 {
		return nil, fmt.Errorf("server %q is not in %s: start vigild with -server NAME", o.server, o.config)
	}
	d := &daemon{o: o, log: log, cfg: cfg, metrics: metrics.New(cfg.Cluster.Name, o.server)}

	managed, err := floatingBindings(cfg, o.server)
	if err != nil {
		return nil, err
	}
	d.binder = vip.NewNetlink(managed, log)
	if d.pinger, err = ping.New(); err != nil {
		log.Warn("no ICMP socket: ip monitors and ping NP targets will fail", "err", err)
	}
	runner := script.Exec{}
	addrs := resource.NewAddrSet(d.binder)
	factory := &resource.Factory{
		Env:    resource.Env{Cluster: cfg.Cluster.Name, Server: o.server},
		Runner: runner, Addrs: addrs,
	}
	var pinger np.Pinger
	if d.pinger != nil {
		pinger = d.pinger
	}
	d.node, err = node.New(node.Options{
		Config: cfg, Server: o.server,
		Resources: factory.New,
		Monitors:  monitorFactory(cfg, o.server, runner, pinger),
		NP: &np.Targets{Targets: cfg.Cluster.NPResolution.Targets, Pinger: pinger,
			Timeout: cfg.Cluster.NPResolution.Timeout()},
		Runner: runner, Metrics: d.metrics, Log: log, HeartbeatMode: "userspace",
		LaneMisses: d.laneMisses,
	})
	if err != nil {
		return nil, err
	}
	hbCfg, err := heartbeatConfig(cfg, uint8(self))
	if err != nil {
		return nil, err
	}
	hbCfg.Logger = log
	hbCfg.Handler = d.observe
	if d.hb, err = heartbeat.New(hbCfg); err != nil {
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	d.node.SetHeartbeat(d.hb)
	return d, nil
}

// observe adapts a heartbeat observation for the node.
func (d *daemon) observe(o heartbeat.Observation) {
	kind := node.ProbeReceived
	if o.Kind == heartbeat.ReplyReceived {
		kind = node.ReplyReceived
	}
	d.node.Observe(node.Observation{
		Kind: kind, Peer: o.Peer, Lane: o.Lane, RTT: o.RTT,
		ConfigHash: o.ConfigHash, Incarnation: o.Incarnation, Payload: o.Payload,
	})
}

func (d *daemon) run(ctx context.Context) error {
	if err := d.binder.CleanUp(); err != nil {
		return fmt.Errorf("clean up floating addresses left behind: %w", err)
	}
	srv, err := api.Listen(d.o.socket, d.node, d.log)
	if err != nil {
		return err
	}
	defer srv.Close()

	var wg sync.WaitGroup
	defer wg.Wait()
	inner, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 4)
	spawn := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(inner); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	spawn("control api", func(ctx context.Context) error { return srv.Serve(ctx) })
	spawn("heartbeat", d.hb.Run)
	if addr := d.metricsAddress(); addr != "" {
		spawn("metrics", func(ctx context.Context) error { return metrics.Serve(ctx, addr, d.metrics.Handler(), d.log) })
	}
	spawn("heartbeat stats", d.exportStats)

	nodeDone := make(chan error, 1)
	go func() { nodeDone <- d.node.Run(inner) }()
	d.log.Info("vigild running", "config", d.o.config, "socket", d.o.socket, "metrics", d.metricsAddress())
	select {
	case err = <-nodeDone:
	case err = <-errs:
		d.log.Error("component failed: stopping", "err", err)
		cancel()
		if nerr := <-nodeDone; nerr != nil {
			d.log.Error("stopping the node", "err", nerr)
		}
	}
	cancel()
	if d.pinger != nil {
		d.pinger.Close()
	}
	return err
}

func (d *daemon) metricsAddress() string {
	if d.o.metrics != "" {
		return d.o.metrics
	}
	return d.cfg.MetricsAddressFor(d.o.server)
}

// laneMisses reports the heartbeat's per-lane misses for status.
func (d *daemon) laneMisses() map[[2]uint8]uint64 {
	out := make(map[[2]uint8]uint64)
	for pl, n := range d.hb.Stats().Misses {
		out[[2]uint8{pl.Peer, pl.Lane}] = n
	}
	return out
}

// exportStats copies the heartbeat's counters into metrics every second.
func (d *daemon) exportStats(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	seen := make(map[heartbeat.PeerLane]uint64)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st := d.hb.Stats()
		for reason, n := range st.Drops {
			d.metrics.SetHeartbeatDrops(reason, n)
		}
		for pl, n := range st.Misses {
			if n > seen[pl] && int(pl.Peer) < len(d.cfg.Servers) && int(pl.Lane) < len(d.cfg.Lanes) {
				d.metrics.AddLaneMisses(d.cfg.Servers[pl.Peer].Name, d.cfg.Lanes[pl.Lane].Name, n-seen[pl])
			}
			seen[pl] = n
		}
	}
}

// floatingBindings lists every floating address this server may hold: the
// set vigild manages, and cleans up at start.
func floatingBindings(cfg *config.Config, server string) ([]vip.Binding, error) {
	var out []vip.Binding
	for gi := range cfg.Groups {
		for ri := range cfg.Groups[gi].Resources {
			r := cfg.Groups[gi].Resources[ri].For(server)
			if r.Type != config.KindFloatingIP {
				continue
			}
			b, err := resource.FloatingBinding(r.FloatingIP)
			if err != nil {
				return nil, err
			}
			out = append(out, b)
		}
	}
	return out, nil
}

// heartbeatConfig derives the heartbeat's lanes and peers.
func heartbeatConfig(cfg *config.Config, self uint8) (heartbeat.Config, error) {
	hc := heartbeat.Config{
		Key: cfg.Key, Self: self, Port: cfg.Cluster.Heartbeat.Port,
		Interval: cfg.Cluster.Heartbeat.Interval(),
	}
	copy(hc.ConfigHash[:], cfg.Hash[:16])
	me := cfg.Servers[self]
	for li, l := range cfg.Lanes {
		local, err := netip.ParseAddr(me.Interconnects[l.Name])
		if err != nil {
			return hc, fmt.Errorf("lane %s address of %s: %w", l.Name, me.Name, err)
		}
		lc := heartbeat.LaneConfig{Index: uint8(li), Name: l.Name, Local: local}
		for si, s := range cfg.Servers {
			if uint8(si) == self {
				continue
			}
			a, err := netip.ParseAddr(s.Interconnects[l.Name])
			if err != nil {
				return hc, fmt.Errorf("lane %s address of %s: %w", l.Name, s.Name, err)
			}
			lc.Peers = append(lc.Peers, heartbeat.Peer{Index: uint8(si), Addr: a})
		}
		hc.Lanes = append(hc.Lanes, lc)
	}
	return hc, nil
}

// monitorFactory builds the real checkers.
func monitorFactory(cfg *config.Config, server string, runner script.Runner, pinger np.Pinger) node.MonitorFactory {
	return func(m *config.Monitor) (monitor.Checker, error) {
		switch m.Type {
		case config.MonitorIP:
			var addrs []netip.Addr
			for _, s := range m.IP.Addresses {
				a, err := netip.ParseAddr(s)
				if err != nil {
					return nil, fmt.Errorf("address %q: %w", s, err)
				}
				addrs = append(addrs, a)
			}
			if pinger == nil {
				return nil, errors.New("ip monitor needs an ICMP socket (run as root)")
			}
			return monitor.NewIP(pinger, addrs), nil
		case config.MonitorTCP:
			return monitor.NewTCP(m.TCP.Address), nil
		case config.MonitorExec:
			env := []string{"VIGIL_CLUSTER=" + cfg.Cluster.Name, "VIGIL_SERVER=" + server, "VIGIL_MONITOR=" + m.Name}
			for k, v := range m.Exec.Env {
				env = append(env, k+"="+v)
			}
			return monitor.NewExec(runner, script.Spec{Path: m.Exec.Script, Env: env}), nil
		default:
			return nil, fmt.Errorf("monitor type %s is not supported by this build", m.Type)
		}
	}
}
