package node

import (
	"bytes"
	"time"

	"github.com/vigil-ha/vigil/control/ledger"
)

// handle dispatches an event posted by another goroutine.
func (n *Node) handle(ev any) {
	switch e := ev.(type) {
	case opEvent:
		n.opDone(e)
		if e.res < 0 {
			n.afterOp(e.g)
		}
	case monEvent:
		n.monitorChanged(e)
	case npResult:
		n.npDone(e)
	case noteEvent:
		e.g.tl.addIf(e.at, e.what)
	}
}

// publish hands the node's state to the heartbeat when it changed.
func (n *Node) publish() {
	p := ledger.Payload{Service: n.service, Groups: make([]ledger.GroupView, len(n.groups))}
	for i, g := range n.groups {
		p.Groups[i] = ledger.GroupView{Record: g.rec, Active: g.active()}
	}
	b, err := p.AppendEncode(make([]byte, 0, 64))
	if err != nil {
		n.log.Error("encode heartbeat payload", "event", "heartbeat_payload_encode_failed", "err", err)
		return
	}
	if bytes.Equal(b, n.lastPayload) {
		return
	}
	n.lastPayload = b
	if n.hb != nil {
		n.hb.SetPayload(b)
	}
}

// refreshMetrics sets the state gauges, at most twice a second.
func (n *Node) refreshMetrics() {
	if n.metrics == nil || time.Since(n.lastMetrics) < 500*time.Millisecond {
		return
	}
	n.lastMetrics = time.Now()
	n.metrics.SetServiceState(n.service.String())
	for _, g := range n.groups {
		n.metrics.SetGroupState(g.cfg.Name, n.groupState(g))
		n.metrics.SetGroupOwner(g.cfg.Name, g.local == ledger.Online)
		for i, r := range g.order {
			n.metrics.SetResourceState(g.cfg.Name, r.Name, g.resStates[i])
		}
	}
	for _, p := range n.members.Peers() {
		n.metrics.SetPeerStalled(p.Name, p.Stalled)
	}
	for _, m := range n.mons {
		st := m.runner.State()
		n.metrics.SetMonitorState(m.cfg.Name, st.Status)
		n.metrics.SetMonitorCode(m.cfg.Name, st.Code)
	}
}

// groupState is the group's state as this node reports it: its own when it
// runs the group or owns it, else the owner's last report.
func (n *Node) groupState(g *group) string {
	if g.active() || g.rec.Owner == n.self {
		return g.local.String()
	}
	if g.rec.Owner == ledger.NoOwner {
		if g.rec.State == ledger.OnlineFailure {
			return ledger.OnlineFailure.String()
		}
		return ledger.Offline.String()
	}
	return g.rec.State.String()
}
