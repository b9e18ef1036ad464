// Package node is the control core of one Vigil node: it merges what the
// heartbeat tells of the peers, decides which failover groups this node must
// run, starts and stops their resources, runs the monitors and their
// recovery, resolves network partitions, and answers the local control API.
//
// Everything that decides runs on one goroutine (the loop); slow work —
// resource scripts, NP checks, monitors — runs on others and reports back to
// the loop through channels.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/ledger"
	"github.com/vigil-ha/vigil/control/membership"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/control/np"
	"github.com/vigil-ha/vigil/control/resource"
	"github.com/vigil-ha/vigil/control/script"
	"github.com/vigil-ha/vigil/metrics"
)

// Heartbeat is the part of the heartbeat engine the node drives.
type Heartbeat interface {
	// SetPayload sets the state carried by the next probes.
	SetPayload(p []byte)
}

// ObservationKind says what kind of heartbeat packet arrived.
type ObservationKind uint8

// Observation kinds.
const (
	ProbeReceived ObservationKind = iota
	ReplyReceived
	// ProbeRefused is an ICMP port unreachable from a peer's address: its
	// kernel is up but nothing listens on the heartbeat port. It is not
	// authenticated and only explains a loss.
	ProbeRefused
)

// Observation is one heartbeat packet from a peer, authenticated except
// for ProbeRefused.
type Observation struct {
	Kind        ObservationKind
	Peer, Lane  uint8
	RTT         time.Duration
	ConfigHash  [16]byte
	Incarnation uint64
	Payload     []byte
	// Epoch is, for replies, the responder daemon's liveness epoch.
	Epoch uint64
	// Kernel is true for a reply made by the responder's kernel fast path.
	Kernel bool
}

// MonitorFactory builds the checker of a monitor as this server sees it.
type MonitorFactory func(m *config.Monitor) (monitor.Checker, error)

// ResourceFactory builds a resource of group as this server sees it.
type ResourceFactory func(group string, r *config.Resource) (resource.Resource, error)

// Options configures a node.
type Options struct {
	Config *config.Config
	// Server is this node's server name.
	Server    string
	Heartbeat Heartbeat
	Resources ResourceFactory
	Monitors  MonitorFactory
	NP        np.Checker
	// Runner runs the shutdown command of the final action.
	Runner  script.Runner
	Metrics *metrics.Metrics
	Log     *slog.Logger
	// HeartbeatMode is shown in status: "ebpf (xdp generic)", "userspace", ...
	HeartbeatMode string
	// LaneMisses, when set, reports the probes to peer on lane that got no
	// reply; status shows them.
	LaneMisses func() map[[2]uint8]uint64
	// KernelReply, when set, tells when the kernel fast path last recorded
	// an authentic reply from peer on lane, and its RTT.
	KernelReply func(peer, lane uint8) (at time.Time, rtt time.Duration, ok bool)
	// VIPTraffic, when set, reports the traffic of the node's VIPs.
	VIPTraffic func() []api.VIPTraffic
}

// Node is the control core of one node. Its exported methods are safe for
// concurrent use.
type Node struct {
	cfg         *config.Config
	self        uint8
	name        string
	hb          Heartbeat
	np          np.Checker
	runner      script.Runner
	metrics     *metrics.Metrics
	log         *slog.Logger
	hbMode      string
	vipTraffic  func() []api.VIPTraffic
	kernelReply func(peer, lane uint8) (time.Time, time.Duration, bool)
	misses      func() map[[2]uint8]uint64

	members *membership.Table
	groups  []*group
	mons    []*mon

	// Loop state.
	service      ledger.Service
	reason       string
	started      time.Time
	lastRun      time.Time // the loop's last tick or observation
	startupDone  bool
	npPending    bool
	lastPayload  []byte
	lastFailover *api.Timeline
	waiters      []*waiter
	// pendingShutdown is set by a final action that powers off once the
	// local groups have stopped.
	pendingShutdown bool
	lastMetrics     time.Time

	obs       chan Observation
	calls     chan func()
	events    chan any
	obsDrops  atomic.Uint64
	closed    chan struct{}
	hashShort [16]byte
	// crash, when closed, ends Run at once without stopping anything: the
	// in-memory cluster tests use it to play a SIGKILL.
	crash chan struct{}
}

// Errors the API maps to status codes.
var (
	ErrNotFound = api.ErrNotFound
	ErrConflict = api.ErrConflict
)

