package engine

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// heldVolume is a Volume whose writes wait while the test holds it (a
// secondary that cannot keep up), and whose reads may be made to meet (a
// resync source reading several chunks at once).
type heldVolume struct {
	Volume
	hold atomic.Pointer[chan struct{}]
	// only, if set before the node starts, picks the writes block holds.
	only func(off int64) bool
	// meet, if set (with met) before the node starts, makes each read
	// wait, for two seconds at most, until meet reads were in at once.
	// most is the most reads that were in at once.
	meet     int32
	met      chan struct{}
	metOnce  sync.Once
	in, most atomic.Int32
}

func (v *heldVolume) ReadAt(p []byte, off int64) (int, error) {
	n := v.in.Add(1)
	defer v.in.Add(-1)
	for m := v.most.Load(); n > m && !v.most.CompareAndSwap(m, n); m = v.most.Load() {
	}
	if v.meet > 0 {
		if n >= v.meet {
			v.metOnce.Do(func() { close(v.met) })
		}
		select {
		case <-v.met:
		case <-time.After(2 * time.Second):
		}
	}
	return v.Volume.ReadAt(p, off)
}

func (v *heldVolume) WriteAt(p []byte, off int64) (int, error) {
	if ch := v.hold.Load(); ch != nil && (v.only == nil || v.only(off)) {
		<-*ch
	}
	return v.Volume.WriteAt(p, off)
}

// block makes writes wait until the returned release is called.
func (v *heldVolume) block() (release func()) {
	ch := make(chan struct{})
	v.hold.Store(&ch)
	var once sync.Once
	return func() {
		once.Do(func() {
			v.hold.Store(nil)
			close(ch)
		})
	}
}

// asyncPair returns a connected async primary and a secondary whose
// volume the test can hold.
func asyncPair(t *testing.T, tweak func(*Config)) (p, s *node, hv *heldVolume) {
	t.Helper()
	gens := meta.Generations{Current: 0xabc}
	p = newNodeCfg(t, Primary, 1, gens, func(c *Config) {
		c.Mode = AsyncMode
		if tweak != nil {
			tweak(c)
		}
	})
	s = newNodeCfg(t, Secondary, 2, gens, func(c *Config) {
		hv = &heldVolume{} // its Volume is set when the node starts
		c.Data = hv
	})
	mustConnect(t, p, s)
	return p, s, hv
}

// TestAsyncWritesOutrunSecondary: async writes complete while the
// secondary applies nothing; Flush then brings both volumes level.
func TestAsyncWritesOutrunSecondary(t *testing.T) {
	p, s, hv := asyncPair(t, nil)
	release := hv.block()
	defer release()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			for i := range 40 {
				n := 512 * (1 + rng.IntN(16))
				off := uint64(rng.IntN(volSize/512-n/512)) * 512 // overlapping across goroutines
				if err := p.e.Write(ctx, off, block(rng, uint64(i), n), i%9 == 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait() // every write completed with the secondary held
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := p.e.Status()
	if st.Mode != AsyncMode || st.State != Connected || st.QueuedWrites == 0 || st.QueuedBytes == 0 || st.OldestUnacked <= 0 || st.Behind || st.Fallbacks != 0 {
		t.Fatalf("with the secondary held: %+v", st)
	}
	release()
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	st = p.e.Status()
	if st.State != Connected || st.QueuedWrites != 0 || st.QueuedBytes != 0 || st.OldestUnacked != 0 || st.DirtyBytes != 0 || st.Fallbacks != 0 {
		t.Fatalf("after flush: %+v", st)
	}
}

// TestAsyncOverflowFallsBack: a queue over its bound stops queueing
// without blocking writes; the catch-up resync copies the regions from
// the bitmap.
func TestAsyncOverflowFallsBack(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tweak func(*Config)
	}{
		{"writes", func(c *Config) { c.MaxQueueWrites = 4 }},
		{"bytes", func(c *Config) { c.MaxQueueBytes = 16 << 10 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, s, hv := asyncPair(t, tc.tweak)
			release := hv.block()
			defer release()
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(11, 12))
			for i := range 30 {
				off := uint64(i%20)*gran*3 + uint64(rng.IntN(8))*4096 // some regions twice
				if err := p.e.Write(ctx, off, block(rng, uint64(i), 4096), i%5 == 0); err != nil {
					t.Fatal(err)
				}
			}
			st := p.e.Status()
			if !st.Behind || st.Fallbacks != 1 || st.QueuedWrites == 0 || st.QueuedWrites > 4 || st.QueuedBytes > 16<<10 || st.DirtyBytes != 20*gran {
				t.Fatalf("overflowed: %+v", st)
			}
			release()
			if err := p.e.Flush(ctx); err != nil { // waits for the catch-up
				t.Fatal(err)
			}
			sameFiles(t, p.path, s.path)
			st = p.e.Status()
			if st.Behind || st.Fallbacks != 1 || st.State != Connected || st.QueuedWrites != 0 || st.ResyncSent == 0 || st.DirtyBytes != 0 {
				t.Fatalf("after catch-up: %+v", st)
			}
			// Queueing resumes after the catch-up.
			for i := range 3 {
				if err := p.e.Write(ctx, uint64(i)*gran, block(rng, uint64(100+i), 4096), false); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, p.path, s.path)
			if st := p.e.Status(); st.Fallbacks != 1 || st.Behind || st.DirtyBytes != 0 {
				t.Fatalf("after more writes: %+v", st)
			}
		})
	}
}

