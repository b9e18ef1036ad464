package heartbeat

import (
	"testing"
	"time"
)

func TestReplayGuard(t *testing.T) {
	const (
		lane0 = 0
		lane1 = 1
	)
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	sec := int64(time.Second)
	g := newReplayGuard()
	steps := []struct {
		name        string
		lane        uint8
		incarnation uint64
		seq         uint64
		sentAt      int64
		want        probeVerdict
	}{
		{"first incarnation, stale clock", lane0, 100, 1, now - 31*sec, probeClockSkew},
		{"first incarnation, clock ahead", lane0, 100, 1, now + 31*sec, probeClockSkew},
		{"first incarnation", lane0, 100, 5, now - 29*sec, probeAccepted},
		{"same seq", lane0, 100, 5, now, probeStaleSeq},
		{"older seq", lane0, 100, 4, now, probeStaleSeq},
		{"next seq", lane0, 100, 6, now, probeAccepted},
		{"seq is per lane", lane1, 100, 1, now, probeAccepted},
		{"seq jump", lane0, 100, 1000, now + sec, probeAccepted},
		{"new incarnation, stale clock", lane0, 200, 1, now - 31*sec, probeClockSkew},
		{"new incarnation sent before the current's latest", lane0, 200, 1, now, probeOlderIncarnation},
		{"new incarnation", lane1, 200, 1, now + 2*sec, probeAccepted},
		{"new incarnation resets the other lanes", lane0, 200, 1, now + 2*sec, probeAccepted},
		{"retired incarnation", lane0, 100, 1001, now + 3*sec, probeRetired},
		{"retired incarnation, other lane", lane1, 100, 2, now + 3*sec, probeRetired},
		{"current incarnation continues", lane1, 200, 2, now + 3*sec, probeAccepted},
	}
	for _, s := range steps {
		if got := g.check(s.lane, s.incarnation, s.seq, s.sentAt, now); got != s.want {
			t.Fatalf("%s: %v, want %v", s.name, got, s.want)
		}
	}

	// Only the last retiredIncarnations incarnations stay retired.
	sentAt := now + 10*sec
	for inc := uint64(300); inc < 300+retiredIncarnations; inc++ {
		sentAt += sec
		if got := g.check(lane0, inc, 1, sentAt, sentAt); got != probeAccepted {
			t.Fatalf("incarnation %d: %v", inc, got)
		}
	}
	sentAt += sec
	if got := g.check(lane0, 200, 9, sentAt, sentAt); got != probeRetired {
		t.Fatalf("recently retired 200: %v", got)
	}
	if got := g.check(lane0, 100, 9, sentAt, sentAt); got != probeAccepted {
		t.Fatalf("long forgotten 100 with a fresh clock: %v", got)
	}
}

func TestPendingTable(t *testing.T) {
	base := time.Now()
	var tb pendingTable
	n1, n2, n3 := [16]byte{1}, [16]byte{2}, [16]byte{3}
	tb.add(n1, base)
	tb.add(n2, base.Add(10*time.Millisecond))
	tb.add(n3, base.Add(20*time.Millisecond))

	if _, v := tb.take([16]byte{9}); v != replyUnknown {
		t.Fatalf("unknown nonce: %v", v)
	}
	sent, v := tb.take(n2)
	if v != replyMatched || !sent.Equal(base.Add(10*time.Millisecond)) {
		t.Fatalf("take n2: %v %v", sent, v)
	}
	if _, v := tb.take(n2); v != replyDuplicate {
		t.Fatalf("n2 again: %v", v)
	}
	if missed := tb.expire(base.Add(15*time.Millisecond), 10*time.Millisecond); missed != 1 {
		t.Fatalf("expired %d, want 1 (n1)", missed)
	}
	if _, v := tb.take(n1); v != replyLate {
		t.Fatalf("n1 after expiry: %v", v)
	}
	if _, v := tb.take(n3); v != replyMatched {
		t.Fatalf("n3: %v", v)
	}
	if missed := tb.expire(base.Add(time.Hour), time.Millisecond); missed != 0 {
		t.Fatalf("expired %d from an empty table", missed)
	}

	// The table is bounded: the oldest probe is given up as a miss.
	missed := 0
	for i := range maxPending + 3 {
		missed += tb.add([16]byte{0xee, byte(i)}, base)
	}
	if missed != 3 || len(tb.pending) != maxPending {
		t.Fatalf("missed %d, %d pending", missed, len(tb.pending))
	}
	if _, v := tb.take([16]byte{0xee, 0}); v != replyLate {
		t.Fatalf("evicted nonce: %v", v)
	}
	if _, v := tb.take([16]byte{0xee, maxPending + 2}); v != replyMatched {
		t.Fatalf("newest nonce: %v", v)
	}
	// The zero nonce never matches an empty slot of the recent ring.
	var fresh pendingTable
	if _, v := fresh.take([16]byte{}); v != replyUnknown {
		t.Fatalf("zero nonce: %v", v)
	}
}
