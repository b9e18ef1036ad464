package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vigil-ha/vigil/awsops"
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
	"github.com/vigil-ha/vigil/dataplane/xdpheartbeat"
	"github.com/vigil-ha/vigil/metrics"
)

// daemon wires the layers of one node together.
type daemon struct {
	o       options
	log     *slog.Logger
	cfg     *config.Config
	node    *node.Node
	hb      *heartbeat.Engine
	fp      *xdpheartbeat.Fastpath // nil in userspace mode
	vips    *vipAccounting
	binder  vip.Binder
	pinger  *ping.Pinger
	metrics *metrics.Metrics
	mirrors *mirrors
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

	var awsEnv *resource.AWSEnv
	if usesAWS(cfg) {
		awsEnv = &resource.AWSEnv{Settings: cfg.Cluster.AWS, Observe: d.observeAWS}
	}
	defaultIface := ""
	if needsDefaultInterface(cfg, o.server) {
		if defaultIface, err = defaultRouteInterface(); err != nil {
			return nil, err
		}
	}
	managed, err := floatingBindings(cfg, o.server, defaultIface)
	if err != nil {
		return nil, err
	}
	d.binder = vip.NewNetlink(managed, log)
	d.vips = startVIPAccounting(managed, d.binder, log)
	d.metrics.RegisterVIPTraffic(d.vips.samples)
	if d.pinger, err = ping.New(); err != nil {
		log.Warn("no ICMP socket: ip monitors and ping NP targets will fail", "err", err)
	}
	runner := script.Exec{}
	addrs := resource.NewAddrSet(d.binder)
	addrs.OnBound = d.vips.arm
	factory := &resource.Factory{
		Env:    resource.Env{Cluster: cfg.Cluster.Name, Server: o.server},
		Runner: runner, Addrs: addrs,
		AWS: awsEnv, DefaultInterface: defaultIface,
		Prepare: true, PrepareTimeout: 30 * time.Second,
	}
	if d.mirrors, err = openMirrors(cfg, o.server, log, d.metrics); err != nil {
		return nil, err
	}
	d.metrics.RegisterMirrors(d.mirrors.samples)
	factory.Mirrors = d.mirrors.disks
	var pinger np.Pinger
	if d.pinger != nil {
		pinger = d.pinger
	}
	incarnation := heartbeat.NewIncarnation()
	fp, hbMode, err := loadFastPath(cfg, uint8(self), incarnation, log)
	if err != nil {
		d.mirrors.close(log)
		return nil, err
	}
	d.fp = fp
	d.metrics.SetHeartbeatMode(hbMode)
	d.node, err = node.New(node.Options{
		Config: cfg, Server: o.server,
		Resources: factory.New,
		Monitors:  monitorFactory(cfg, o.server, runner, pinger, factory),
		NP: &np.Targets{Targets: cfg.Cluster.NPResolution.Targets, Pinger: pinger,
			Timeout: cfg.Cluster.NPResolution.Timeout()},
		Runner: runner, Metrics: d.metrics, Log: log, HeartbeatMode: hbMode,
		LaneMisses: d.laneMisses, VIPTraffic: d.vips.traffic, KernelReply: d.kernelReply,
	})
	if err != nil {
		d.closeFastPath()
		d.mirrors.close(log)
		return nil, err
	}
	hbCfg, err := heartbeatConfig(cfg, uint8(self))
	if err != nil {
		d.closeFastPath()
		d.mirrors.close(log)
		return nil, err
	}
	hbCfg.Logger = log
	hbCfg.Handler = d.observe
	hbCfg.Incarnation = incarnation
	if fp != nil {
		hbCfg.FastPath = fastPath{fp}
	}
	if d.hb, err = heartbeat.New(hbCfg); err != nil {
		d.closeFastPath()
		d.mirrors.close(log)
		return nil, fmt.Errorf("heartbeat: %w", err)
	}
	d.node.SetHeartbeat(d.hb)
	return d, nil
}

// observe adapts a heartbeat observation for the node.
func (d *daemon) observe(o heartbeat.Observation) {
	kind := node.ProbeReceived
	switch o.Kind {
	case heartbeat.ReplyReceived:
		kind = node.ReplyReceived
	case heartbeat.ProbeRefused:
		kind = node.ProbeRefused
	}
	d.node.Observe(node.Observation{
		Kind: kind, Peer: o.Peer, Lane: o.Lane, RTT: o.RTT,
		ConfigHash: o.ConfigHash, Incarnation: o.Incarnation, Payload: o.Payload,
		Epoch: o.Epoch, Kernel: o.Kernel,
	})
}

func (d *daemon) run(ctx context.Context) error {
	if err := d.binder.CleanUp(); err != nil {
		return fmt.Errorf("clean up floating addresses left behind: %w", err)
	}
	// The mirror disks outlive the node's loop: stopping the groups
	// demotes them while the mirror connect is still up, so that the
	// last writes reach the peer.
	defer d.mirrors.close(d.log)
	mctx, mcancel := context.WithCancel(context.WithoutCancel(ctx))
	mdone := make(chan error, 1)
	go func() { mdone <- d.mirrors.run(mctx) }()
	defer func() {
		mcancel()
		if err := <-mdone; err != nil {
			d.log.Error("mirror disks", "err", err)
		}
	}()
	srv, err := api.Listen(d.o.socket, backend{d.node, d.mirrors}, d.log)
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
	if d.fp != nil {
		// Closing the fast path ends the engine's kernel reader; its
		// programs go with it (bpf_link, never pinned), as they would go
		// with a crashed process.
		wg.Go(func() {
			<-inner.Done()
			d.closeFastPath()
		})
	}
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
	d.vips.close()
	return err
}

