package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/ledger"
	"github.com/vigil-ha/vigil/control/membership"
	"github.com/vigil-ha/vigil/control/np"
)

func hashHex(c *config.Config) string { return hex.EncodeToString(c.Hash[:6]) }

// observe feeds one heartbeat packet into membership and the ledger.
func (n *Node) observe(o Observation) {
	now := time.Now()
	n.checkSelfStall(now)
	p := n.members.Peer(o.Peer)
	if p == nil || int(o.Lane) >= len(n.cfg.Lanes) {
		return
	}
	switch o.Kind {
	case ReplyReceived:
		n.members.Reply(o.Peer, o.Lane, membership.ReplyInfo{RTT: o.RTT, Hash: o.ConfigHash, Incarnation: o.Incarnation,
			Epoch: o.Epoch, Kernel: o.Kernel}, now)
		if n.metrics != nil && o.ConfigHash == n.hashShort {
			n.metrics.ObserveLaneRTT(p.Name, n.cfg.Lanes[o.Lane].Name, o.RTT)
		}
	case ProbeRefused:
		n.members.Refused(o.Peer, o.Lane, now)
	case ProbeReceived:
		payload, err := ledger.Decode(o.Payload)
		if err != nil {
			n.log.Warn("heartbeat payload dropped", "event", "heartbeat_payload_dropped", "peer", p.Name, "err", err)
			return
		}
		if len(payload.Groups) != len(n.groups) && o.ConfigHash == n.hashShort {
			n.log.Warn("heartbeat payload dropped", "event", "heartbeat_payload_dropped", "peer", p.Name, "err", fmt.Sprintf("%d groups, configuration has %d", len(payload.Groups), len(n.groups)))
			return
		}
		n.members.Probe(o.Peer, o.Lane, o.ConfigHash, o.Incarnation, payload)
		if p.Mismatch {
			break
		}
		for gi, gv := range payload.Groups {
			n.merge(n.groups[gi], gv.Record)
		}
	}
	n.applyChanges(n.members.Tick(now))
	// The last peer heard from ends the startup wait at once, so a node
	// that shows its peers' groups also runs its service.
	n.maybeFinishStartup(now)
}

// checkSelfStall notices that this node's own loop did not run for more
// than half the heartbeat timeout (a GC pause, CPU starvation, SIGSTOP):
// it sent no probes meanwhile, so the silence of its peers means nothing,
// and it holds every lane up for one more timeout of fresh probes.
func (n *Node) checkSelfStall(now time.Time) {
	timeout := n.cfg.Cluster.Heartbeat.Timeout()
	if gap := now.Sub(n.lastRun); !n.lastRun.IsZero() && gap > timeout/2 {
		n.members.Hold(now.Add(timeout))
		level := slog.LevelDebug
		if gap > timeout {
			level = slog.LevelInfo // long enough to have lost every peer
		}
		n.log.Log(context.Background(), level, "this node's daemon was stalled: judging peers on fresh probes only", "event", "self_stalled", "stalled_for", gap.Round(time.Millisecond))
	}
	n.lastRun = now
}

func (n *Node) tick() {
	now := time.Now()
	n.checkSelfStall(now)
	if n.kernelReply != nil {
		for _, p := range n.members.Peers() {
			for li := range p.Lanes {
				if at, rtt, ok := n.kernelReply(p.Index, uint8(li)); ok {
					n.members.Seen(p.Index, uint8(li), at, rtt)
				}
			}
		}
	}
	n.applyChanges(n.members.Tick(now))
	n.maybeFinishStartup(now)
	n.refreshMetrics()
}

// maybeFinishStartup ends the startup wait once every peer was heard from,
// or the wait is over.
func (n *Node) maybeFinishStartup(now time.Time) {
	if n.service == ledger.ServiceStarting && !n.startupDone {
		if n.allPeersSeen() || now.Sub(n.started) >= n.cfg.Cluster.StartupWait() {
			n.finishStartup()
		}
	}
}

func (n *Node) allPeersSeen() bool {
	for _, p := range n.members.Peers() {
		if !p.Up || !p.HasPayload {
			return false
		}
	}
	return true
}

// finishStartup ends the startup wait. A node that has not heard from all
// its peers first makes sure it is not the one cut off.
func (n *Node) finishStartup() {
	n.startupDone = true
	if n.allPeersSeen() || len(n.cfg.Cluster.NPResolution.Targets) == 0 {
		n.setService(ledger.ServiceRunning, "")
		return
	}
	n.log.Info("startup wait over without all peers: checking NP targets", "event", "startup_np_check")
	n.startNPCheck("startup")
}

