package engine

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/vigil-ha/vigil/replicator/meta"
)

// TestDecide checks the connection plan against the rules, and that both
// sides compute mirrored plans from the same two Hellos.
func TestDecide(t *testing.T) {
	g := func(cur, bm uint64, h ...uint64) meta.Generations {
		gens := meta.Generations{Current: cur, Bitmap: bm}
		copy(gens.History[:], h)
		return gens
	}
	const (
		ok    = meta.FlagConsistent
		dirty = meta.FlagConsistent | meta.FlagHelloDirty
		was   = meta.FlagConsistent | meta.FlagPrimary
		keep  = meta.FlagConsistent | meta.FlagResolveKeep
		disc  = meta.FlagConsistent | meta.FlagResolveDiscard
	)
	type want int
	const (
		none want = iota
		source
		target
		refused
	)
	cases := []struct {
		name string
		l, p side
		want want
		full bool
	}{
		{"in sync", side{Primary, g(5, 0), ok, 1}, side{Secondary, g(5, 0), ok, 2}, none, false},
		{"in sync, both secondary", side{Secondary, g(5, 0), ok, 1}, side{Secondary, g(5, 0), ok, 2}, none, false},
		{"primary went on alone", side{Primary, g(7, 5), ok, 1}, side{Secondary, g(5, 0), ok, 2}, source, false},
		{"newer secondary is the source", side{Secondary, g(7, 5), ok, 1}, side{Secondary, g(5, 0), ok, 2}, source, false},
		{"newer secondary facing an older primary", side{Secondary, g(7, 5), ok, 1}, side{Primary, g(5, 0), ok, 2}, refused, false},
		{"bitmap lost: full", side{Secondary, g(9, 0, 5), ok, 1}, side{Secondary, g(5, 0), ok, 2}, source, true},
		{"peer fresh", side{Primary, g(5, 0), ok, 1}, side{Secondary, g(0, 0), 0, 2}, source, true},
		{"both fresh", side{Secondary, g(0, 0), 0, 1}, side{Secondary, g(0, 0), 0, 2}, none, false},
		{"both primary", side{Primary, g(5, 0), ok, 1}, side{Primary, g(5, 0), ok, 2}, refused, false},
		{"unrelated", side{Secondary, g(5, 4), ok, 1}, side{Secondary, g(15, 14), ok, 2}, refused, false},
		{"split brain", side{Primary, g(7, 5), ok, 1}, side{Primary, g(8, 5), ok, 2}, refused, false},
		{"split brain resolved: peer discards", side{Primary, g(7, 5), ok, 1}, side{Secondary, g(8, 5), disc, 2}, source, false},
		{"split brain resolved: local keeps", side{Secondary, g(7, 5), keep, 1}, side{Secondary, g(8, 5), ok, 2}, source, false},
		{"split brain resolved full", side{Secondary, g(7, 0, 5), ok, 1}, side{Secondary, g(8, 0, 5), keep, 2}, target, true},
		{"split brain: a primary cannot discard", side{Primary, g(7, 5), disc, 1}, side{Secondary, g(8, 5), ok, 2}, refused, false},
		{"split brain: both keep", side{Secondary, g(7, 5), keep, 1}, side{Secondary, g(8, 5), keep, 2}, refused, false},
		{"crashed primary came back in sync", side{Secondary, g(5, 0), dirty | was, 1}, side{Secondary, g(5, 0), ok, 2}, source, false},
		{"in sync, primary has dirty bits", side{Secondary, g(5, 0), ok, 1}, side{Primary, g(5, 0), dirty, 2}, target, false},
		{"in sync, dirty, tie on node index", side{Secondary, g(5, 0), dirty, 1}, side{Secondary, g(5, 0), dirty, 2}, source, false},
		{"in sync, inconsistent peer", side{Secondary, g(5, 0), ok, 3}, side{Secondary, g(5, 0), 0, 2}, source, false},
	}
	for _, c := range cases {
		check := func(l, p side, w want, mirrored bool) {
			t.Helper()
			pl := decide(l, p)
			got := none
			switch {
			case pl.err != nil:
				got = refused
			case pl.source && pl.target:
				t.Fatalf("%s: both source and target", c.name)
			case pl.source:
				got = source
			case pl.target:
				got = target
			}
			if got != w || (pl.err == nil && (pl.source || pl.target) && pl.verdict.Full != c.full) {
				t.Errorf("%s (mirrored %v): got %v full=%v err=%v, want %v full=%v", c.name, mirrored, got, pl.verdict.Full, pl.err, w, c.full)
			}
			if pl.err != nil && pl.code == 0 && pl.raw != meta.SplitBrain {
				t.Errorf("%s: refused with no Close code", c.name)
			}
		}
		check(c.l, c.p, c.want, false)
		mw := map[want]want{source: target, target: source}[c.want]
		if c.want == none || c.want == refused {
			mw = c.want
		}
		check(c.p, c.l, mw, true)
	}
}

