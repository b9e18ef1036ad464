package node

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/ledger"
	"github.com/vigil-ha/vigil/control/resource"
)

// group is one failover group as this node runs it.
type group struct {
	idx     int
	cfg     *config.Group
	order   []*config.Resource // start order, as this server sees them
	res     []resource.Resource
	servers []uint8 // priority order

	rec   ledger.Record // the ledger's view
	local ledger.State  // what runs here
	busy  bool          // an operation is under way
	// resStates and resErrs follow order.
	resStates []string
	resErrs   []string
	// online is read by monitors' Active gates from their goroutines.
	online    atomic.Bool
	resOnline []atomic.Bool
	// why says why the next start happens, for scripts' VIGIL_EVENT.
	why resource.Event
	tl  *timeline
}

func newGroup(n *Node, gi int, build ResourceFactory) (*group, error) {
	gc := &n.cfg.Groups[gi]
	order, err := config.StartOrder(gc)
	if err != nil {
		return nil, fmt.Errorf("group %s: %w", gc.Name, err)
	}
	g := &group{idx: gi, cfg: gc, rec: ledger.Record{Owner: ledger.NoOwner}, why: resource.EventStart}
	for _, s := range n.cfg.GroupServers(gc) {
		g.servers = append(g.servers, uint8(n.cfg.ServerIndex(s)))
	}
	for _, r := range order {
		mine := r.For(n.name)
		rs, err := build(gc.Name, mine)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", gc.Name, err)
		}
		g.order = append(g.order, mine)
		g.res = append(g.res, rs)
	}
	g.resStates = make([]string, len(order))
	g.resErrs = make([]string, len(order))
	g.resOnline = make([]atomic.Bool, len(order))
	for i := range g.resStates {
		g.resStates[i] = api.StateOffline
	}
	return g, nil
}

func (g *group) rank(s uint8) int { return slices.Index(g.servers, s) }

// merge adopts a peer's record when it supersedes ours. A record that newly
// makes this node the owner opens a timeline.
func (n *Node) merge(g *group, r ledger.Record) {
	if !ledger.Supersedes(r, g.rec, g.rank) {
		return
	}
	prev := g.rec
	g.rec = r
	if r.Owner == n.self && r.Gen != prev.Gen && !g.active() && (r.Cause == ledger.CauseFailover || r.Cause == ledger.CauseMove) {
		from := n.serverName(prev.Owner)
		g.why = eventOf(r.Cause)
		if g.tl == nil {
			g.newTimeline(from, n.name)
		}
		g.tl.add(time.Now(), fmt.Sprintf("generation %d assigns group %s to %s", r.Gen, g.cfg.Name, n.name))
	}
}

// active reports whether resources of the group may be in place here.
func (g *group) active() bool {
	return g.busy || g.local == ledger.Starting || g.local == ledger.Online ||
		g.local == ledger.Stopping || g.local == ledger.OfflineFailure
}

// claim starts a new generation of the record with owner, for cause.
func (g *group) claim(owner uint8, cause ledger.Cause, mod func(*ledger.Record)) {
	r := ledger.Record{Gen: g.rec.Gen + 1, Owner: owner, State: ledger.Offline, FailedMask: g.rec.FailedMask, Cause: cause}
	if mod != nil {
		mod(&r)
	}
	g.rec = r
}

// report updates the owner's state in the record.
func (g *group) report(s ledger.State) {
	if g.rec.State != s {
		g.rec.State = s
		g.rec.Seq++
	}
}

// eligible reports whether server s may be chosen to run g now.
func (n *Node) eligible(g *group, s uint8) bool {
	if g.rec.Failed(s) {
		return false
	}
	if s == n.self {
		return n.service == ledger.ServiceRunning
	}
	p := n.members.Peer(s)
	if p == nil || !p.Up {
		return false
	}
	svc := n.peerService(p)
	return svc == ledger.ServiceRunning || svc == ledger.ServiceStarting
}

// choose returns the highest-priority eligible server for g, skipping
// exclude, or NoOwner.
func (n *Node) choose(g *group, exclude uint8) uint8 {
	for _, s := range g.servers {
		if s != exclude && n.eligible(g, s) {
			return s
		}
	}
	return ledger.NoOwner
}

