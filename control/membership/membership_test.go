package membership

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/ledger"
)

var hashA = [16]byte{1}

func newTable() *Table {
	return New(hashA, time.Second, 3*time.Second, []PeerSpec{{Index: 1, Name: "b", Lanes: []string{"lan1", "lan2"}}})
}

func kinds(cs []Change) []ChangeKind {
	var out []ChangeKind
	for _, c := range cs {
		out = append(out, c.Kind)
	}
	return out
}

func equalKinds(a, b []ChangeKind) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPeerDownOnlyWhenAllLanesTimeOut(t *testing.T) {
	tb := newTable()
	t0 := time.Unix(1000, 0)
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, t0)
	tb.Reply(1, 1, ReplyInfo{RTT: 2 * time.Millisecond, Hash: hashA, Incarnation: 7}, t0.Add(500*time.Millisecond))
	if got := kinds(tb.Tick(t0.Add(500 * time.Millisecond))); !equalKinds(got, []ChangeKind{LaneUp, PeerUp, LaneUp}) {
		t.Fatalf("changes = %v", got)
	}
	// lan1 times out, lan2 still fresh: the peer stays up.
	if got := kinds(tb.Tick(t0.Add(1200 * time.Millisecond))); !equalKinds(got, []ChangeKind{LaneDown}) {
		t.Fatalf("after lan1 timeout: %v", got)
	}
	if !tb.Peer(1).Up {
		t.Fatal("peer down while lan2 answers")
	}
	cs := tb.Tick(t0.Add(1600 * time.Millisecond))
	if got := kinds(cs); !equalKinds(got, []ChangeKind{LaneDown, PeerDown}) {
		t.Fatalf("after both timeouts: %v", got)
	}
	if want := t0.Add(500 * time.Millisecond); !cs[1].LastReply.Equal(want) {
		t.Errorf("PeerDown.LastReply = %v, want %v", cs[1].LastReply, want)
	}
	if tb.Peer(1).Lanes[1].RTT != 2*time.Millisecond {
		t.Errorf("lan2 RTT = %v", tb.Peer(1).Lanes[1].RTT)
	}
}

func TestMismatchedPeerIsNeverUp(t *testing.T) {
	tb := newTable()
	now := time.Unix(1000, 0)
	other := [16]byte{2}
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: other, Incarnation: 7}, now)
	tb.Probe(1, 0, other, 7, ledger.Payload{Service: ledger.ServiceRunning})
	cs := tb.Tick(now)
	if got := kinds(cs); !equalKinds(got, []ChangeKind{PeerMismatch, LaneUp}) {
		t.Fatalf("changes = %v", got)
	}
	p := tb.Peer(1)
	if p.Up || !p.Mismatch || p.HasPayload {
		t.Fatalf("mismatched peer: up=%v mismatch=%v payload=%v", p.Up, p.Mismatch, p.HasPayload)
	}
}

func TestRestartDropsPayload(t *testing.T) {
	tb := newTable()
	now := time.Unix(1000, 0)
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, now)
	tb.Probe(1, 0, hashA, 7, ledger.Payload{Service: ledger.ServiceRunning})
	tb.Tick(now)
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 8}, now)
	if got := kinds(tb.Tick(now)); !equalKinds(got, []ChangeKind{PeerRestarted}) {
		t.Fatalf("changes = %v", got)
	}
	if tb.Peer(1).HasPayload {
		t.Fatal("payload of the previous incarnation kept")
	}
}

func TestUnknownPeerOrLaneIgnored(t *testing.T) {
	tb := newTable()
	now := time.Unix(1000, 0)
	tb.Reply(9, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, now)
	tb.Reply(1, 5, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, now)
	if cs := tb.Tick(now); len(cs) != 0 {
		t.Fatalf("changes from unknown peer/lane: %v", cs)
	}
}

// A kernel-answered peer whose daemon's epoch stands still is stalled after
// the heartbeat timeout but down only after the stall timeout; an epoch
// that moves again brings it back.
func TestStalledDaemon(t *testing.T) {
	tb := newTable()
	t0 := time.Unix(1000, 0)
	kernel := func(epoch uint64, at time.Time) {
		tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7, Epoch: epoch, Kernel: true}, at)
	}
	kernel(1, t0)
	tb.Tick(t0)
	p := tb.Peer(1)
	if !p.Up || p.Stalled {
		t.Fatalf("fresh peer: up=%v stalled=%v", p.Up, p.Stalled)
	}
	// Replies keep coming every 100 ms with the same epoch.
	var changes []Change
	for at := t0.Add(100 * time.Millisecond); !at.After(t0.Add(2900 * time.Millisecond)); at = at.Add(100 * time.Millisecond) {
		kernel(1, at)
		changes = append(changes, tb.Tick(at)...)
	}
	if !p.Up || !p.Stalled || len(changes) != 0 {
		t.Fatalf("within the stall timeout: up=%v stalled=%v changes=%v", p.Up, p.Stalled, changes)
	}
	at := t0.Add(3100 * time.Millisecond)
	kernel(1, at)
	changes = tb.Tick(at)
	if p.Up || len(changes) != 1 || changes[0].Kind != PeerDown || changes[0].Cause != CauseDaemonStalled {
		t.Fatalf("past the stall timeout: up=%v changes=%+v", p.Up, changes)
	}
	at = at.Add(100 * time.Millisecond)
	kernel(2, at)
	changes = tb.Tick(at)
	if !p.Up || p.Stalled || len(changes) != 1 || changes[0].Kind != PeerUp {
		t.Fatalf("epoch moving again: up=%v stalled=%v changes=%+v", p.Up, p.Stalled, changes)
	}
}