// New builds a node; Run starts it.
func New(o Options) (*Node, error) {
	c := o.Config
	self := c.ServerIndex(o.Server)
	if self < 0 {
		return nil, fmt.Errorf("server %q is not in the configuration %s", o.Server, c.Path)
	}
	if len(c.Servers) > ledger.MaxServers {
		return nil, fmt.Errorf("%d servers: at most %d", len(c.Servers), ledger.MaxServers)
	}
	if len(c.Groups) > ledger.MaxGroups {
		return nil, fmt.Errorf("%d groups: at most %d", len(c.Groups), ledger.MaxGroups)
	}
	n := &Node{
		cfg: c, self: uint8(self), name: o.Server, hb: o.Heartbeat, np: o.NP,
		runner: o.Runner, metrics: o.Metrics, log: o.Log, hbMode: o.HeartbeatMode, misses: o.LaneMisses, vipTraffic: o.VIPTraffic, kernelReply: o.KernelReply,
		obs: make(chan Observation, 4096), calls: make(chan func()), events: make(chan any, 256),
		closed: make(chan struct{}),
	}
	copy(n.hashShort[:], c.Hash[:16])
	if n.log == nil {
		n.log = slog.Default()
	}
	var peers []membership.PeerSpec
	lanes := make([]string, len(c.Lanes))
	for i, l := range c.Lanes {
		lanes[i] = l.Name
	}
	for i, s := range c.Servers {
		if i == self {
			continue
		}
		peers = append(peers, membership.PeerSpec{Index: uint8(i), Name: s.Name, Lanes: lanes})
	}
	n.members = membership.New(n.hashShort, c.Cluster.Heartbeat.Timeout(), c.Cluster.Heartbeat.StallTimeout(), peers)
	for gi := range c.Groups {
		g, err := newGroup(n, gi, o.Resources)
		if err != nil {
			return nil, err
		}
		n.groups = append(n.groups, g)
	}
	for mi := range c.Monitors {
		m, err := newMon(n, &c.Monitors[mi], o.Monitors)
		if err != nil {
			return nil, err
		}
		n.mons = append(n.mons, m)
	}
	return n, nil
}

// SetHeartbeat sets the heartbeat the node publishes its state through; call
// it before Run.
func (n *Node) SetHeartbeat(h Heartbeat) { n.hb = h }

// Observe hands the node an authenticated heartbeat packet. It never blocks:
// when the loop is far behind, the observation is dropped and counted.
func (n *Node) Observe(o Observation) {
	select {
	case n.obs <- o:
	default:
		n.obsDrops.Add(1)
	}
}

// Run runs the node until ctx ends. On the way out it stops the cluster
// service gracefully: its groups are handed to the peers and stopped here.
func (n *Node) Run(ctx context.Context) error {
	defer close(n.closed)
	n.started = time.Now()
	n.service = ledger.ServiceStarting
	n.log.Info("cluster service starting", "event", "service_starting", "config_hash", hashHex(n.cfg), "startup_wait", n.cfg.Cluster.StartupWait())
	if n.metrics != nil {
		n.metrics.SetConfigInfo(hashHex(n.cfg))
	}
	monCtx, stopMons := context.WithCancel(context.Background())
	defer stopMons()
	for _, m := range n.mons {
		go m.runner.Run(monCtx)
	}
	tick := time.NewTicker(n.tickEvery())
	defer tick.Stop()
	n.step()
	for {
		select {
		case o := <-n.obs:
			n.observe(o)
		case <-tick.C:
			n.tick()
		case f := <-n.calls:
			f()
		case ev := <-n.events:
			n.handle(ev)
		case <-ctx.Done():
			return n.shutdown()
		case <-n.crash:
			return errCrashed
		}
		n.step()
	}
}

var errCrashed = errors.New("crashed")

func (n *Node) tickEvery() time.Duration {
	d := n.cfg.Cluster.Heartbeat.Interval() / 2
	return max(d, 5*time.Millisecond)
}

// step runs after every event: it decides, publishes and wakes waiters.
func (n *Node) step() {
	n.reconcile()
	n.publish()
	n.maybeShutdown()
	n.wake()
}

// shutdown stops the cluster service on the way out of Run.
func (n *Node) shutdown() error {
	n.log.Info("shutting down: handing off groups", "event", "shutdown_handoff")
	n.stopService("vigild stopping")
	n.step()
	deadline := time.NewTimer(n.maxStopTime() + 5*time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(n.tickEvery())
	defer tick.Stop()
	for n.anyLocalActive() {
		select {
		case ev := <-n.events:
			n.handle(ev)
		case o := <-n.obs:
			n.observe(o)
		case <-tick.C:
			n.tick()
		case <-deadline.C:
			return errors.New("shutdown: groups still active after their stop timeouts")
		}
		n.step()
	}
	return nil
}

func (n *Node) maxStopTime() time.Duration {
	var total time.Duration
	for _, g := range n.groups {
		for _, r := range g.order {
			total += r.StopTimeout()
		}
	}
	return total
}

// do runs f on the loop and waits for it, or for ctx.
func (n *Node) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case n.calls <- func() { f(); close(done) }:
	case <-n.closed:
		return errors.New("node stopped")
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-n.closed:
		return errors.New("node stopped")
	}
}

// post hands an event to the loop from another goroutine.
func (n *Node) post(ev any) {
	select {
	case n.events <- ev:
	case <-n.closed:
	}
}

// waiter is an API call waiting for a condition on the loop.
type waiter struct {
	cond func() (done bool, err error)
	ch   chan error
}

// wait blocks until cond, evaluated on the loop after every step, is done.
func (n *Node) wait(ctx context.Context, cond func() (bool, error)) error {
	w := &waiter{cond: cond, ch: make(chan error, 1)}
	if err := n.do(ctx, func() { n.waiters = append(n.waiters, w) }); err != nil {
		return err
	}
	select {
	case err := <-w.ch:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-n.closed:
		return errors.New("node stopped")
	}
}

func (n *Node) wake() {
	keep := n.waiters[:0]
	for _, w := range n.waiters {
		if done, err := w.cond(); done {
			w.ch <- err
			continue
		}
		keep = append(keep, w)
	}
	n.waiters = keep
}