// next returns the first eligible server after from in g's priority order,
// wrapping around, never from itself: the failover destination.
func (n *Node) next(g *group, from uint8) uint8 {
	i := g.rank(from)
	for k := 1; k < len(g.servers); k++ {
		s := g.servers[(i+k+len(g.servers))%len(g.servers)]
		if s != from && n.eligible(g, s) {
			return s
		}
	}
	return ledger.NoOwner
}

// peerActive returns the name of a live peer that runs g (or may: a live
// peer not yet heard from counts), or "".
func (n *Node) peerActive(g *group) string {
	for _, p := range n.members.Peers() {
		if !p.Up {
			continue
		}
		if !p.HasPayload || p.Payload.Groups[g.idx].Active {
			return p.Name
		}
	}
	return ""
}

func (n *Node) serverName(s uint8) string {
	if s == ledger.NoOwner || int(s) >= len(n.cfg.Servers) {
		return ""
	}
	return n.cfg.Servers[s].Name
}

// reconcile makes this node's groups follow the ledger, and claims groups
// that nobody runs when this node is the one to run them.
func (n *Node) reconcile() {
	for _, g := range n.groups {
		// A decision (a claim) may enable the next (a start) at once.
		for range 3 {
			if g.busy {
				break
			}
			before := g.rec
			n.reconcileGroup(g)
			if g.rec == before {
				break
			}
		}
	}
}

func (n *Node) reconcileGroup(g *group) {
	r := g.rec
	switch {
	case r.Owner != n.self:
		if g.local == ledger.Online || g.local == ledger.Starting {
			n.log.Info("group owned elsewhere: stopping here", "event", "group_owned_elsewhere", "group", g.cfg.Name, "owner", n.serverName(r.Owner), "generation", r.Gen)
			n.stopGroup(g)
			return
		}
		if r.Owner == ledger.NoOwner {
			if !r.Stopped && r.State != ledger.OnlineFailure && n.service == ledger.ServiceRunning && n.choose(g, ledger.NoOwner) == n.self {
				g.claim(n.self, ledger.CauseStart, nil)
				g.why = resource.EventStart
				n.log.Info("claiming group", "event", "group_claim", "group", g.cfg.Name, "generation", g.rec.Gen)
			}
			return
		}
		if p := n.members.Peer(r.Owner); p != nil && !p.Up && !n.npPending && n.service == ledger.ServiceRunning && n.choose(g, r.Owner) == n.self {
			lost := n.serverName(r.Owner)
			g.claim(n.self, ledger.CauseFailover, nil)
			g.why = resource.EventFailover
			n.log.Warn("taking over group from lost peer", "event", "group_takeover", "group", g.cfg.Name, "from", lost, "generation", g.rec.Gen)
			if g.tl == nil {
				g.newTimeline(lost, n.name)
			}
			g.tl.add(time.Now(), fmt.Sprintf("claimed group %s (generation %d)", g.cfg.Name, g.rec.Gen))
		}
	case n.service != ledger.ServiceRunning:
		if g.local == ledger.Online || g.local == ledger.Starting {
			n.stopGroup(g)
		}
	case g.local == ledger.Offline:
		if r.State == ledger.OnlineFailure || r.Stopped {
			return
		}
		if who := n.peerActive(g); who != "" {
			if g.tl != nil && !g.tl.waiting {
				g.tl.add(time.Now(), fmt.Sprintf("waiting for %s to stop the group", who))
				g.tl.waiting = true
			}
			return
		}
		n.startGroup(g)
	case g.local == ledger.Online:
		g.report(ledger.Online)
		g.rec.FailedMask = 0
	}
}

// stopService leaves the cluster: owned groups go to the next eligible
// server, and this node stops running them.
func (n *Node) stopService(reason string) {
	n.setService(ledger.ServiceStopped, reason)
	for _, g := range n.groups {
		if g.rec.Owner != n.self {
			continue
		}
		to := n.choose(g, n.self)
		g.claim(to, ledger.CauseFailover, nil)
		n.log.Info("handing group over", "event", "group_handover", "group", g.cfg.Name, "to", n.serverName(to), "generation", g.rec.Gen)
	}
}

func (n *Node) anyLocalActive() bool {
	for _, g := range n.groups {
		if g.active() {
			return true
		}
	}
	return false
}