// Userspace replies never count as a stall: the daemon made them.
func TestUserspaceRepliesNeverStall(t *testing.T) {
	tb := newTable()
	t0 := time.Unix(1000, 0)
	for at := t0; !at.After(t0.Add(5 * time.Second)); at = at.Add(100 * time.Millisecond) {
		tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7, Epoch: 1}, at)
		if cs := tb.Tick(at); at != t0 && len(cs) != 0 {
			t.Fatalf("at %v: %v", at.Sub(t0), cs)
		}
	}
	if p := tb.Peer(1); !p.Up || p.Stalled {
		t.Fatalf("up=%v stalled=%v", p.Up, p.Stalled)
	}
}

// A peer lost after its kernel refused probes died as a daemon; one lost in
// silence is a node or network failure.
func TestDownCauses(t *testing.T) {
	for _, refused := range []bool{false, true} {
		tb := newTable()
		t0 := time.Unix(1000, 0)
		tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, t0)
		tb.Tick(t0)
		if refused {
			tb.Refused(1, 0, t0.Add(10*time.Millisecond))
		}
		var down *Change
		for _, c := range tb.Tick(t0.Add(2 * time.Second)) {
			if c.Kind == PeerDown {
				down = &c
			}
		}
		want := CauseNoReplies
		if refused {
			want = CauseDaemonDead
		}
		if down == nil || down.Cause != want || tb.Peer(1).DownCause != want {
			t.Errorf("refused=%v: down %+v, want cause %q", refused, down, want)
		}
	}
}

// A reply the kernel recorded counts from its own timestamp, but only for a
// peer the daemon identified.
func TestSeenByTheKernel(t *testing.T) {
	tb := newTable()
	t0 := time.Unix(1000, 0)
	tb.Seen(1, 0, t0, time.Millisecond)
	if tb.Peer(1).Lanes[0].LastReply != (time.Time{}) {
		t.Fatal("a kernel record identified an unknown peer")
	}
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, t0)
	tb.Seen(1, 0, t0.Add(900*time.Millisecond), 2*time.Millisecond)
	tb.Seen(1, 0, t0.Add(100*time.Millisecond), 3*time.Millisecond) // older: ignored
	l := tb.Peer(1).Lanes[0]
	if !l.LastReply.Equal(t0.Add(900*time.Millisecond)) || l.RTT != 2*time.Millisecond {
		t.Fatalf("lane %+v", l)
	}
	tb.Tick(t0.Add(1500 * time.Millisecond))
	if !tb.Peer(1).Up {
		t.Fatal("down although the kernel saw a reply within the timeout")
	}
}

// A node that was stalled itself holds its lanes up for a while: its peers'
// silence was its own.
func TestHoldAfterOwnStall(t *testing.T) {
	tb := newTable()
	t0 := time.Unix(1000, 0)
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, t0)
	tb.Tick(t0)
	wake := t0.Add(3 * time.Second) // far past the 1 s timeout
	tb.Hold(wake.Add(time.Second))
	if cs := tb.Tick(wake); len(cs) != 0 || !tb.Peer(1).Up {
		t.Fatalf("lost a peer while holding: %v", cs)
	}
	tb.Reply(1, 0, ReplyInfo{RTT: time.Millisecond, Hash: hashA, Incarnation: 7}, wake.Add(500*time.Millisecond))
	if cs := tb.Tick(wake.Add(1200 * time.Millisecond)); len(cs) != 0 || !tb.Peer(1).Up {
		t.Fatalf("fresh replies, still: %v", cs)
	}
	// A peer that stays silent after the hold goes down.
	var down bool
	for _, c := range tb.Tick(wake.Add(2500 * time.Millisecond)) {
		down = down || c.Kind == PeerDown
	}
	if !down {
		t.Fatal("a silent peer stayed up after the hold")
	}
	// A lane that was down is not brought up by a hold.
	tb.Hold(wake.Add(time.Hour))
	if tb.Tick(wake.Add(2600 * time.Millisecond)); tb.Peer(1).Up {
		t.Fatal("a hold brought a down peer up")
	}
}