func (n *Node) applyChanges(cs []membership.Change) {
	for _, c := range cs {
		switch c.Kind {
		case membership.LaneUp, membership.LaneDown:
			event := "lane_down"
			if c.Kind == membership.LaneUp {
				event = "lane_up"
			}
			n.log.Info(c.String(), "event", event, "peer", c.Name, "lane", c.Lane)
			if n.metrics != nil {
				n.metrics.SetLaneUp(c.Name, c.Lane, c.Kind == membership.LaneUp)
			}
		case membership.PeerUp:
			n.log.Info("peer up", "event", "peer_up", "peer", c.Name)
			if n.metrics != nil {
				n.metrics.SetPeerUp(c.Name, true)
			}
			for _, g := range n.groups {
				// A failover that never got as far as a claim is moot now.
				if g.tl != nil && g.rec.Owner == c.Peer {
					g.tl = nil
				}
			}
			if n.service == ledger.ServiceIsolated {
				n.setService(ledger.ServiceRunning, "")
				n.log.Info("peer visible again: leaving isolation", "event", "isolation_left", "peer", c.Name)
			}
		case membership.PeerDown:
			n.peerLost(c)
		case membership.PeerRestarted:
			n.log.Warn("peer restarted", "event", "peer_restarted", "peer", c.Name)
		case membership.PeerMismatch:
			n.peerMismatch(c)
		}
	}
}

func (n *Node) peerMismatch(c membership.Change) {
	p := n.members.Peer(c.Peer)
	why := fmt.Sprintf("configuration differs from %s's (ours %x, theirs %x)", c.Name, n.hashShort[:6], p.ConfigHash[:6])
	if n.service == ledger.ServiceStarting {
		n.log.Error("refusing to join the cluster: "+why, "event", "join_refused", "peer", c.Name)
		n.setService(ledger.ServiceRefused, why+": refusing to join")
		return
	}
	n.log.Error("peer runs another configuration: ignoring it", "event", "peer_config_mismatch", "peer", c.Name, "detail", why)
}

// peerLost reacts to a peer whose lanes all timed out.
func (n *Node) peerLost(c membership.Change) {
	n.log.Warn("peer lost", "event", "peer_lost", "peer", c.Name, "cause", c.Cause, "last_reply", c.LastReply)
	if n.metrics != nil {
		n.metrics.SetPeerUp(c.Name, false)
		n.metrics.IncPeerLost(c.Name, membership.CauseLabel(c.Cause))
	}
	for _, g := range n.groups {
		if g.rec.Owner == c.Peer {
			t := g.newTimeline(c.Name, n.name)
			if !c.LastReply.IsZero() {
				t.add(c.LastReply, fmt.Sprintf("last heartbeat reply from %s", c.Name))
			}
			t.add(time.Now(), fmt.Sprintf("peer %s lost: %s (timeout %v)", c.Name, c.Cause, lossTimeout(n.cfg, c)))
		}
	}
	if len(n.cfg.Cluster.NPResolution.Targets) > 0 && n.service == ledger.ServiceRunning {
		n.startNPCheck("peer " + c.Name + " lost")
	}
}

type npResult struct {
	why string
	res np.Result
}

func (n *Node) startNPCheck(why string) {
	if n.npPending {
		return
	}
	n.npPending = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Cluster.NPResolution.Timeout()+time.Second)
		defer cancel()
		n.post(npResult{why: why, res: n.np.Check(ctx)})
	}()
}

func (n *Node) npDone(r npResult) {
	n.npPending = false
	for _, g := range n.groups {
		if g.tl != nil {
			g.tl.add(time.Now(), "NP check: "+r.res.Detail)
		}
	}
	if r.res.Reachable {
		n.log.Info("NP resolution: not isolated", "event", "np_not_isolated", "after", r.why, "detail", r.res.Detail)
		if n.service == ledger.ServiceStarting {
			n.setService(ledger.ServiceRunning, "")
		}
		return
	}
	why := "isolated: " + r.res.Detail
	n.log.Error("NP resolution: this node is cut off", "event", "np_isolated", "after", r.why, "detail", r.res.Detail, "action", n.cfg.Cluster.NPResolution.Action)
	switch n.cfg.Cluster.NPResolution.Action {
	case config.ActionStopClusterService:
		n.stopService(why)
	case config.ActionStopClusterServiceAndOff:
		n.stopService(why)
		n.shutdownOS()
	default: // stop_groups
		n.setService(ledger.ServiceIsolated, why)
	}
}

func (n *Node) setService(s ledger.Service, reason string) {
	if n.service != s {
		n.log.Info("cluster service "+s.String(), "event", "service_state", "state", s.String(), "reason", reason)
	}
	n.service = s
	n.reason = reason
}

// peerService returns what a live peer last said of its service; a peer not
// yet heard from counts as starting.
func (n *Node) peerService(p *membership.Peer) ledger.Service {
	if !p.HasPayload {
		return ledger.ServiceStarting
	}
	return p.Payload.Service
}

// lossTimeout is the timeout that expired for the loss c.
func lossTimeout(c *config.Config, ch membership.Change) time.Duration {
	if ch.Cause == membership.CauseDaemonStalled {
		return c.Cluster.Heartbeat.StallTimeout()
	}
	return c.Cluster.Heartbeat.Timeout()
}
