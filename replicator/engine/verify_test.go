package engine

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

// TestVerifyFindsAndRepairs: corruption the engine did not write (on the
// secondary's disk, behind its back) is found chunk by chunk, adjacent
// chunks merged; Resync repairs it; a second verify finds nothing.
func TestVerifyFindsAndRepairs(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(131, 132))
	for i := range 100 {
		if err := p.e.Write(ctx, uint64(rng.IntN(volSize/4096))*4096, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	const vc = minVerifyChunk
	corrupt := []struct{ off, n int64 }{
		{100_000, 4},           // inside chunk 1
		{3<<20 + 5, 1},         // chunk 48
		{10*vc - 2, 4},         // across chunks 9 and 10: one extent
		{volSize - 1, 1},       // the last byte
		{3<<20 + 4096, 100},    // chunk 48 again
		{5 << 20, vc},          // exactly chunk 80
		{5<<20 + 2*vc + 7, 9},  // chunk 82, not adjacent to 80
		{7<<20 + 30_000, 4096}, // chunk 112
	}
	for _, c := range corrupt { // flip the bytes on the secondary's disk
		b := make([]byte, c.n)
		if _, err := s.data.ReadAt(b, c.off); err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] ^= 0xa5
		}
		if _, err := s.data.WriteAt(b, c.off); err != nil {
			t.Fatal(err)
		}
	}
	want := []Extent{{1 * vc, vc}, {9 * vc, 2 * vc}, {48 * vc, vc}, {80 * vc, vc}, {82 * vc, vc}, {112 * vc, vc}, {volSize - vc, vc}}
	res, err := p.e.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != volSize || res.Mismatched != 8*vc || res.Resynced || res.Truncated || len(res.Mismatches) != len(want) {
		t.Fatalf("verify: %+v", res)
	}
	for i := range want {
		if res.Mismatches[i] != want[i] {
			t.Fatalf("mismatch %d: %+v, want %+v (all %+v)", i, res.Mismatches[i], want[i], res.Mismatches)
		}
	}
	if st := p.e.Status(); st.DirtyBytes != 0 || st.Verifying || st.VerifyTotal != volSize || st.VerifyDone != volSize {
		t.Fatalf("status after a verify without resync: %+v", st)
	}
	// A range, not aligned to chunks.
	res, err = p.e.Verify(ctx, VerifyOptions{Offset: 3<<20 - 100, Length: 200 + vc})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != 200+vc || res.Mismatched != vc || len(res.Mismatches) != 1 || res.Mismatches[0] != (Extent{3 << 20, vc}) {
		t.Fatalf("verify of a range: %+v", res)
	}
	res, err = p.e.Verify(ctx, VerifyOptions{Resync: true})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resynced || res.Mismatched != 8*vc {
		t.Fatalf("verify with resync: %+v", res)
	}
	sameFiles(t, p.path, s.path)
	if st := p.e.Status(); st.State != Connected || st.ResyncSent != 8*gran || st.DirtyBytes != 0 {
		t.Fatalf("after the repair: %+v", st)
	}
	if st := s.e.Status(); !st.Consistent || st.State != Connected {
		t.Fatalf("secondary after the repair: %+v", st)
	}
	res, err = p.e.Verify(ctx, VerifyOptions{})
	if err != nil || res.Mismatched != 0 || len(res.Mismatches) != 0 {
		t.Fatalf("verify after the repair: %+v %v", res, err)
	}

	if _, err := s.e.Verify(ctx, VerifyOptions{}); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("verify on the secondary: %v", err)
	}
	if _, err := p.e.Verify(ctx, VerifyOptions{Offset: volSize - 4096, Length: 8192}); !errors.Is(err, ErrRange) {
		t.Fatalf("verify past the end: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := p.e.Verify(cctx, VerifyOptions{}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled verify: %v", err)
	}
	p.e.Disconnect()
	if _, err := p.e.Verify(ctx, VerifyOptions{}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("verify standing alone: %v", err)
	}
}