// opEvent reports progress of a group operation to the loop.
type opEvent struct {
	g        *group
	res      int // resource index, or -1 when the operation is over
	state    string
	err      error
	took     time.Duration
	starting bool
	ok       bool
}

// noteEvent is a step of a resource operation for g's open timeline.
type noteEvent struct {
	g    *group
	at   time.Time
	what string
}

// opContext is the context of one resource operation: it carries the event
// and sends the resource's notes to the group's timeline.
func (n *Node) opContext(g *group, ev resource.Event, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx := resource.WithNotes(resource.WithEvent(context.Background(), ev), func(at time.Time, what string) {
		n.post(noteEvent{g: g, at: at, what: what})
	})
	return context.WithTimeout(ctx, timeout)
}

func (n *Node) startGroup(g *group) {
	g.busy = true
	g.local = ledger.Starting
	g.report(ledger.Starting)
	g.tl.addIf(time.Now(), fmt.Sprintf("starting group %s (%s)", g.cfg.Name, g.why))
	n.log.Info("starting group", "event", "group_starting", "group", g.cfg.Name, "cause", g.why)
	ev := g.why
	go n.runStart(g, 0, ev)
}

// runStart starts the resources from index from on; on a failure it stops
// the ones it started, in reverse.
func (n *Node) runStart(g *group, from int, ev resource.Event) {
	for i := from; i < len(g.order); i++ {
		r := g.order[i]
		n.post(opEvent{g: g, res: i, state: api.StateStarting})
		t0 := time.Now()
		ctx, cancel := n.opContext(g, ev, r.StartTimeout())
		err := g.res[i].Start(ctx)
		cancel()
		if err != nil {
			if ctx.Err() == context.DeadlineExceeded {
				err = fmt.Errorf("start timed out after %v: %w", r.StartTimeout(), err)
			}
			n.post(opEvent{g: g, res: i, state: api.StateOnlineFailure, err: err, took: time.Since(t0)})
			stopped := n.stopRange(g, from, i-1)
			n.post(opEvent{g: g, res: -1, starting: true, ok: false, err: err, state: cleanupState(stopped)})
			return
		}
		n.post(opEvent{g: g, res: i, state: api.StateOnline, took: time.Since(t0)})
	}
	n.post(opEvent{g: g, res: -1, starting: true, ok: true})
}

// cleanupState is the state a failed start leaves: offline when the
// resources it had started were stopped again, offline-failure when not.
func cleanupState(stopped bool) string {
	if stopped {
		return api.StateOffline
	}
	return api.StateOfflineFailure
}

// stopRange stops resources hi down to lo; it reports whether all stopped.
func (n *Node) stopRange(g *group, lo, hi int) bool {
	ok := true
	for i := hi; i >= lo; i-- {
		r := g.order[i]
		n.post(opEvent{g: g, res: i, state: api.StateStopping})
		t0 := time.Now()
		ctx, cancel := n.opContext(g, resource.EventStop, r.StopTimeout())
		err := g.res[i].Stop(ctx)
		cancel()
		if err != nil {
			ok = false
			n.post(opEvent{g: g, res: i, state: api.StateOfflineFailure, err: err, took: time.Since(t0)})
			continue
		}
		n.post(opEvent{g: g, res: i, state: api.StateOffline, took: time.Since(t0)})
	}
	return ok
}

func (n *Node) stopGroup(g *group) {
	g.busy = true
	g.local = ledger.Stopping
	if g.rec.Owner == n.self {
		g.report(ledger.Stopping)
	}
	g.tl.addIf(time.Now(), "stopping group "+g.cfg.Name)
	n.log.Info("stopping group", "event", "group_stopping", "group", g.cfg.Name)
	go func() {
		ok := n.stopRange(g, 0, len(g.order)-1)
		n.post(opEvent{g: g, res: -1, ok: ok})
	}()
}

// restart stops resources from index from on (in reverse) and starts them
// again: a reactivation.
func (n *Node) restart(g *group, from int) {
	g.busy = true
	g.local = ledger.Starting
	g.report(ledger.Starting)
	go func() {
		if !n.stopRange(g, from, len(g.order)-1) {
			n.post(opEvent{g: g, res: -1, ok: false, state: api.StateOfflineFailure, err: fmt.Errorf("reactivation: stop failed")})
			return
		}
		n.runStart(g, from, resource.EventRecover)
	}()
}

