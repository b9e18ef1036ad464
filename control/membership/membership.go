// Package membership turns heartbeat observations into the cluster's view
// of its peers: which lanes answer, with what round-trip time, whether the
// peer runs the same configuration, and what state it last reported. A peer
// is down only when every one of its lanes has timed out.
package membership

import (
	"fmt"
	"time"

	"github.com/vigil-ha/vigil/control/ledger"
)

// PeerSpec names one peer and its lanes.
type PeerSpec struct {
	Index uint8
	Name  string
	// Lanes are the lane names, indexed by lane index.
	Lanes []string
}

// Lane is one lane to a peer.
type Lane struct {
	Name      string
	LastReply time.Time
	RTT       time.Duration
	Up        bool
}

// Peer is what the table knows of one peer.
type Peer struct {
	Index uint8
	Name  string
	Lanes []Lane
	// Up is true while at least one lane is up and the configuration matches.
	Up bool
	// Seen is true once any authenticated packet arrived from the peer.
	Seen bool
	// Mismatch is true when the peer's configuration hash differs from ours.
	Mismatch    bool
	ConfigHash  [16]byte
	Incarnation uint64
	// Payload is the peer's last reported state; valid when HasPayload.
	Payload    ledger.Payload
	HasPayload bool
	// Kernel is true when the peer's last reply was made by its kernel fast
	// path, whose liveness epoch tells a stalled daemon from a live one.
	Kernel bool
	// Epoch is the peer daemon's liveness epoch from its last reply, and
	// EpochAt when it last changed.
	Epoch   uint64
	EpochAt time.Time
	// Stalled is true while the peer's kernel answers but its daemon's epoch
	// has stood still for longer than the heartbeat timeout.
	Stalled bool
	// RefusedAt is when the peer's kernel last refused a probe (ICMP port
	// unreachable): no daemon and no fast path listen there.
	RefusedAt time.Time
	// DownCause says why the peer went down, while it is down.
	DownCause string
}

// CauseLabel names a down cause for metrics: no_replies, daemon_dead,
// daemon_stalled or config_mismatch.
func CauseLabel(cause string) string {
	switch cause {
	case CauseDaemonDead:
		return "daemon_dead"
	case CauseDaemonStalled:
		return "daemon_stalled"
	case CauseMismatch:
		return "config_mismatch"
	}
	return "no_replies"
}

// Down causes, as Change.Cause and Peer.DownCause say them.
const (
	CauseNoReplies     = "no replies: node or network down"
	CauseDaemonDead    = "daemon dead: its kernel refuses heartbeats"
	CauseDaemonStalled = "daemon stalled: its kernel answers, its liveness epoch stands still"
	CauseMismatch      = "configuration mismatch"
)

// ChangeKind says what changed.
type ChangeKind uint8

// Kinds of change.
const (
	PeerUp ChangeKind = iota
	PeerDown
	LaneUp
	LaneDown
	PeerRestarted
	PeerMismatch
)

func (k ChangeKind) String() string {
	return [...]string{"peer up", "peer down", "lane up", "lane down", "peer restarted", "peer config mismatch"}[k]
}

// Change is one transition.
type Change struct {
	Kind ChangeKind
	Peer uint8
	Name string
	Lane string
	// LastReply is, for PeerDown, when the last reply on any lane arrived.
	LastReply time.Time
	// Cause is, for PeerDown, one of the Cause constants.
	Cause string
}

// String describes the change for logs and timelines.
func (c Change) String() string {
	if c.Lane != "" {
		return fmt.Sprintf("%s: %s lane %s", c.Kind, c.Name, c.Lane)
	}
	return fmt.Sprintf("%s: %s", c.Kind, c.Name)
}

// Table is the membership view. It is not safe for concurrent use: the node
// core owns it from one goroutine.
type Table struct {
	self    [16]byte
	timeout time.Duration
	stall   time.Duration
	hold    time.Time // no lane goes down before it
	peers   map[uint8]*Peer
	order   []uint8
	pending []Change
}

// New returns a table for peers, with lanes timing out after timeout and
// peers whose kernel answers for a stalled daemon after stallTimeout.
func New(selfHash [16]byte, timeout, stallTimeout time.Duration, peers []PeerSpec) *Table {
	t := &Table{self: selfHash, timeout: timeout, stall: max(stallTimeout, timeout), peers: make(map[uint8]*Peer)}
	for _, ps := range peers {
		p := &Peer{Index: ps.Index, Name: ps.Name, Lanes: make([]Lane, len(ps.Lanes))}
		for i, n := range ps.Lanes {
			p.Lanes[i].Name = n
		}
		t.peers[ps.Index] = p
		t.order = append(t.order, ps.Index)
	}
	return t
}

// Peer returns the peer with index i, or nil.
func (t *Table) Peer(i uint8) *Peer { return t.peers[i] }

// Peers returns the peers in the order they were given.
func (t *Table) Peers() []*Peer {
	out := make([]*Peer, 0, len(t.order))
	for _, i := range t.order {
		out = append(out, t.peers[i])
	}
	return out
}

