package heartbeat

import (
	"sync"
	"time"
)

// Replay protection limits.
const (
	// MaxClockSkew bounds how far a new incarnation's send time may be from
	// the local wall clock.
	MaxClockSkew = 30 * time.Second
	// retiredIncarnations is how many past incarnations of a peer are
	// remembered and refused.
	retiredIncarnations = 8
	// maxPending bounds the outstanding probes per (peer, lane); the oldest
	// is given up (a miss) when a new one would exceed it.
	maxPending = 64
	// recentNonces is how many consumed or expired nonces per (peer, lane)
	// are remembered, to tell a duplicate or late reply from a forged one.
	recentNonces = 64
)

// probeVerdict is the outcome of replayGuard.check.
type probeVerdict uint8

const (
	probeAccepted probeVerdict = iota
	// probeStaleSeq: the current incarnation, with a sequence number not
	// above the highest accepted on the lane.
	probeStaleSeq
	// probeRetired: an incarnation the peer already left.
	probeRetired
	// probeClockSkew: a new incarnation whose send time is more than
	// MaxClockSkew away from the local clock.
	probeClockSkew
	// probeOlderIncarnation: a new incarnation whose send time is not after
	// the latest probe of the current one; the peer cannot have restarted
	// into it, so it is an old capture.
	probeOlderIncarnation
)

// String names the verdict for logs.
func (v probeVerdict) String() string {
	switch v {
	case probeAccepted:
		return "accepted"
	case probeStaleSeq:
		return "stale sequence number"
	case probeRetired:
		return "retired incarnation"
	case probeClockSkew:
		return "new incarnation outside the clock skew bound"
	case probeOlderIncarnation:
		return "new incarnation older than the current one"
	}
	return "unknown"
}

// replayGuard protects one peer, on all its lanes, from replayed probes. It
// holds the peer's current incarnation, the highest sequence number accepted
// per lane for it, and the last few incarnations the peer left.
//
// A probe of the current incarnation is accepted when its sequence number is
// above the lane's highest. A probe of another incarnation is accepted, and
// its incarnation becomes the current one, only when that incarnation is not
// retired, its send time is within MaxClockSkew of the local clock, and its
// send time is after that of every probe accepted from the current
// incarnation (a daemon restarts later than its previous run sent). The last
// rule stops a replay, within the skew bound, of a capture from an
// incarnation never seen here from retiring the peer's real one.
type replayGuard struct {
	mu          sync.Mutex
	known       bool
	incarnation uint64
	lastSentAt  int64
	highest     map[uint8]uint64 // lane → highest seq of the current incarnation
	retired     [retiredIncarnations]uint64
	nRetired    int
	nextRetired int
}

func newReplayGuard() *replayGuard {
	return &replayGuard{highest: make(map[uint8]uint64)}
}

// check decides whether a probe from the peer on lane is fresh, and if so
// records it. sentAt and now are wall clock Unix nanoseconds.
func (g *replayGuard) check(lane uint8, incarnation, seq uint64, sentAt, now int64) probeVerdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.known && incarnation == g.incarnation {
		if h, ok := g.highest[lane]; ok && seq <= h {
			return probeStaleSeq
		}
		g.highest[lane] = seq
		g.lastSentAt = max(g.lastSentAt, sentAt)
		return probeAccepted
	}
	for i := range g.nRetired {
		if g.retired[i] == incarnation {
			return probeRetired
		}
	}
	skew := int64(MaxClockSkew)
	if sentAt < now-skew || sentAt > now+skew {
		return probeClockSkew
	}
	if g.known {
		if sentAt <= g.lastSentAt {
			return probeOlderIncarnation
		}
		g.retired[g.nextRetired] = g.incarnation
		g.nextRetired = (g.nextRetired + 1) % retiredIncarnations
		g.nRetired = min(g.nRetired+1, retiredIncarnations)
	}
	g.known = true
	g.incarnation = incarnation
	g.lastSentAt = sentAt
	clear(g.highest)
	g.highest[lane] = seq
	return probeAccepted
}

// replyVerdict is the outcome of pendingTable.take.
type replyVerdict uint8

const (
	replyMatched replyVerdict = iota
	// replyUnknown: a nonce never sent to this peer on this lane (or long
	// forgotten).
	replyUnknown
	// replyDuplicate: the nonce was already consumed by a reply.
	replyDuplicate
	// replyLate: the probe expired (counted as a miss) before the reply.
	replyLate
)

type pendingProbe struct {
	nonce [16]byte
	sent  time.Time // with its monotonic reading
}

type recentNonce struct {
	nonce [16]byte
	late  bool
	valid bool
}

// pendingTable holds the probes sent to one peer on one lane that await a
// reply, oldest first, and remembers the nonces recently consumed or expired.
type pendingTable struct {
	mu      sync.Mutex
	pending []pendingProbe
	recent  [recentNonces]recentNonce
	next    int
}

// add records a probe just sent. It returns how many older probes it gave up
// to stay within maxPending; each is a miss.
func (t *pendingTable) add(nonce [16]byte, sent time.Time) (missed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pending == nil {
		t.pending = make([]pendingProbe, 0, maxPending)
	}
	if len(t.pending) == maxPending {
		t.remember(t.pending[0].nonce, true)
		t.removeAt(0)
		missed = 1
	}
	t.pending = append(t.pending, pendingProbe{nonce: nonce, sent: sent})
	return missed
}

// take consumes the probe with the given nonce and returns when it was sent.
func (t *pendingTable) take(nonce [16]byte) (time.Time, replyVerdict) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.pending {
		if t.pending[i].nonce == nonce {
			sent := t.pending[i].sent
			t.removeAt(i)
			t.remember(nonce, false)
			return sent, replyMatched
		}
	}
	for _, r := range t.recent {
		if r.valid && r.nonce == nonce {
			if r.late {
				return time.Time{}, replyLate
			}
			return time.Time{}, replyDuplicate
		}
	}
	return time.Time{}, replyUnknown
}

// expire gives up the probes sent at least ttl before now and returns how
// many it gave up; each is a miss.
func (t *pendingTable) expire(now time.Time, ttl time.Duration) (missed int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.pending) > 0 && now.Sub(t.pending[0].sent) >= ttl {
		t.remember(t.pending[0].nonce, true)
		t.removeAt(0)
		missed++
	}
	return missed
}

func (t *pendingTable) removeAt(i int) {
	copy(t.pending[i:], t.pending[i+1:])
	t.pending = t.pending[:len(t.pending)-1]
}

func (t *pendingTable) remember(nonce [16]byte, late bool) {
	t.recent[t.next] = recentNonce{nonce: nonce, late: late, valid: true}
	t.next = (t.next + 1) % recentNonces
}
