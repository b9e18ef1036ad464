package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/ledger"
	"github.com/vigil-ha/vigil/control/resource"
)

var _ api.Backend = (*Node)(nil)

// Status reports the node's view of the cluster.
func (n *Node) Status() api.Status {
	var s api.Status
	if err := n.do(context.Background(), func() { s = n.status() }); err != nil {
		return api.Status{Cluster: n.cfg.Cluster.Name, Server: n.name, Service: "down", Reason: err.Error()}
	}
	return s
}

func (n *Node) status() api.Status {
	s := api.Status{
		Cluster: n.cfg.Cluster.Name, Server: n.name, ConfigHash: hashHex(n.cfg),
		Service: n.service.String(), Reason: n.reason, Heartbeat: n.hbMode,
		LastFailover: n.lastFailover,
	}
	if n.vipTraffic != nil {
		s.VIPs = n.vipTraffic()
	}
	var misses map[[2]uint8]uint64
	if n.misses != nil {
		misses = n.misses()
	}
	for i, sv := range n.cfg.Servers {
		if uint8(i) == n.self {
			s.Nodes = append(s.Nodes, api.Node{Name: sv.Name, Self: true, State: api.NodeUp, Service: n.service.String()})
			continue
		}
		p := n.members.Peer(uint8(i))
		node := api.Node{Name: p.Name, State: api.NodeDown}
		switch {
		case p.Mismatch:
			node.State = api.NodeMismatch
			node.Reason = fmt.Sprintf("configuration hash %x differs from ours", p.ConfigHash[:6])
		case p.Up && p.Stalled:
			node.State = api.NodeStalled
			node.Service = n.peerService(p).String()
			node.Reason = fmt.Sprintf("liveness epoch unchanged for %v; down after %v", time.Since(p.EpochAt).Round(time.Millisecond), n.cfg.Cluster.Heartbeat.StallTimeout())
		case p.Up:
			node.State = api.NodeUp
			node.Service = n.peerService(p).String()
		default:
			node.Reason = p.DownCause
		}
		for li, l := range p.Lanes {
			node.Lanes = append(node.Lanes, api.Lane{Name: l.Name, Up: l.Up, RTT: l.RTT, LastSeen: l.LastReply,
				Misses: misses[[2]uint8{p.Index, uint8(li)}]})
		}
		s.Nodes = append(s.Nodes, node)
	}
	for _, g := range n.groups {
		ag := api.Group{
			Name: g.cfg.Name, State: n.groupState(g), Owner: n.serverName(g.rec.Owner),
			Generation: g.rec.Gen, Stopped: g.rec.Stopped,
		}
		for _, sv := range g.servers {
			if g.rec.Failed(sv) {
				ag.FailedOn = append(ag.FailedOn, n.serverName(sv))
			}
		}
		for i, r := range g.order {
			ag.Resources = append(ag.Resources, api.Resource{Name: r.Name, Type: r.Type, State: g.resStates[i], LastError: g.resErrs[i]})
		}
		s.Groups = append(s.Groups, ag)
	}
	for _, m := range n.mons {
		s.Monitors = append(s.Monitors, monitorStatus(m))
	}
	return s
}

func (n *Node) findGroup(name string) (*group, error) {
	for _, g := range n.groups {
		if g.cfg.Name == name {
			return g, nil
		}
	}
	return nil, fmt.Errorf("group %q: %w", name, ErrNotFound)
}

// target resolves an operator's server argument for g.
func (n *Node) target(g *group, server string) (uint8, error) {
	i := n.cfg.ServerIndex(server)
	if i < 0 {
		return 0, fmt.Errorf("server %q: %w", server, ErrNotFound)
	}
	s := uint8(i)
	if !slices.Contains(g.servers, s) {
		return 0, fmt.Errorf("group %s cannot run on %s: %w", g.cfg.Name, server, ErrConflict)
	}
	saved := g.rec.FailedMask
	g.rec.FailedMask = 0
	ok := n.eligible(g, s)
	g.rec.FailedMask = saved
	if !ok {
		return 0, fmt.Errorf("server %s is not up with its cluster service running: %w", server, ErrConflict)
	}
	return s, nil
}

// GroupStart starts a group that is not running.
func (n *Node) GroupStart(ctx context.Context, name, server string) error {
	var gen uint32
	var to uint8
	var g *group
	err := n.doErr(ctx, func() error {
		var err error
		if g, err = n.findGroup(name); err != nil {
			return err
		}
		if o := g.rec.Owner; o != ledger.NoOwner && n.ownerUp(o) {
			return fmt.Errorf("group %s already belongs to %s: %w", name, n.serverName(o), ErrConflict)
		}
		if server != "" {
			if to, err = n.target(g, server); err != nil {
				return err
			}
		} else {
			g.rec.FailedMask = 0
			if to = n.choose(g, ledger.NoOwner); to == ledger.NoOwner {
				return fmt.Errorf("group %s: no server is up to run it: %w", name, ErrConflict)
			}
		}
		g.claim(to, ledger.CauseStart, func(r *ledger.Record) { r.FailedMask = 0 })
		g.why = resource.EventStart
		gen = g.rec.Gen
		n.log.Info("operator: start group", "event", "operator_group_start", "group", name, "on", n.serverName(to), "generation", gen)
		return nil
	})
	if err != nil {
		return err
	}
	return n.waitOnline(ctx, g, gen, to)
}