func (d *daemon) metricsAddress() string {
	if d.o.metrics != "" {
		return d.o.metrics
	}
	return d.cfg.MetricsAddressFor(d.o.server)
}

// kernelReply reads when the XDP fast path last recorded a reply from peer
// on lane, on the wall clock.
func (d *daemon) kernelReply(peer, lane uint8) (time.Time, time.Duration, bool) {
	if d.fp == nil {
		return time.Time{}, 0, false
	}
	st, ok := d.fp.PeerLane(peer, lane)
	if !ok || st.LastReply == 0 {
		return time.Time{}, 0, false
	}
	return time.Now().Add(-(xdpheartbeat.Now() - st.LastReply)), st.RTT, true
}

func (d *daemon) closeFastPath() {
	if d.fp != nil {
		if err := d.fp.Close(); err != nil {
			d.log.Warn("close the eBPF heartbeat", "err", err)
		}
	}
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
	lastClock := time.Now()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if d.fp != nil && time.Since(lastClock) >= clockEvery {
			lastClock = time.Now()
			if err := d.fp.SetClockOffset(); err != nil {
				d.log.Warn("eBPF heartbeat clock offset", "err", err)
			}
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

// observeAWS logs and counts one AWS call.
func (d *daemon) observeAWS(c awsops.Call) {
	code := awsops.CodeOf(c.Err)
	d.metrics.ObserveAWSCall(c.Service, c.Action, code, c.Attempts, c.Latency)
	d.metrics.AddAWSThrottles(c.Service, c.Action, c.Throttles)
	args := []any{"service", c.Service, "action", c.Action, "target", c.Target,
		"latency", c.Latency, "attempts", c.Attempts, "throttles", c.Throttles}
	if c.Err != nil {
		d.log.Warn("aws call failed", append(args, "code", code, "err", c.Err)...)
		return
	}
	d.log.Debug("aws call", args...)
}

// floatingBindings lists every address this server may bind, floating_ip
// and aws_vip: the set vigild manages, and cleans up at start.
func floatingBindings(cfg *config.Config, server, defaultIface string) ([]vip.Binding, error) {
	var out []vip.Binding
	for gi := range cfg.Groups {
		for ri := range cfg.Groups[gi].Resources {
			r := cfg.Groups[gi].Resources[ri].For(server)
			switch r.Type {
			case config.KindFloatingIP:
				b, err := resource.FloatingBinding(r.FloatingIP)
				if err != nil {
					return nil, err
				}
				out = append(out, b)
			case config.KindAWSVIP:
				ip, err := netip.ParseAddr(r.AWSVIP.IP)
				if err != nil {
					return nil, fmt.Errorf("aws_vip %s: %w", r.Name, err)
				}
				iface := r.AWSVIP.Interface
				if iface == "" {
					iface = defaultIface
				}
				out = append(out, resource.AWSVIPBinding(ip, iface))
			}
		}
	}
	return out, nil
}

// usesAWS reports whether any resource or monitor calls AWS.
func usesAWS(cfg *config.Config) bool {
	for _, m := range cfg.Monitors {
		if m.AWSAZ != nil || m.Resource != "" {
			return true
		}
	}
	for _, g := range cfg.Groups {
		for _, r := range g.Resources {
			if r.AWSVIP != nil || r.AWSEIP != nil || r.AWSDNS != nil {
				return true
			}
		}
	}
	return false
}

// needsDefaultInterface reports whether an aws_vip of server leaves its
// interface to the default route.
func needsDefaultInterface(cfg *config.Config, server string) bool {
	for _, g := range cfg.Groups {
		for ri := range g.Resources {
			if r := g.Resources[ri].For(server); r.AWSVIP != nil && r.AWSVIP.Interface == "" {
				return true
			}
		}
	}
	return false
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
func monitorFactory(cfg *config.Config, server string, runner script.Runner, pinger np.Pinger, res *resource.Factory) node.MonitorFactory {
	return func(m *config.Monitor) (monitor.Checker, error) {
		if m.Resource != "" {
			return res.Checker(cfg, m, server)
		}
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
		case config.MonitorAWSAZ:
			if res.AWS == nil {
				return nil, errors.New("aws_az monitor needs AWS settings")
			}
			return awsAZChecker(res.AWS, m, cfg.Server(server)), nil
		default:
			return nil, fmt.Errorf("monitor type %s is not supported by this build", m.Type)
		}
	}
}

// awsAZChecker builds an aws_az checker; the zone is the monitor's, else
// the server's, else the instance's from IMDSv2.
func awsAZChecker(env *resource.AWSEnv, m *config.Monitor, s *config.Server) monitor.Checker {
	az := m.AWSAZ.AvailabilityZone
	if az == "" && s != nil {
		az = s.AvailabilityZone
	}
	state := func(ctx context.Context, az string) (string, error) {
		c, err := env.Client(ctx)
		if err != nil {
			return "", err
		}
		if az == "" {
			inst, err := env.Instance(ctx)
			if err != nil {
				return "", err
			}
			az = inst.AvailabilityZone
		}
		return c.AZState(ctx, az)
	}
	return monitor.NewAWSAZ(az, m.AWSAZ.OnAPIFailure, state)
}

// defaultRouteInterface returns the interface of the IPv4 default route,
// where an aws_vip without an interface binds its VIP.
func defaultRouteInterface() (string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return "", fmt.Errorf("list routes: %w", err)
	}
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		link, err := netlink.LinkByIndex(r.LinkIndex)
		if err != nil {
			return "", fmt.Errorf("default route's interface %d: %w", r.LinkIndex, err)
		}
		return link.Attrs().Name, nil
	}
	return "", errors.New("an aws_vip has no interface and there is no IPv4 default route: set interface")
}
