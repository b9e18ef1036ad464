package node

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/ledger"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/control/resource"
	"github.com/vigil-ha/vigil/control/script"
)

// mon is one monitor with its recovery state on this node.
type mon struct {
	cfg    *config.Monitor
	runner *monitor.Runner
	// target is the recovery target's group, nil for LocalServer; from is
	// the index of the target resource in its start order (0 for a group).
	target *group
	from   int
	state  monitor.State
	// reacts and fos count the reactivations and failovers done here.
	reacts, fos int
	// recovering is set while a recovery action is under way, and after a
	// final action until the monitor is healthy again.
	recovering bool
	final      bool
}

type monEvent struct {
	m        *mon
	prev, to monitor.State
}

func newMon(n *Node, mc *config.Monitor, build MonitorFactory) (*mon, error) {
	mine := mc.For(n.name)
	checker, err := build(mine)
	if err != nil {
		return nil, fmt.Errorf("monitor %s: %w", mc.Name, err)
	}
	m := &mon{cfg: mine}
	if t := mine.Recovery.Target; t != "" && t != config.LocalServer {
		m.target, m.from = n.lookupTarget(t)
	}
	var active func() bool
	if mine.Timing == config.TimingActive {
		g, from := n.lookupTarget(mine.ActiveOn)
		if g == nil {
			return nil, fmt.Errorf("monitor %s: active_on %q names no group or resource", mc.Name, mine.ActiveOn)
		}
		if g.cfg.Name == mine.ActiveOn {
			active = g.online.Load
		} else {
			active = g.resOnline[from].Load
		}
	}
	if n.metrics != nil && checker != nil {
		// Every check is timed and counted by result.
		inner := checker
		checker = monitor.CheckerFunc(func(ctx context.Context) monitor.Result {
			start := time.Now()
			r := inner.Check(ctx)
			n.metrics.ObserveMonitorCheck(mine.Name, r.Status.String(), time.Since(start))
			return r
		})
	}
	m.runner = monitor.NewRunner(monitor.Options{
		Name: mine.Name, Checker: checker, Interval: mine.Interval(), Timeout: mine.Timeout(),
		Retry: mine.Retry, Active: active,
		OnChange: func(_ string, prev, cur monitor.State) { n.post(monEvent{m: m, prev: prev, to: cur}) },
	})
	return m, nil
}

// lookupTarget finds a group, or the group of a resource and its index.
func (n *Node) lookupTarget(name string) (*group, int) {
	for _, g := range n.groups {
		if g.cfg.Name == name {
			return g, 0
		}
		if i := slices.IndexFunc(g.order, func(r *config.Resource) bool { return r.Name == name }); i >= 0 {
			return g, i
		}
	}
	return nil, 0
}

// monitorChanged handles a monitor's state transition.
func (n *Node) monitorChanged(e monEvent) {
	m := e.m
	m.state = e.to
	switch e.to.Status {
	case "ok":
		if e.prev.Status == "error" || e.prev.Status == "warning" {
			n.log.Info("monitor healthy again", "event", "monitor_ok", "monitor", m.cfg.Name)
		}
		m.reacts = 0
		m.recovering, m.final = false, false
	case "warning":
		n.log.Warn("monitor warning", "event", "monitor_warning", "monitor", m.cfg.Name, "code", e.to.Code, "msg", e.to.Message)
	case "error":
		n.log.Error(fmt.Sprintf("Detected an error in monitoring %s. (%d : %s)", m.cfg.Name, e.to.Code, e.to.Message), "event", "monitor_error", "monitor", m.cfg.Name, "code", e.to.Code)
		if !m.recovering {
			n.recover(m)
		}
	}
}