// opDone applies an operation's progress or end.
func (n *Node) opDone(e opEvent) {
	g := e.g
	if e.res >= 0 {
		g.resStates[e.res] = e.state
		g.resOnline[e.res].Store(e.state == api.StateOnline)
		name := g.order[e.res].Name
		if e.err != nil {
			g.resErrs[e.res] = e.err.Error()
			n.log.Error("resource "+e.state, "event", "resource_failed", "state", e.state, "group", g.cfg.Name, "resource", name, "err", e.err)
			g.tl.addIf(time.Now(), fmt.Sprintf("resource %s %s: %v", name, e.state, e.err))
		} else if e.state == api.StateOnline || e.state == api.StateOffline {
			g.resErrs[e.res] = ""
			verb := "started"
			if e.state == api.StateOffline {
				verb = "stopped"
			}
			n.log.Info("resource "+verb, "event", "resource_"+verb, "group", g.cfg.Name, "resource", name, "took", e.took)
			g.tl.addIf(time.Now(), fmt.Sprintf("resource %s %s in %s", name, verb, fmtDur(e.took)))
		}
		return
	}
	g.busy = false
	switch {
	case e.starting && e.ok:
		g.local = ledger.Online
		g.online.Store(true)
		if g.rec.Owner == n.self {
			g.report(ledger.Online)
			g.rec.FailedMask = 0
		}
		n.log.Info("group online", "event", "group_online", "group", g.cfg.Name)
		if g.tl != nil {
			g.tl.add(time.Now(), "group "+g.cfg.Name+" online on "+n.name)
			n.finishTimeline(g)
		}
	case e.starting:
		g.online.Store(false)
		n.startFailed(g, e)
	default:
		g.online.Store(false)
		if e.ok {
			g.local = ledger.Offline
			n.log.Info("group offline here", "event", "group_offline", "group", g.cfg.Name)
			if g.rec.Owner == n.self {
				g.report(ledger.Offline)
			}
			if g.tl != nil {
				g.tl.add(time.Now(), "group "+g.cfg.Name+" offline on "+n.name)
				if g.rec.Owner != n.self {
					n.finishTimeline(g)
				}
			}
		} else {
			g.local = ledger.OfflineFailure
			n.log.Error("group failed to stop: resources may remain; not releasing it", "event", "group_stop_failed", "group", g.cfg.Name)
			if g.rec.Owner == n.self {
				g.report(ledger.OfflineFailure)
			}
		}
	}
}

// startFailed hands a group that failed to start here to the next server.
func (n *Node) startFailed(g *group, e opEvent) {
	if e.state == api.StateOfflineFailure {
		g.local = ledger.OfflineFailure
		if g.rec.Owner == n.self {
			g.report(ledger.OfflineFailure)
		}
		n.log.Error("group failed to start and its cleanup failed: keeping it here", "event", "group_start_failed", "then", "keep", "group", g.cfg.Name, "err", e.err)
		return
	}
	g.local = ledger.Offline
	if g.rec.Owner != n.self {
		return
	}
	mask := g.rec.FailedMask | 1<<n.self
	g.rec.FailedMask = mask
	to := n.choose(g, n.self)
	g.claim(to, ledger.CauseFailover, func(r *ledger.Record) {
		r.FailedMask = mask
		if to == ledger.NoOwner {
			r.State = ledger.OnlineFailure
		}
	})
	g.tl.addIf(time.Now(), fmt.Sprintf("group %s failed to start here: %v", g.cfg.Name, e.err))
	if to == ledger.NoOwner {
		n.log.Error("group failed to start and no server is left to try", "event", "group_start_failed", "then", "stop", "group", g.cfg.Name, "err", e.err)
		return
	}
	n.log.Error("group failed to start: failing over", "event", "group_start_failed", "then", "failover", "group", g.cfg.Name, "to", n.serverName(to), "err", e.err)
	g.why = resource.EventFailover
}

// eventOf tells scripts why a generation assigned the group here.
func eventOf(c ledger.Cause) resource.Event {
	switch c {
	case ledger.CauseFailover:
		return resource.EventFailover
	case ledger.CauseMove:
		return resource.EventMove
	default:
		return resource.EventStart
	}
}

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}