// TestAsyncPeerLost: an async primary that loses its peer with writes
// unacked goes on alone with their regions dirty; a reconnect resyncs
// them.
func TestAsyncPeerLost(t *testing.T) {
	p, s, hv := asyncPair(t, nil)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(21, 22))
	if err := p.e.Write(ctx, 0, block(rng, 1, 4096), false); err != nil {
		t.Fatal(err)
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	genBefore := p.e.Status().Gens
	release := hv.block()
	defer release()
	const regions = 5
	for i := range regions {
		if err := p.e.Write(ctx, uint64(1<<20+i*2*gran), block(rng, uint64(10+i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.e.Status(); st.QueuedWrites != regions {
		t.Fatalf("queued: %+v", st)
	}
	p.e.Disconnect()
	st := p.e.Status()
	if st.State != StandAlone || st.QueuedWrites != 0 || st.OldestUnacked != 0 || st.DirtyBytes != regions*gran || st.Gens.Current == genBefore.Current || st.Gens.Bitmap != genBefore.Current {
		t.Fatalf("alone: %+v (before %+v)", st, genBefore)
	}
	// Writes alone complete locally and stay dirty.
	if err := p.e.Write(ctx, 3<<20, block(rng, 99, 4096), false); err != nil {
		t.Fatal(err)
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	release()
	mustConnect(t, p, s)
	ps, ss := p.e.Status(), s.e.Status()
	if ps.State != Connected || ps.DirtyBytes != 0 || ss.DirtyBytes != 0 || ps.Gens.Current != ss.Gens.Current || !ss.Consistent || ps.ResyncSent != (regions+1)*gran {
		t.Fatalf("after resync: primary %+v, secondary %+v", ps, ss)
	}
	sameFiles(t, p.path, s.path)
}

// TestAsyncLargeWritesInOrder: async writes, large and small, overlapping
// within 1 MiB, reach the secondary back to back while it is held; its
// appliers write several large ones at once but never two that overlap
// out of order, so after a Flush both volumes are equal with no resync.
func TestAsyncLargeWritesInOrder(t *testing.T) {
	p, s, hv := asyncPair(t, nil)
	release := hv.block()
	defer release()
	ctx := context.Background()
	writers(t, 4, 11, func(rng *rand.Rand) error {
		for i := range 30 {
			n := 4096 * (1 + rng.IntN(4))
			if rng.IntN(2) == 0 {
				n = applyLarge * (1 + rng.IntN(4))
			}
			off := uint64(rng.IntN((1<<20)/4096)) * 4096
			if err := p.e.Write(ctx, off, alignedCopy(block(rng, uint64(i), n)), false); err != nil {
				return err
			}
		}
		return nil
	})
	release()
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	if st := p.e.Status(); st.Fallbacks != 0 || st.DirtyBytes != 0 || st.ResyncSent != 0 {
		t.Fatalf("after flush: %+v", st)
	}
}

// TestLargeWriteDoesNotHoldOthers: in sync mode, while the secondary's
// disk holds a large write, later writes elsewhere are applied and acked
// beside it, and the held one completes only when its data is written.
func TestLargeWriteDoesNotHoldOthers(t *testing.T) {
	gens := meta.Generations{Current: 0xabc}
	const heldAt = 1 << 20
	p := newNode(t, Primary, 1, gens)
	var hv *heldVolume
	s := newNodeCfg(t, Secondary, 2, gens, func(c *Config) {
		hv = &heldVolume{only: func(off int64) bool { return off == heldAt }}
		c.Data = hv
	})
	mustConnect(t, p, s)
	release := hv.block()
	defer release()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 3))
	big := alignedCopy(block(rng, 1, 4*applyLarge))
	done := make(chan error, 1)
	go func() { done <- p.e.Write(ctx, heldAt, big, true) }()
	for i := range 20 {
		n := 4096
		if i%2 == 0 {
			n = applyLarge
		}
		if err := p.e.Write(ctx, uint64(2<<20+i*applyLarge), alignedCopy(block(rng, uint64(i), n)), i%3 == 0); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("the held write completed (%v) before the secondary wrote it", err)
	default:
	}
	release()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
}

// TestReplyAckMerges: a queued WriteAck takes in the next frame's ack
// only, never one further on: writes applied at once complete out of
// order, and a range must not ack a write still being applied.
func TestReplyAckMerges(t *testing.T) {
	c := &conn{rKick: make(chan struct{}, 1)}
	for _, seq := range []uint64{5, 6, 8, 7, 9} {
		c.replyAck(seq, wire.StatusOK)
	}
	c.replyAck(10, wire.StatusIOError)
	var got []wire.WriteAck
	for _, r := range c.replies {
		got = append(got, r.ack)
	}
	want := []wire.WriteAck{{From: 5, To: 6}, {From: 8, To: 8}, {From: 7, To: 7}, {From: 9, To: 9}, {From: 10, To: 10, Status: wire.StatusIOError}}
	if !slices.Equal(got, want) {
		t.Fatalf("queued acks %+v, want %+v", got, want)
	}
}
