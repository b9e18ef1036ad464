package meta

import "testing"

func TestCompare(t *testing.T) {
	g := func(cur, bm, h0, h1 uint64) Generations {
		return Generations{Current: cur, Bitmap: bm, History: [2]uint64{h0, h1}}
	}
	cases := []struct {
		name        string
		local, peer Generations
		want        Verdict
	}{
		{"both fresh", g(0, 0, 0, 0), g(0, 0, 0, 0), Verdict{BothFresh, true}},
		{"local fresh", g(0, 0, 0, 0), g(5, 0, 0, 0), Verdict{PeerNewer, true}},
		{"peer fresh", g(5, 0, 0, 0), g(0, 0, 0, 0), Verdict{LocalNewer, true}},
		{"in sync", g(5, 0, 4, 0), g(5, 0, 4, 0), Verdict{InSync, false}},
		{"local primary went on alone", g(7, 5, 0, 0), g(5, 0, 0, 0), Verdict{LocalNewer, false}},
		{"peer primary went on alone", g(5, 0, 0, 0), g(7, 5, 0, 0), Verdict{PeerNewer, false}},
		{"split brain differential", g(7, 5, 0, 0), g(8, 5, 0, 0), Verdict{SplitBrain, false}},
		{"peer resynced long ago, bitmap lost", g(9, 0, 5, 3), g(5, 0, 3, 0), Verdict{LocalNewer, true}},
		{"local behind in history", g(5, 0, 3, 0), g(9, 0, 5, 3), Verdict{PeerNewer, true}},
		{"split brain full", g(7, 0, 5, 0), g(8, 0, 5, 0), Verdict{SplitBrain, true}},
		{"split brain after several promotions", g(10, 5, 7, 0), g(11, 6, 5, 0), Verdict{SplitBrain, true}},
		{"unrelated", g(7, 6, 5, 4), g(17, 16, 15, 14), Verdict{Unrelated, true}},
	}
	for _, c := range cases {
		if got := Compare(c.local, c.peer); got != c.want {
			t.Errorf("%s: got %v full=%v, want %v full=%v", c.name, got.Decision, got.Full, c.want.Decision, c.want.Full)
		}
	}
}

// TestTransitions plays a cluster's life through the transitions and
// checks what Compare says at each step, from both sides.
func TestTransitions(t *testing.T) {
	check := func(step string, a, b Generations, want Decision, full bool) {
		t.Helper()
		if v := Compare(a, b); v.Decision != want || v.Full != full {
			t.Fatalf("%s: a sees %v full=%v, want %v full=%v", step, v.Decision, v.Full, want, full)
		}
		mirror := map[Decision]Decision{LocalNewer: PeerNewer, PeerNewer: LocalNewer}
		wantB := want
		if m, ok := mirror[want]; ok {
			wantB = m
		}
		if v := Compare(b, a); v.Decision != wantB || v.Full != full {
			t.Fatalf("%s: b sees %v full=%v, want %v", step, v.Decision, v.Full, wantB)
		}
	}
	var a, b Generations
	check("new cluster", a, b, BothFresh, true)
	a = a.NewCurrent(100) // operator makes a primary
	if a.Bitmap != 0 {
		t.Fatalf("first generation tracks a bitmap: %+v", a)
	}
	check("initial sync", a, b, LocalNewer, true)
	b = b.ResyncTargetDone(a)
	a = a.ResyncSourceDone()
	check("after initial sync", a, b, InSync, false)

	a = a.NewCurrent(200) // a loses b while primary
	if a.Bitmap != 100 {
		t.Fatalf("peer lost: bitmap id %x, want 100", a.Bitmap)
	}
	check("a went on alone", a, b, LocalNewer, false)
	a2 := a.NewCurrent(250) // a promoted again while still disconnected
	check("a went on twice", a2, b, LocalNewer, false)
	b2 := b.NewCurrent(300) // b promoted too: split brain
	check("split brain", a, b2, SplitBrain, false)
	if v := ResolveSplitBrain(Compare(a, b2), false); v.Decision != LocalNewer || v.Full {
		t.Fatalf("resolve keeping a: %+v", v)
	}
	if v := ResolveSplitBrain(Compare(a, b2), true); v.Decision != PeerNewer {
		t.Fatalf("resolve discarding a: %+v", v)
	}
	b = b2.ResyncTargetDone(a) // b's changes discarded
	a = a.ResyncSourceDone()
	check("after split brain resolved", a, b, InSync, false)
	if a.Bitmap != 0 || b.Bitmap != 0 {
		t.Fatalf("bitmap ids kept after resync: %+v %+v", a, b)
	}
}
