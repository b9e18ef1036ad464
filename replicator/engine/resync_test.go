package engine

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/replicator/meta"
)

// proxy forwards one TCP connection between a dialling and an accepting
// engine, over loopback, and can black-hole it: a partition where nothing
// arrives and nothing is closed.
type proxy struct {
	hole  atomic.Bool
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// close cuts the proxied connection and waits for the forwarding.
func (px *proxy) close() {
	px.mu.Lock()
	for _, c := range px.conns {
		c.Close()
	}
	px.mu.Unlock()
	px.wg.Wait()
}

// connectProxied connects p (dialling) to s through a new proxy.
func connectProxied(t testing.TB, p, s *node) (*proxy, error, error) {
	t.Helper()
	lnS, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnS.Close()
	lnP, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lnP.Close()
	px := &proxy{}
	t.Cleanup(px.close)
	ctx := context.Background()
	serr := make(chan error, 1)
	go func() {
		c, err := lnS.Accept()
		if err != nil {
			serr <- err
			return
		}
		serr <- s.e.Connect(ctx, c, false)
	}()
	px.wg.Go(func() {
		a, err := lnP.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", lnS.Addr().String())
		if err != nil {
			a.Close()
			return
		}
		px.mu.Lock()
		px.conns = append(px.conns, a, b)
		px.mu.Unlock()
		var once sync.Once
		closeBoth := func() { once.Do(func() { a.Close(); b.Close() }) }
		px.wg.Go(func() { px.copy(b, a); closeBoth() })
		px.wg.Go(func() { px.copy(a, b); closeBoth() })
	})
	c, err := net.Dial("tcp", lnP.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	perr := p.e.Connect(ctx, c, true)
	return px, perr, <-serr
}

// copy forwards src to dst, dropping everything while the hole is set.
func (px *proxy) copy(dst io.Writer, src io.Reader) {
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !px.hole.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// TestPartitionLongerThanTimeout: the mirror connect goes silent (no
// close, no reset) for longer than Timeout in sync mode: the primary's
// writes keep completing, alone; the reconnect resyncs; both sides are
// identical and verify finds nothing.
func TestPartitionLongerThanTimeout(t *testing.T) {
	gens := meta.Generations{Current: 0xabc}
	tweak := func(c *Config) { c.Timeout = 300 * time.Millisecond; c.PingInterval = 50 * time.Millisecond }
	p := newNodeCfg(t, Primary, 1, gens, tweak)
	s := newNodeCfg(t, Secondary, 2, gens, tweak)
	px, perr, serr := connectProxied(t, p, s)
	if perr != nil || serr != nil {
		t.Fatal(perr, serr)
	}
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(81, 82))
	for i := range 20 {
		if err := p.e.Write(ctx, uint64(rng.IntN(volSize/4096))*4096, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	px.hole.Store(true)
	const regions = 10
	for i := range regions {
		if err := p.e.Write(ctx, uint64(i)*3*gran+4096, block(rng, uint64(100+i), 8192), i%2 == 0); err != nil {
			t.Fatalf("write during the partition: %v", err)
		}
	}
	waitState(t, StandAlone, p, s)
	for i := range regions { // and more, alone
		if err := p.e.Write(ctx, uint64(i)*3*gran+gran, block(rng, uint64(200+i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.e.Status(); st.LastError == "" || st.DirtyBytes != 2*regions*gran || st.Role != Primary {
		t.Fatalf("primary alone: %+v", st)
	}
	px.hole.Store(false)
	if _, perr, serr := connectProxied(t, p, s); perr != nil || serr != nil {
		t.Fatal(perr, serr)
	}
	waitState(t, Connected, p, s)
	sameFiles(t, p.path, s.path)
	if st := p.e.Status(); st.ResyncSent != 2*regions*gran || st.DirtyBytes != 0 {
		t.Fatalf("after the resync: %+v", st)
	}
	res, err := p.e.Verify(ctx, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Checked != volSize || res.Mismatched != 0 {
		t.Fatalf("verify: %+v", res)
	}
}

// TestSecondaryRestartDifferential: the secondary is killed (its engine
// closed without a flush) and restarted from its files; the resync copies
// only the regions written meanwhile.
func TestSecondaryRestartDifferential(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(91, 92))
	for i := range 200 {
		if err := p.e.Write(ctx, uint64(rng.IntN(volSize/4096))*4096, block(rng, uint64(i), 4096), i%10 == 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.e.Status(); st.DirtyBytes != 0 {
		t.Fatalf("after flush: %+v", st)
	}
	s.restart(t, Secondary)
	waitState(t, StandAlone, p)
	// Distinct regions, written partly, some twice.
	const regions = 7
	dirty := map[uint64]bool{}
	for i := range 2 * regions {
		r := uint64(5 + 11*(i%regions))
		dirty[r] = true
		if err := p.e.Write(ctx, r*gran+uint64(rng.IntN(8))*4096, block(rng, uint64(500+i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	mustConnect(t, p, s)
	st := p.e.Status()
	if st.ResyncSent != uint64(len(dirty))*gran {
		t.Fatalf("resync sent %d bytes, want %d dirty regions x %d", st.ResyncSent, len(dirty), gran)
	}
	sameFiles(t, p.path, s.path)
	if res, err := p.e.Verify(ctx, VerifyOptions{}); err != nil || res.Mismatched != 0 {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

// TestResyncChunksOverlap: a resync source reads resyncWorkers chunks at
// once (one chunk's read and seal overlap another's send), and the target
// ends identical.
func TestResyncChunksOverlap(t *testing.T) {
	gens := meta.Generations{Current: 0xabc}
	hv := &heldVolume{meet: resyncWorkers, met: make(chan struct{})}
	p := newNodeCfg(t, Primary, 1, gens, func(c *Config) { c.Data = hv })
	s := newNode(t, Secondary, 2, gens)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(111, 112))
	for r := range volSize / gran { // every region dirty: 8 chunks of 1 MiB
		if err := p.e.Write(ctx, uint64(r)*gran, block(rng, uint64(r), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	mustConnect(t, p, s)
	if got := hv.most.Load(); got != resyncWorkers {
		t.Errorf("%d resync reads at once at most, want %d", got, resyncWorkers)
	}
	if st := p.e.Status(); st.ResyncSent != volSize {
		t.Errorf("resync sent %d bytes, want %d", st.ResyncSent, volSize)
	}
	sameFiles(t, p.path, s.path)
}

// TestWritesDuringResync: application writes replicate while a long,
// rate-limited resync streams (they are not held for its length), a
// resync chunk and an overlapping write are ordered like two writes, and
// the target ends identical.
func TestWritesDuringResync(t *testing.T) {
	for _, mode := range []Mode{SyncMode, AsyncMode} {
		t.Run(mode.String(), func(t *testing.T) {
			gens := meta.Generations{Current: 0xabc}
			p := newNodeCfg(t, Primary, 1, gens, func(c *Config) { c.Mode = mode })
			s := newNode(t, Secondary, 2, gens)
			mustConnect(t, p, s)
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(101, 102))
			s.e.Disconnect()
			for r := range volSize / gran { // every region dirty, one chunk per other region
				if err := p.e.Write(ctx, uint64(r)*gran+uint64(rng.IntN(16))*4096, block(rng, uint64(r), 4096), false); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.e.SetResyncRate(1); err != nil { // the first chunk, then held
				t.Fatal(err)
			}
			mustConnectNoWait(t, p, s)
			waitFor(t, "resync started", func() bool { return s.e.Status().ResyncDone > 0 }, p, s)

			var during atomic.Int64
			write := func(g, i int, rng *rand.Rand) error {
				n := 512 * (1 + rng.IntN(64))
				off := uint64(rng.IntN(volSize/512-n/512)) * 512
				err := p.e.Write(ctx, off, block(rng, uint64(g<<20|i), n), i%11 == 0)
				if err == nil && p.e.Status().State == Resyncing {
					during.Add(1)
				}
				return err
			}
			// Phase 1: the resync is held; writes complete.
			var wg sync.WaitGroup
			errs := make(chan error, 8)
			for g := range 4 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 103))
					for i := range 25 {
						if err := write(g, i, rng); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			if during.Load() != 100 {
				t.Fatalf("%d of 100 writes completed during the held resync", during.Load())
			}
			// Phase 2: the resync streams at a limited rate while the
			// writers go on until it ends.
			if err := p.e.SetResyncRate(32 << 20); err != nil {
				t.Fatal(err)
			}
			for g := range 4 {
				wg.Go(func() {
					rng := rand.New(rand.NewPCG(uint64(g), 104))
					for i := 25; p.e.Status().State == Resyncing; i++ {
						if err := write(g, i, rng); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			waitState(t, Connected, p, s)
			if err := p.e.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			sameFiles(t, p.path, s.path)
			ps, ss := p.e.Status(), s.e.Status()
			// Every region went once; async writers that outran the
			// secondary by a whole queue (a loaded machine) fell back,
			// and the catch-up resync sent their regions again.
			sentOK := ps.ResyncSent == volSize || (ps.Fallbacks > 0 && ps.ResyncSent > volSize)
			if ps.DirtyBytes != 0 || !ss.Consistent || ps.Gens.Current != ss.Gens.Current || !sentOK {
				t.Fatalf("after: primary %+v, secondary %+v", ps, ss)
			}
			res, err := p.e.Verify(ctx, VerifyOptions{})
			if err != nil || res.Mismatched != 0 || res.Checked != volSize {
				t.Fatalf("verify: %+v %v", res, err)
			}
			t.Logf("%d writes completed during the resync", during.Load())
		})
	}
}

// TestResyncRateLimit: the limit paces the resync (a lower bound on its
// length, which load can only lengthen), Status shows the measured rate
// and an ETA, and SetResyncRate refuses a negative rate.
func TestResyncRateLimit(t *testing.T) {
	const rate = 8 << 20
	gens := meta.Generations{Current: 0xabc}
	p := newNodeCfg(t, Primary, 1, gens, func(c *Config) { c.ResyncRate = rate })
	s := newNode(t, Secondary, 2, gens)
	mustConnect(t, p, s)
	ctx := context.Background()
	s.e.Disconnect()
	rng := rand.New(rand.NewPCG(111, 112))
	const dirty = 4 << 20 // four 1 MiB chunks
	for off := uint64(0); off < dirty; off += gran {
		if err := p.e.Write(ctx, off, block(rng, off, 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	mustConnectNoWait(t, p, s)
	var sawRate, sawETA bool
	for {
		st := p.e.Status()
		if st.State != Resyncing {
			break
		}
		sawRate = sawRate || st.ResyncRate > 0
		sawETA = sawETA || st.ResyncETA > 0
		if st.ResyncRateLimit != rate {
			t.Fatalf("limit %d", st.ResyncRateLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
	elapsed := time.Since(start)
	waitState(t, Connected, p, s)
	// The first chunk goes at once, each other one after 1 MiB / rate.
	if min := time.Duration(float64(dirty-wireMaxData) / rate * float64(time.Second)); elapsed < min {
		t.Fatalf("resync of %d bytes at %d bytes/s took %v, less than %v", dirty, rate, elapsed, min)
	}
	if !sawRate || !sawETA {
		t.Fatalf("status never showed a rate (%v) or an ETA (%v)", sawRate, sawETA)
	}
	if st := p.e.Status(); st.ResyncRate != 0 || st.ResyncETA != 0 {
		t.Fatalf("rate after the resync: %+v", st)
	}
	sameFiles(t, p.path, s.path)
	if err := p.e.SetResyncRate(-1); err == nil {
		t.Fatal("negative rate accepted")
	}
	if _, err := New(Config{Data: p.data, Meta: p.st, ResyncRate: -5}); err == nil {
		t.Fatal("negative rate accepted by New")
	}
}

// TestLimiter checks the pacing arithmetic and the wake-up on a rate
// change, without sleeping on the happy path.
func TestLimiter(t *testing.T) {
	l := newLimiter(0)
	done := make(chan struct{})
	for range 100 {
		if !l.wait(context.Background(), done, 1<<20) {
			t.Fatal("unlimited wait refused")
		}
	}
	l.set(1) // 1 byte/s: the first reservation goes, the second would wait for days
	if !l.wait(context.Background(), done, 1<<20) {
		t.Fatal("first reservation refused")
	}
	res := make(chan bool)
	go func() { res <- l.wait(context.Background(), done, 1<<20) }()
	l.set(0) // wakes the sleeper
	if !<-res {
		t.Fatal("sleeper not released by the rate change")
	}
	l.set(1)
	l.wait(context.Background(), done, 1)
	go func() { res <- l.wait(context.Background(), done, 1<<20) }()
	close(done)
	if <-res {
		t.Fatal("sleeper not stopped by done")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if l.wait(ctx, make(chan struct{}), 1<<20) {
		t.Fatal("cancelled wait went")
	}
	var m rateMeter
	now := time.Now()
	m.reset(now, 0)
	for i := 1; i <= 8; i++ {
		m.add(now.Add(time.Duration(i)*sampleEvery), uint64(i)<<20)
	}
	if r := m.rate(now.Add(8*sampleEvery), 8<<20); r < 3.9*(1<<20) || r > 4.1*(1<<20) {
		t.Fatalf("rate %v, want 4 MiB/s", r)
	}
	if r := m.rate(now.Add(time.Hour), 9<<20); r != 0 {
		t.Fatalf("stale rate %v", r)
	}
}

// TestAsyncCatchUpInconsistent: an async secondary whose primary fell
// behind is marked inconsistent from the catch-up's start until its end,
// so it is not promoted without force meanwhile.
func TestAsyncCatchUpInconsistent(t *testing.T) {
	p, s, hv := asyncPair(t, func(c *Config) { c.MaxQueueWrites = 4; c.Timeout = 10 * time.Second })
	ctx := context.Background()
	if err := p.e.SetResyncRate(1); err != nil { // the catch-up's first chunk, then held
		t.Fatal(err)
	}
	release := hv.block()
	defer release()
	rng := rand.New(rand.NewPCG(121, 122))
	for i := range 30 {
		if err := p.e.Write(ctx, uint64(i)*2*gran, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.e.Status(); st.Fallbacks != 1 {
		t.Fatalf("no fallback: %+v", st)
	}
	if st := s.e.Status(); !st.Consistent {
		t.Fatalf("secondary inconsistent before the catch-up reached it: %+v", st)
	}
	release()
	waitFor(t, "catch-up reaches the secondary", func() bool { st := s.e.Status(); return !st.Consistent && st.ResyncDone > 0 }, p, s)
	if st := s.e.Status(); st.State != Resyncing {
		t.Fatalf("secondary during the catch-up: %+v", st)
	}
	if st := p.e.Status(); st.State != Resyncing || st.Behind {
		t.Fatalf("primary during the catch-up: %+v", st)
	}
	if err := s.e.Promote(false); !errors.Is(err, ErrPeerPrimary) {
		t.Fatalf("promote while connected to the primary: %v", err)
	}
	s.e.Disconnect() // the primary dies
	if err := s.e.Promote(false); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("promote a secondary lagging behind the bitmap: %v", err)
	}
	if err := p.e.SetResyncRate(0); err != nil {
		t.Fatal(err)
	}
	mustConnect(t, p, s)
	if st := s.e.Status(); !st.Consistent {
		t.Fatalf("after the resync: %+v", st)
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
}

const wireMaxData = 1 << 20

// TestResyncRange: an operator's resync of a range copies it whatever the
// bitmap says, repairing a change made behind the engine's back.
func TestResyncRange(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	if _, err := s.data.WriteAt([]byte("behind the engine's back"), 3<<20+100); err != nil {
		t.Fatal(err)
	}
	if err := s.e.ResyncRange(ctx, 0, 0); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("resync from the secondary: %v", err)
	}
	if err := p.e.ResyncRange(ctx, volSize, 1); !errors.Is(err, ErrRange) {
		t.Fatalf("resync past the end: %v", err)
	}
	if err := p.e.ResyncRange(ctx, 3<<20, 2*gran); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	if st := p.e.Status(); st.ResyncSent != 2*gran || st.DirtyBytes != 0 || st.State != Connected {
		t.Fatalf("after: %+v", st)
	}
	if err := p.e.ResyncRange(ctx, 0, 0); err != nil {
		t.Fatal(err)
	}
	if st := p.e.Status(); st.ResyncSent != 2*gran+volSize {
		t.Fatalf("after the full resync: %+v", st)
	}
	p.e.Disconnect()
	if err := p.e.ResyncRange(ctx, 0, 0); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("resync standing alone: %v", err)
	}
}

// hintLog records Prefetch hints.
type hintLog struct{ hints []span }

func (h *hintLog) Prefetch(off, n int64) {
	h.hints = append(h.hints, span{uint64(off), uint64(off + n)})
}

// TestReadAhead: the hints cover the runs in order, in pieces of at most
// 1 MiB, and stay within the window beyond what was read.
func TestReadAhead(t *testing.T) {
	runs := []span{{0, 64 << 10}, {1 << 20, 1<<20 + 64<<10}, {32 << 20, 56 << 20}}
	var h hintLog
	ra := readAhead{p: &h, runs: runs}
	var read, total uint64
	for _, r := range runs {
		total += r.end - r.off
	}
	for read < total {
		n := min(uint64(1<<20), total-read)
		ra.consume(n)
		read += n
		var hinted uint64
		for _, s := range h.hints {
			hinted += s.end - s.off
		}
		if hinted > read+readAheadWindow+1<<20 {
			t.Fatalf("after %d bytes read, %d hinted: beyond the window", read, hinted)
		}
		if hinted < min(total, read+readAheadWindow) {
			t.Fatalf("after %d bytes read, only %d hinted", read, hinted)
		}
	}
	// The hints, joined, are exactly the runs.
	var joined []span
	for _, s := range h.hints {
		if s.end-s.off > 1<<20 {
			t.Fatalf("hint %v larger than 1 MiB", s)
		}
		if k := len(joined); k > 0 && joined[k-1].end == s.off {
			joined[k-1].end = s.end
			continue
		}
		joined = append(joined, s)
	}
	if !slices.Equal(joined, runs) {
		t.Fatalf("hints %v; want the runs %v", joined, runs)
	}
}