// recover runs the guides' recovery action: reactivate the target up to
// ReactivationCount times, then fail it over up to FailoverCount times, then
// take the final action.
func (n *Node) recover(m *mon) {
	rc := m.cfg.Recovery
	g := m.target
	if g == nil {
		n.finalAction(m)
		return
	}
	if g.rec.Owner == n.self && g.busy {
		// Another operation is under way: re-check once it ends.
		m.recovering = true
		return
	}
	if g.rec.Owner != n.self || g.local != ledger.Online {
		n.log.Info("monitor error: recovery target not running here, nothing to recover", "event", "recovery_not_here", "monitor", m.cfg.Name, "target", rc.Target)
		return
	}
	switch {
	case m.reacts < rc.ReactivationCount:
		m.reacts++
		m.recovering = true
		n.count(m, "reactivate")
		n.log.Warn("recovery: reactivating", "event", "recovery_reactivate", "monitor", m.cfg.Name, "target", rc.Target, "count", m.reacts, "max", rc.ReactivationCount)
		g.why = resource.EventRecover
		n.restart(g, m.from)
	case m.fos < rc.FailoverCount:
		to := n.next(g, n.self)
		if to == ledger.NoOwner {
			n.log.Error("recovery: no server to fail over to", "event", "recovery_no_failover_target", "monitor", m.cfg.Name, "group", g.cfg.Name)
			n.finalAction(m)
			return
		}
		m.fos++
		m.recovering = true
		n.count(m, "failover")
		n.log.Warn("recovery: failing over", "event", "recovery_failover", "monitor", m.cfg.Name, "group", g.cfg.Name, "to", n.serverName(to), "count", m.fos, "max", rc.FailoverCount)
		g.claim(to, ledger.CauseFailover, nil)
		t := g.newTimeline(n.name, n.serverName(to))
		t.add(time.Now(), fmt.Sprintf("monitor %s error (%s): failing over to %s", m.cfg.Name, m.state.Message, n.serverName(to)))
	default:
		n.finalAction(m)
	}
}

func (n *Node) count(m *mon, action string) {
	if n.metrics != nil {
		n.metrics.IncMonitorRecovery(m.cfg.Name, action)
	}
}

// finalAction takes a monitor's final action, once per error episode.
func (n *Node) finalAction(m *mon) {
	if m.final {
		return
	}
	m.final, m.recovering = true, true
	action := m.cfg.Recovery.FinalAction
	n.count(m, "final")
	n.log.Error("recovery: final action", "event", "recovery_final_action", "monitor", m.cfg.Name, "action", action)
	why := fmt.Sprintf("final action of monitor %s", m.cfg.Name)
	switch action {
	case config.ActionStopGroup:
		for _, g := range n.groups {
			if (m.target == nil && g.rec.Owner == n.self) || g == m.target {
				g.claim(ledger.NoOwner, ledger.CauseStop, func(r *ledger.Record) { r.Stopped = true })
				g.tl.addIf(time.Now(), why+": stop group")
			}
		}
	case config.ActionStopClusterService:
		n.stopService(why)
	case config.ActionStopClusterServiceAndOff:
		n.stopService(why)
		n.shutdownOS()
	}
}

// shutdownOS runs the shutdown command once the local groups are stopped.
func (n *Node) shutdownOS() { n.pendingShutdown = true }

func (n *Node) maybeShutdown() {
	if !n.pendingShutdown || n.anyLocalActive() {
		return
	}
	n.pendingShutdown = false
	cmd := n.cfg.Cluster.ShutdownCommand
	if len(cmd) == 0 {
		return
	}
	n.log.Error("shutting down the OS", "event", "os_shutdown", "command", cmd)
	go func() {
		_, err := n.runner.Run(context.Background(), script.Spec{Path: cmd[0], Args: cmd[1:], Timeout: time.Minute})
		if err != nil {
			n.log.Error("shutdown command failed", "event", "os_shutdown_failed", "err", err)
		}
	}()
}

// afterOp re-arms the monitors whose recovery waited for an operation on g,
// and, once g is online here, those still in error from before: an error
// that persists is reported, and acted on, again.
func (n *Node) afterOp(g *group) {
	for _, m := range n.mons {
		if m.target != g || m.final {
			continue
		}
		if m.recovering || (g.local == ledger.Online && m.state.Status == monitor.StateError) {
			m.recovering = false
			m.runner.Rearm()
			m.runner.CheckNow()
		}
	}
}

func monitorStatus(m *mon) api.Monitor {
	st := m.runner.State()
	return api.Monitor{
		Name: m.cfg.Name, Type: m.cfg.Type, State: st.Status, Code: st.Code, Message: st.Message,
		Reactivations: m.reacts, Failovers: m.fos,
	}
}