// TestVerifyConcurrentWrites: writes overlapping the chunks being
// verified cause no false mismatch, in either mode, and are not lost.
func TestVerifyConcurrentWrites(t *testing.T) {
	for _, mode := range []Mode{SyncMode, AsyncMode} {
		t.Run(mode.String(), func(t *testing.T) {
			gens := meta.Generations{Current: 0xabc}
			p := newNodeCfg(t, Primary, 1, gens, func(c *Config) { c.Mode = mode })
			s := newNode(t, Secondary, 2, gens)
			mustConnect(t, p, s)
			ctx := context.Background()
			var stop atomic.Bool
			var wg sync.WaitGroup
			var writes atomic.Int64
			errs := make(chan error, 4)
			for g := range 4 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 141))
					for i := 0; !stop.Load(); i++ {
						n := 512 * (1 + rng.IntN(256))
						off := uint64(rng.IntN(volSize/512-n/512)) * 512
						if err := p.e.Write(ctx, off, block(rng, uint64(i), n), i%13 == 0); err != nil {
							errs <- err
							return
						}
						writes.Add(1)
					}
				})
			}
			// Paced, so that many writes meet chunks being verified.
			if err := p.e.SetResyncRate(32 << 20); err != nil {
				t.Fatal(err)
			}
			for range 3 {
				res, err := p.e.Verify(ctx, VerifyOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if res.Mismatched != 0 || res.Checked != volSize || res.Skipped != 0 {
					t.Fatalf("verify under writes: %+v", res)
				}
			}
			stop.Store(true)
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if err := p.e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, p.path, s.path)
			t.Logf("%d writes during 3 verifies", writes.Load())
		})
	}
}

// TestVerifyBusy: one verify at a time, none during a resync.
func TestVerifyBusy(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	s.e.Disconnect()
	rng := rand.New(rand.NewPCG(151, 152))
	for i := range 4 {
		if err := p.e.Write(ctx, uint64(i)*2*gran, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.e.SetResyncRate(1); err != nil {
		t.Fatal(err)
	}
	mustConnectNoWait(t, p, s)
	if _, err := p.e.Verify(ctx, VerifyOptions{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("verify during a resync: %v", err)
	}
	if err := p.e.SetResyncRate(0); err != nil {
		t.Fatal(err)
	}
	waitState(t, Connected, p, s)
	// A verify held by the rate limit, and a second one meanwhile.
	if err := p.e.SetResyncRate(1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := p.e.Verify(ctx, VerifyOptions{})
		done <- err
	}()
	waitFor(t, "verify running", func() bool { return p.e.Status().Verifying }, p, s)
	if _, err := p.e.Verify(ctx, VerifyOptions{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second verify: %v", err)
	}
	// Demoting the primary stops it.
	if err := p.e.Demote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.e.SetResyncRate(0); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("verify across a demotion: %v", err)
	}
}

func TestAddExtentBounded(t *testing.T) {
	var res VerifyResult
	v := &verifier{res: &res}
	for i := range uint64(MaxVerifyExtents + 10) {
		v.addExtent(span{i * 3 * minVerifyChunk, i*3*minVerifyChunk + minVerifyChunk})
	}
	if len(res.Mismatches) != MaxVerifyExtents || !res.Truncated {
		t.Fatalf("%d extents, truncated %v", len(res.Mismatches), res.Truncated)
	}
}

// TestStatusCounters: replicated bytes, the write latency hook, and
// rejected frames counted by reason over successive connections.
func TestStatusCounters(t *testing.T) {
	var observed atomic.Int64
	gens := meta.Generations{Current: 0xabc}
	p := newNodeCfg(t, Primary, 1, gens, func(c *Config) {
		c.ObserveWrite = func(d time.Duration) {
			if d > 0 {
				observed.Add(1)
			}
		}
	})
	s := newNode(t, Secondary, 2, gens)
	// Two connections that send garbage instead of a Hello.
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return
			}
			defer c.Close()
			_, _ = c.Write([]byte("this is not a mirror frame at all"))
			_, _ = c.Read(make([]byte, 1))
		}()
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.e.Connect(context.Background(), c, false); err == nil {
			t.Fatal("garbage accepted")
		}
	}
	if st := s.e.Status(); st.FramesRejected[wire.ReasonBadMagic] != 2 || st.State != StandAlone || st.LastError == "" {
		t.Fatalf("rejected frames: %+v", st)
	}
	mustConnect(t, p, s)
	ctx := context.Background()
	for i := range 10 {
		if err := p.e.Write(ctx, uint64(i)*4096, make([]byte, 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.e.Write(ctx, 0, make([]byte, 4096), false); !errors.Is(err, ErrNotPrimary) {
		t.Fatal(err)
	}
	st := p.e.Status()
	if st.ReplicatedBytes != 10*4096 || observed.Load() != 10 || st.Peer != 2 || st.PeerRole != Secondary {
		t.Fatalf("counters: %+v, observed %d", st, observed.Load())
	}
	if st := s.e.Status(); st.FramesRejected[wire.ReasonBadMagic] != 2 || st.PeerRole != Primary || !st.Consistent {
		t.Fatalf("secondary: %+v", st)
	}
}