// ReplyInfo is what an authenticated reply says.
type ReplyInfo struct {
	RTT         time.Duration
	Hash        [16]byte
	Incarnation uint64
	// Epoch is the responder daemon's liveness epoch.
	Epoch uint64
	// Kernel is true for a reply made by the responder's kernel fast path.
	Kernel bool
}

// Reply records an authenticated reply from peer on lane.
func (t *Table) Reply(peer, lane uint8, r ReplyInfo, now time.Time) {
	p := t.identify(peer, lane, r.Hash, r.Incarnation)
	if p == nil {
		return
	}
	l := &p.Lanes[lane]
	l.LastReply = now
	l.RTT = r.RTT
	p.Kernel = r.Kernel
	if r.Epoch != p.Epoch || p.EpochAt.IsZero() {
		p.Epoch = r.Epoch
		p.EpochAt = now
	}
	t.evaluate(p, now)
}

// Seen records a reply to one of our probes that the kernel fast path
// authenticated and timestamped at at, when the daemon may not have read
// it yet: a lane's last reply is the later of the two clocks'. It applies
// only to a peer already identified by a reply the daemon read.
func (t *Table) Seen(peer, lane uint8, at time.Time, rtt time.Duration) {
	p := t.peers[peer]
	if p == nil || !p.Seen || p.Mismatch || int(lane) >= len(p.Lanes) {
		return
	}
	if l := &p.Lanes[lane]; at.After(l.LastReply) {
		l.LastReply = at
		l.RTT = rtt
	}
}

// Hold keeps every lane that is up from going down before until. A node
// that finds it was itself stalled (its own daemon not scheduled: it sent
// no probes, so no replies came) calls it, so that it judges its peers
// only on probes sent after it woke up.
func (t *Table) Hold(until time.Time) {
	if until.After(t.hold) {
		t.hold = until
	}
}

// Refused records that peer's kernel refused a probe on lane (ICMP port
// unreachable). It is unauthenticated, so it only explains a loss; it never
// takes a lane down by itself.
func (t *Table) Refused(peer, lane uint8, now time.Time) {
	if p := t.peers[peer]; p != nil && int(lane) < len(p.Lanes) {
		p.RefusedAt = now
	}
}

// Probe records an authenticated probe from peer on lane with its payload.
func (t *Table) Probe(peer, lane uint8, hash [16]byte, incarnation uint64, payload ledger.Payload) {
	p := t.identify(peer, lane, hash, incarnation)
	if p == nil || p.Mismatch {
		return
	}
	p.Payload = payload
	p.HasPayload = true
}

func (t *Table) identify(peer, lane uint8, hash [16]byte, incarnation uint64) *Peer {
	p := t.peers[peer]
	if p == nil || int(lane) >= len(p.Lanes) {
		return nil
	}
	if p.Seen && p.Incarnation != incarnation {
		t.pending = append(t.pending, Change{Kind: PeerRestarted, Peer: p.Index, Name: p.Name})
		p.HasPayload = false
		p.EpochAt = time.Time{}
	}
	p.Seen = true
	p.Incarnation = incarnation
	p.ConfigHash = hash
	mismatch := hash != t.self
	if mismatch && !p.Mismatch {
		t.pending = append(t.pending, Change{Kind: PeerMismatch, Peer: p.Index, Name: p.Name})
		p.HasPayload = false
	}
	p.Mismatch = mismatch
	return p
}

// Tick re-evaluates every peer at now and returns the changes since the
// last call, in order.
func (t *Table) Tick(now time.Time) []Change {
	for _, i := range t.order {
		t.evaluate(t.peers[i], now)
	}
	out := t.pending
	t.pending = nil
	return out
}

func (t *Table) evaluate(p *Peer, now time.Time) {
	anyUp := false
	var last time.Time
	for i := range p.Lanes {
		l := &p.Lanes[i]
		up := !l.LastReply.IsZero() && (now.Sub(l.LastReply) <= t.timeout || l.Up && now.Before(t.hold))
		if up != l.Up {
			kind := LaneDown
			if up {
				kind = LaneUp
			}
			t.pending = append(t.pending, Change{Kind: kind, Peer: p.Index, Name: p.Name, Lane: l.Name})
			l.Up = up
		}
		anyUp = anyUp || up
		if l.LastReply.After(last) {
			last = l.LastReply
		}
	}
	var frozen time.Duration
	if anyUp && p.Kernel && !p.EpochAt.IsZero() {
		frozen = now.Sub(p.EpochAt)
	}
	p.Stalled = frozen > t.timeout
	stalledOut := frozen > t.stall
	up := anyUp && !p.Mismatch && !stalledOut
	if up != p.Up {
		c := Change{Kind: PeerDown, Peer: p.Index, Name: p.Name, LastReply: last}
		switch {
		case up:
			c.Kind = PeerUp
		case p.Mismatch:
			c.Cause = CauseMismatch
		case stalledOut:
			c.Cause = CauseDaemonStalled
		case p.RefusedAt.After(last):
			c.Cause = CauseDaemonDead
		default:
			c.Cause = CauseNoReplies
		}
		p.DownCause = c.Cause
		if !up {
			// What a lost peer said is stale by the time it comes back: until
			// it speaks again, nobody may assume it runs nothing.
			p.HasPayload = false
		}
		t.pending = append(t.pending, c)
		p.Up = up
	}
}