// TestPlannedSwitchover: demote A, promote B, both connected and in sync:
// no resync, no new generation, no split brain, and B's writes replicate
// to A; then back.
func TestPlannedSwitchover(t *testing.T) {
	for _, mode := range []Mode{SyncMode, AsyncMode} {
		t.Run(mode.String(), func(t *testing.T) {
			gens := meta.Generations{Current: 0xabc}
			tweak := func(c *Config) { c.Mode = mode }
			a := newNodeCfg(t, Primary, 1, gens, tweak)
			b := newNodeCfg(t, Secondary, 2, gens, tweak)
			mustConnect(t, a, b)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(31, 32))
			for i := range 30 {
				if err := a.e.Write(ctx, uint64(rng.IntN(volSize/4096))*4096, block(rng, uint64(i), 4096), false); err != nil {
					t.Fatal(err)
				}
			}
			before := a.e.Status().Gens
			for range 2 { // idempotent
				if err := a.e.Demote(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := a.e.Write(ctx, 0, make([]byte, 4096), false); !errors.Is(err, ErrNotPrimary) {
				t.Fatalf("write after demote: %v", err)
			}
			waitFor(t, "b sees a secondary", func() bool { return b.e.Status().PeerRole == Secondary }, a, b)
			for range 2 {
				if err := b.e.Promote(false); err != nil {
					t.Fatal(err)
				}
			}
			as, bs := a.e.Status(), b.e.Status()
			if as.State != Connected || bs.State != Connected || as.PeerRole != Primary || bs.Role != Primary || as.Role != Secondary {
				t.Fatalf("after switchover: a %+v, b %+v", as, bs)
			}
			if as.Gens != before || bs.Gens != before || as.ResyncSent != 0 || bs.ResyncSent != 0 {
				t.Fatalf("switchover changed generations or resynced: before %+v, a %+v, b %+v", before, as, bs)
			}
			if err := a.e.Promote(false); !errors.Is(err, ErrPeerPrimary) {
				t.Fatalf("promote a while b is primary: %v", err)
			}
			if err := a.e.Promote(true); !errors.Is(err, ErrPeerPrimary) {
				t.Fatalf("forced promote a while b is primary: %v", err)
			}
			for i := range 30 {
				if err := b.e.Write(ctx, uint64(rng.IntN(volSize/4096))*4096, block(rng, uint64(100+i), 4096), i%3 == 0); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, a.path, b.path)
			if st := b.e.Status(); st.State != Connected || st.DirtyBytes != 0 || st.ReplicatedBytes != 30*4096 {
				t.Fatalf("b after its writes: %+v", st)
			}
			// And back.
			if err := b.e.Demote(ctx); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "a sees b secondary", func() bool { return a.e.Status().PeerRole == Secondary }, a, b)
			if err := a.e.Promote(false); err != nil {
				t.Fatal(err)
			}
			if err := a.e.Write(ctx, 8192, block(rng, 999, 4096), true); err != nil {
				t.Fatal(err)
			}
			if err := a.e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, a.path, b.path)
			if as, bs := a.e.Status(), b.e.Status(); as.Gens != before || bs.Gens != before || as.ResyncSent+bs.ResyncSent != 0 || as.State != Connected {
				t.Fatalf("after switching back: a %+v, b %+v", as, bs)
			}
			// A restart keeps the recorded role.
			if sb := a.st.Superblock(); sb.Role != uint8(Primary) || sb.Flags&meta.FlagPrimary == 0 {
				t.Fatalf("a's superblock: %+v", sb)
			}
			if sb := b.st.Superblock(); sb.Role != uint8(Secondary) || sb.Flags&meta.FlagPrimary != 0 {
				t.Fatalf("b's superblock: %+v", sb)
			}
		})
	}
}

