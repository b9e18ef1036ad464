package membership

import (
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/ledger"
)

var hashA = [16]byte{1}

func newTable() *Table {
	return New(hashA, time.Second, []PeerSpec{{Index: 1, Name: "b", Lanes: []string{"lan1", "lan2"}}})
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
	tb.Reply(1, 0, time.Millisecond, hashA, 7, t0)
	tb.Reply(1, 1, 2*time.Millisecond, hashA, 7, t0.Add(500*time.Millisecond))
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
	tb.Reply(1, 0, time.Millisecond, other, 7, now)
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
	tb.Reply(1, 0, time.Millisecond, hashA, 7, now)
	tb.Probe(1, 0, hashA, 7, ledger.Payload{Service: ledger.ServiceRunning})
	tb.Tick(now)
	tb.Reply(1, 0, time.Millisecond, hashA, 8, now)
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
	tb.Reply(9, 0, time.Millisecond, hashA, 7, now)
	tb.Reply(1, 5, time.Millisecond, hashA, 7, now)
	if cs := tb.Tick(now); len(cs) != 0 {
		t.Fatalf("changes from unknown peer/lane: %v", cs)
	}
}