// GroupMove moves a running group to server, or to the next server.
func (n *Node) GroupMove(ctx context.Context, name, server string) error {
	var gen uint32
	var to uint8
	var g *group
	err := n.doErr(ctx, func() error {
		var err error
		if g, err = n.findGroup(name); err != nil {
			return err
		}
		from := g.rec.Owner
		if from == ledger.NoOwner || !n.ownerUp(from) {
			return fmt.Errorf("group %s is not running: %w", name, ErrConflict)
		}
		if server != "" {
			if to, err = n.target(g, server); err != nil {
				return err
			}
		} else if to = n.next(g, from); to == ledger.NoOwner {
			return fmt.Errorf("group %s: no other server is up to take it: %w", name, ErrConflict)
		}
		if to == from {
			return fmt.Errorf("group %s already runs on %s: %w", name, n.serverName(to), ErrConflict)
		}
		g.claim(to, ledger.CauseMove, func(r *ledger.Record) { r.FailedMask = 0 })
		gen = g.rec.Gen
		t := g.newTimeline(n.serverName(from), n.serverName(to))
		t.add(time.Now(), fmt.Sprintf("operator moves group %s from %s to %s (generation %d)", name, n.serverName(from), n.serverName(to), gen))
		if to == n.self {
			g.why = resource.EventMove
		} else if from != n.self {
			g.tl = nil // neither end: nothing to record here
		}
		n.log.Info("operator: move group", "event", "operator_group_move", "group", name, "from", n.serverName(from), "to", n.serverName(to), "generation", gen)
		return nil
	})
	if err != nil {
		return err
	}
	return n.waitOnline(ctx, g, gen, to)
}

// GroupStop stops a group wherever it runs; nobody starts it again until an
// operator does.
func (n *Node) GroupStop(ctx context.Context, name string) error {
	var g *group
	err := n.doErr(ctx, func() error {
		var err error
		if g, err = n.findGroup(name); err != nil {
			return err
		}
		g.claim(ledger.NoOwner, ledger.CauseStop, func(r *ledger.Record) { r.Stopped = true })
		if g.local == ledger.OfflineFailure {
			// An operator stop retries a stop that failed.
			g.local = ledger.Online
		}
		n.log.Info("operator: stop group", "event", "operator_group_stop", "group", name, "generation", g.rec.Gen)
		return nil
	})
	if err != nil {
		return err
	}
	return n.wait(ctx, func() (bool, error) {
		if g.local == ledger.OfflineFailure {
			return true, fmt.Errorf("group %s failed to stop here: see status", name)
		}
		return !g.active() && n.peerActive(g) == "", nil
	})
}

// waitOnline waits until generation gen of g is online, on server to if
// possible.
func (n *Node) waitOnline(ctx context.Context, g *group, gen uint32, to uint8) error {
	name := g.cfg.Name
	return n.wait(ctx, func() (bool, error) {
		r := g.rec
		if r.Gen < gen {
			return false, nil
		}
		if r.State == ledger.OnlineFailure {
			return true, fmt.Errorf("group %s failed to start on every server", name)
		}
		if r.State != ledger.Online || r.Owner == ledger.NoOwner {
			return r.Stopped, stoppedErr(r.Stopped, name)
		}
		if r.Owner != to {
			return true, fmt.Errorf("group %s failed on %s and runs on %s instead", name, n.serverName(to), n.serverName(r.Owner))
		}
		return true, nil
	})
}

func stoppedErr(stopped bool, name string) error {
	if stopped {
		return fmt.Errorf("group %s was stopped meanwhile", name)
	}
	return nil
}

func (n *Node) ownerUp(o uint8) bool {
	if o == n.self {
		return true
	}
	p := n.members.Peer(o)
	return p != nil && p.Up
}

// ClusterStop stops the cluster service here: groups move to the peers.
func (n *Node) ClusterStop(ctx context.Context) error {
	if err := n.do(ctx, func() { n.stopService("stopped by operator") }); err != nil {
		return err
	}
	return n.wait(ctx, func() (bool, error) { return !n.anyLocalActive(), nil })
}

// ClusterStart starts the cluster service here again, clearing isolation
// and the monitors' recovery counters.
func (n *Node) ClusterStart(ctx context.Context) error {
	return n.doErr(ctx, func() error {
		if n.service == ledger.ServiceRefused {
			return fmt.Errorf("%s: fix the configuration and restart vigild: %w", n.reason, ErrConflict)
		}
		n.startupDone = true
		n.setService(ledger.ServiceRunning, "")
		for _, m := range n.mons {
			m.reacts, m.fos = 0, 0
			m.recovering, m.final = false, false
			m.runner.Rearm()
		}
		return nil
	})
}

// MonitorSuspend suspends a monitor.
func (n *Node) MonitorSuspend(ctx context.Context, name string) error {
	return n.withMon(ctx, name, func(m *mon) { m.runner.Suspend() })
}

// MonitorResume resumes a suspended monitor.
func (n *Node) MonitorResume(ctx context.Context, name string) error {
	return n.withMon(ctx, name, func(m *mon) { m.runner.Resume() })
}

func (n *Node) withMon(ctx context.Context, name string, f func(*mon)) error {
	return n.doErr(ctx, func() error {
		for _, m := range n.mons {
			if m.cfg.Name == name {
				f(m)
				return nil
			}
		}
		return fmt.Errorf("monitor %q: %w", name, ErrNotFound)
	})
}

func (n *Node) doErr(ctx context.Context, f func() error) error {
	var err error
	if e := n.do(ctx, func() { err = f() }); e != nil {
		return e
	}
	return err
}