// TestDirectionFollowsData: the newer side is the source even as a
// secondary; the older side cannot be promoted, the source can, in the
// middle of the resync, and its writes replicate while the resync goes on.
func TestDirectionFollowsData(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(41, 42))
	b.e.Disconnect()
	const regions = 24
	for i := range regions {
		if err := a.e.Write(ctx, uint64(i)*2*gran, block(rng, uint64(i), 8192), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.e.Demote(ctx); err != nil { // standing alone: a local flush
		t.Fatal(err)
	}
	if st := a.e.Status(); st.Role != Secondary || st.DirtyBytes != regions*gran {
		t.Fatalf("a demoted alone: %+v", st)
	}
	// Hold the resync after its first chunk.
	if err := a.e.SetResyncRate(1); err != nil {
		t.Fatal(err)
	}
	mustConnectNoWait(t, a, b)
	waitFor(t, "b marked inconsistent", func() bool { return !b.e.Status().Consistent }, a, b)
	as, bs := a.e.Status(), b.e.Status()
	if as.State != Resyncing || bs.State != Resyncing || as.Verdict != meta.LocalNewer.String() || bs.Verdict != meta.PeerNewer.String() || as.ResyncTotal != regions*gran {
		t.Fatalf("resync from the secondary: a %+v, b %+v", as, bs)
	}
	if err := b.e.Promote(false); !errors.Is(err, ErrOutdated) {
		t.Fatalf("promote the target: %v", err)
	}
	if err := a.e.Promote(false); err != nil {
		t.Fatalf("promote the source mid-resync: %v", err)
	}
	if st := a.e.Status(); st.Role != Primary || st.State != Resyncing {
		t.Fatalf("source promoted: %+v", st)
	}
	for i := range 40 {
		if err := a.e.Write(ctx, uint64(rng.IntN(volSize/4096))*4096, block(rng, uint64(100+i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if st := a.e.Status(); st.State != Resyncing {
		t.Fatalf("the resync ended while held: %+v", st)
	}
	if err := a.e.SetResyncRate(0); err != nil {
		t.Fatal(err)
	}
	waitState(t, Connected, a, b)
	if err := a.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, a.path, b.path)
	as, bs = a.e.Status(), b.e.Status()
	if !bs.Consistent || as.Gens.Current != bs.Gens.Current || as.DirtyBytes != 0 || as.ResyncSent != regions*gran {
		t.Fatalf("after the resync: a %+v, b %+v", as, bs)
	}
}

// mustConnectNoWait connects without waiting for a resync to end.
func mustConnectNoWait(t testing.TB, p, s *node) {
	t.Helper()
	if perr, serr := connect(t, p, s); perr != nil || serr != nil {
		t.Fatalf("connect: %v / %v", perr, serr)
	}
}

// TestBothFresh: two disks that never held data connect and wait; the
// first promotion makes its side the source of a full sync.
func TestBothFresh(t *testing.T) {
	a := newNodeFlags(t, Secondary, 1, meta.Generations{}, 0, nil)
	b := newNodeFlags(t, Secondary, 2, meta.Generations{}, 0, nil)
	mustConnect(t, a, b)
	if st := a.e.Status(); st.Verdict != meta.BothFresh.String() || st.ResyncSent != 0 || st.Consistent {
		t.Fatalf("both fresh: %+v", st)
	}
	rng := rand.New(rand.NewPCG(51, 52))
	if _, err := b.data.WriteAt(block(rng, 1, 4096), 12288); err != nil { // garbage on the fresh disk
		t.Fatal(err)
	}
	if err := a.e.Promote(false); err != nil {
		t.Fatal(err)
	}
	if st := a.e.Status(); st.Role != Primary || !st.Consistent || st.Gens.Current == 0 {
		t.Fatalf("first primary: %+v", st)
	}
	ctx := context.Background()
	if err := a.e.Write(ctx, 0, block(rng, 2, 4096), false); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, a, b) // the daemon's loop redials
	as, bs := a.e.Status(), b.e.Status()
	if as.ResyncSent != volSize || !bs.Consistent || bs.Gens.Current != as.Gens.Current || bs.Verdict != meta.PeerNewer.String() {
		t.Fatalf("initial full sync: a %+v, b %+v", as, bs)
	}
	sameFiles(t, a.path, b.path)
}

// TestPromoteRefusals: a target of newer data and an unfinished resync
// target are not promoted without force; with force they are, and the
// next connection reports the split brain rather than merging.
func TestPromoteRefusals(t *testing.T) {
	a, b := pair(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(61, 62))
	b.e.Disconnect()
	for i := range 8 { // separate regions: one resync chunk each
		if err := a.e.Write(ctx, uint64(i)*2*gran, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.e.SetResyncRate(1); err != nil { // one chunk, then held
		t.Fatal(err)
	}
	mustConnectNoWait(t, a, b)
	waitFor(t, "first resync chunk applied", func() bool { st := b.e.Status(); return !st.Consistent && st.ResyncDone > 0 }, a, b)
	b.e.Disconnect()
	if err := b.e.Promote(false); !errors.Is(err, ErrOutdated) {
		t.Fatalf("promote older data: %v", err)
	}
	// After a restart only the superblock remembers: inconsistent.
	b.restart(t, Secondary)
	if err := b.e.Promote(false); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("promote an unfinished resync target: %v", err)
	}
	if st := b.e.Status(); st.Consistent || st.Role != Secondary {
		t.Fatalf("after the refusal: %+v", st)
	}
	if err := b.e.Promote(true); err != nil {
		t.Fatal(err)
	}
	if st := b.e.Status(); st.Role != Primary || st.Consistent {
		t.Fatalf("forced: %+v", st)
	}
	if err := a.e.SetResyncRate(0); err != nil {
		t.Fatal(err)
	}
	if err := b.e.Demote(ctx); err != nil {
		t.Fatal(err)
	}
	perr, serr := connect(t, a, b)
	if !errors.Is(perr, ErrSplitBrain) || !errors.Is(serr, ErrSplitBrain) {
		t.Fatalf("after a forced promotion of older data: %v / %v", perr, serr)
	}
}

// TestSplitBrainResolved: both promoted during a partition; on reconnect
// both report split brain and nothing is merged; an operator's choice on
// one side makes the next connection resync from the surviving side, and
// verify then finds nothing.
func TestSplitBrainResolved(t *testing.T) {
	for _, tc := range []struct {
		name string
		// resolve records the choice that b's changes are discarded.
		resolve func(a, b *node) error
	}{
		{"discard-on-loser", func(a, b *node) error { return b.e.ResolveSplitBrain(true) }},
		{"keep-on-survivor", func(a, b *node) error { return a.e.ResolveSplitBrain(false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(71, 72))
			if err := a.e.Write(ctx, 0, block(rng, 1, 4096), false); err != nil {
				t.Fatal(err)
			}
			if err := a.e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			if err := b.e.ResolveSplitBrain(true); err == nil {
				t.Fatal("resolved a split brain that is not there")
			}
			a.e.Disconnect() // the partition, seen by both
			b.e.Disconnect()
			if err := b.e.Promote(false); err != nil {
				t.Fatal(err)
			}
			aBlock, bBlock := block(rng, 2, 4096), block(rng, 3, 4096)
			if err := a.e.Write(ctx, 1<<20, aBlock, false); err != nil {
				t.Fatal(err)
			}
			if err := b.e.Write(ctx, 2<<20, bBlock, false); err != nil {
				t.Fatal(err)
			}
			aData, bData := readFile(t, a.path), readFile(t, b.path)
			perr, serr := connect(t, a, b)
			if !errors.Is(perr, ErrSplitBrain) || !errors.Is(serr, ErrSplitBrain) {
				t.Fatalf("connect after the partition: %v / %v", perr, serr)
			}
			for _, n := range []*node{a, b} {
				if st := n.e.Status(); st.State != SplitBrain || st.Verdict != meta.SplitBrain.String() || st.ResyncSent != 0 {
					t.Fatalf("split brain status: %+v", st)
				}
			}
			if !bytesEqual(readFile(t, a.path), aData) || !bytesEqual(readFile(t, b.path), bData) {
				t.Fatal("split brain data was merged")
			}
			if err := b.e.ResolveSplitBrain(true); err == nil {
				t.Fatal("discarded a primary's data")
			}
			if err := b.e.Demote(ctx); err != nil {
				t.Fatal(err)
			}
			// Both keep: refused, still split brain.
			if err := a.e.ResolveSplitBrain(false); err != nil {
				t.Fatal(err)
			}
			if err := b.e.ResolveSplitBrain(false); err != nil {
				t.Fatal(err)
			}
			if perr, serr := connect(t, a, b); !errors.Is(perr, ErrSplitBrain) || !errors.Is(serr, ErrSplitBrain) {
				t.Fatalf("conflicting resolutions: %v / %v", perr, serr)
			}
			// Undo: the operator's real choice replaces those.
			if err := b.e.ResolveSplitBrain(true); err != nil {
				t.Fatal(err)
			}
			if err := a.e.ResolveSplitBrain(false); err != nil {
				t.Fatal(err)
			}
			if err := tc.resolve(a, b); err != nil {
				t.Fatal(err)
			}
			mustConnect(t, a, b)
			as, bs := a.e.Status(), b.e.Status()
			sameFiles(t, a.path, b.path)
			if !bytesEqual(readFile(t, a.path), aData) {
				t.Fatal("the surviving side's data changed")
			}
			if as.Resolution != "" || bs.Resolution != "" || !bs.Consistent || as.Gens.Current != bs.Gens.Current || as.DirtyBytes+bs.DirtyBytes != 0 {
				t.Fatalf("after the resolution: a %+v, b %+v", as, bs)
			}
			if as.ResyncSent == 0 || as.ResyncSent > 4*gran {
				t.Fatalf("differential resync sent %d", as.ResyncSent)
			}
			res, err := a.e.Verify(ctx, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if res.Checked != volSize || res.Mismatched != 0 || len(res.Mismatches) != 0 {
				t.Fatalf("verify after the resolution: %+v", res)
			}
		})
	}
}

// TestSplitBrainResolvedFull: a split brain whose bitmaps do not reach
// back to the shared state resolves with a full resync.
func TestSplitBrainResolvedFull(t *testing.T) {
	a := newNode(t, Primary, 1, meta.Generations{Current: 7, History: [2]uint64{5}})
	b := newNode(t, Secondary, 2, meta.Generations{Current: 8, History: [2]uint64{5}})
	rng := rand.New(rand.NewPCG(73, 74))
	if _, err := b.data.WriteAt(block(rng, 1, 4096), 3<<20); err != nil {
		t.Fatal(err)
	}
	if perr, serr := connect(t, a, b); !errors.Is(perr, ErrSplitBrain) || !errors.Is(serr, ErrSplitBrain) {
		t.Fatalf("connect: %v / %v", perr, serr)
	}
	if err := b.e.ResolveSplitBrain(true); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, a, b)
	if st := a.e.Status(); st.ResyncSent != volSize || st.Verdict != meta.LocalNewer.String() {
		t.Fatalf("full resync: %+v", st)
	}
	sameFiles(t, a.path, b.path)
}

// TestPromoteRace: two secondaries promoted at once on one connection:
// at most one wins; never two primaries on one connection.
func TestPromoteRace(t *testing.T) {
	gens := meta.Generations{Current: 0xabc}
	for range 20 {
		a := newNode(t, Secondary, 1, gens)
		b := newNode(t, Secondary, 2, gens)
		mustConnect(t, a, b)
		errs := make(chan error, 2)
		for _, n := range []*node{a, b} {
			go func() { errs <- n.e.Promote(false) }()
		}
		e1, e2 := <-errs, <-errs
		for _, err := range []error{e1, e2} {
			if err != nil && !errors.Is(err, ErrPeerPrimary) {
				t.Fatal(err)
			}
		}
		as, bs := a.e.Status(), b.e.Status()
		if as.Role == Primary && bs.Role == Primary && as.State == Connected && bs.State == Connected {
			t.Fatalf("two primaries connected: a %+v, b %+v", as, bs)
		}
		if e1 == nil && e2 == nil && as.State != StandAlone && bs.State != StandAlone {
			t.Fatalf("both promoted, still connected: a %+v b %+v", as, bs)
		}
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func bytesEqual(a, b []byte) bool { return bytes.Equal(a, b) }
