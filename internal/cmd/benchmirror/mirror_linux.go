package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/vigil-ha/vigil/internal/blockbench"
	"github.com/vigil-ha/vigil/replicator/engine"
	"github.com/vigil-ha/vigil/replicator/meta"
)

// bench owns everything one run creates: the work directory and its
// files, the namespaces, the engines. close releases them all.
type bench struct {
	o     options
	logf  func(format string, args ...any) // progress lines
	vlogf func(format string, args ...any) // details, with -v
	work  string
	topo  *topology

	// p and s are the primary's and the secondary's data partitions; r
	// is the raw baseline's, alike in size, fill and disk. Each is opened
	// as the engine opens its volume (engine.NewDataFile).
	p, s, r      engine.DataFile
	pMeta, sMeta *meta.Store
	prim         *engine.Engine
	sec          atomic.Pointer[engine.Engine] // replaced for each full sync
	mode         engine.Mode                   // the primary's
	ln           net.Listener                  // the secondary's, in namespace b
	secRes       chan error                    // the secondary's Connect results
	key          []byte
	hash, uuid   [16]byte
	gran         uint64
}

// path returns name's path inside the work directory.
func (b *bench) path(name string) string { return filepath.Join(b.work, name) }

// createPartitions makes the three data files and fills them, so that
// every block has a real extent before anything is measured.
func (b *bench) createPartitions(ctx context.Context) error {
	for _, p := range []struct {
		d    *engine.DataFile
		name string
	}{{&b.p, "primary.data"}, {&b.s, "secondary.data"}, {&b.r, "raw.data"}} {
		f, err := os.OpenFile(b.path(p.name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return fmt.Errorf("partition: %w", err)
		}
		if *p.d, err = engine.NewDataFile(f); err != nil {
			f.Close()
			return fmt.Errorf("partition: %w", err)
		}
		if err := blockbench.Fill(ctx, blockbench.FileTarget{File: f}, blockbench.FillOptions{
			Region: blockbench.Region{Size: b.o.size}, Seed: 1,
		}); err != nil {
			return fmt.Errorf("fill %s: %w", p.name, err)
		}
	}
	return nil
}

// coldCaches writes back and drops the partitions' cached pages.
func (b *bench) coldCaches() error {
	return errors.Join(dropCache(b.p.File), dropCache(b.s.File), dropCache(b.r.File))
}

// seqOptions is the sequential workload over the whole volume.
func (b *bench) seqOptions() blockbench.SeqOptions {
	return blockbench.SeqOptions{Region: blockbench.Region{Size: b.o.size}, BlockSize: 1 << 20, QueueDepth: b.o.seqQD}
}

// randOptions is one slice of the random sync workload over the whole
// volume; round picks its seed.
func (b *bench) randOptions(round int) blockbench.RandOptions {
	return blockbench.RandOptions{
		Region: blockbench.Region{Size: b.o.size}, BlockSize: 4096,
		Duration: b.o.randDur / time.Duration(b.o.rounds), Seed: b.o.seed + uint64(round),
	}
}

// measureRawBoth writes the raw and the secondary's partitions at once,
// sequentially, then with random sync writes, then with random sync
// writes in step (each block to both, as a mirror writes it): what one
// disk does when a mirror's two partitions share it. It runs once, before the mirror exists (the full sync overwrites
// the secondary's partition afterwards).
func (b *bench) measureRawBoth(ctx context.Context, res *results) error {
	b.logf("raw x2: sequential 1 MiB writes on two partitions at once ...")
	if err := b.coldCaches(); err != nil {
		return err
	}
	type out struct {
		r   blockbench.SeqResult
		err error
	}
	ch := make(chan out, 2)
	for _, f := range []engine.DataFile{b.r, b.s} {
		go func() {
			r, err := blockbench.Sequential(ctx, blockbench.FileTarget{File: f}, b.seqOptions())
			ch <- out{r, err}
		}()
	}
	var err error
	var slow blockbench.SeqResult
	for range 2 {
		o := <-ch
		err = errors.Join(err, o.err)
		if o.r.Elapsed > slow.Elapsed {
			slow = o.r // each partition's rate while both are written: the slower's
		}
	}
	if err != nil {
		return fmt.Errorf("raw sequential on two partitions: %w", err)
	}
	res.addSeq(varRawBoth, seqFigOf(slow))

	// The random sync workload on both at once: each sync write waits
	// for the other's cache flushes on the shared disk, as a sync
	// mirror's two sides do.
	b.logf("raw x2: random 4 KiB sync writes on two partitions at once ...")
	type rout struct {
		r   blockbench.RandResult
		err error
	}
	rch := make(chan rout, 2)
	for i, f := range []engine.DataFile{b.r, b.s} {
		go func() {
			o := b.randOptions(0)
			o.Seed += uint64(i) << 32
			r, err := blockbench.RandomSync(ctx, blockbench.FileTarget{File: f}, o)
			rch <- rout{r, err}
		}()
	}
	for range 2 {
		o := <-rch
		if o.err != nil {
			err = errors.Join(err, o.err)
			continue
		}
		res.addRand(varRawBoth, o.r, 0)
	}
	if err != nil {
		return fmt.Errorf("raw random on two partitions: %w", err)
	}

	// The floor under a sync mirror's write on this disk: each write to
	// both partitions at once, done when both hold it.
	b.logf("raw pair: random 4 KiB sync writes to both partitions in step ...")
	pair := blockbench.NewPair(blockbench.FileTarget{File: b.r}, blockbench.FileTarget{File: b.s})
	defer pair.Close()
	pr, err := blockbench.RandomSync(ctx, pair, b.randOptions(0))
	if err != nil {
		return fmt.Errorf("raw random on both partitions in step: %w", err)
	}
	res.addRand(varRawPair, pr, 0)
	return nil
}

// measureRaw runs one round of both workloads on the raw partition,
// written as the engine writes its backing file (engine.DataFile: aligned
// writes around the page cache, a sync write with RWF_DSYNC).
func (b *bench) measureRaw(ctx context.Context, res *results, round int) error {
	raw := blockbench.FileTarget{File: b.r}
	b.logf("round %d/%d, raw: sequential 1 MiB writes, then random 4 KiB sync writes ...", round+1, b.o.rounds)
	if err := b.coldCaches(); err != nil {
		return err
	}
	cm := startCPU()
	sr, err := blockbench.Sequential(ctx, raw, b.seqOptions())
	if err != nil {
		return fmt.Errorf("raw sequential: %w", err)
	}
	f := seqFigOf(sr)
	f.cpu = cm.busy()
	res.addSeq(varRaw, f)
	b.vlogf("  raw sequential: %.0f MB/s", sr.MBps())
	if err := b.coldCaches(); err != nil {
		return err
	}
	rr, err := blockbench.RandomSync(ctx, raw, b.randOptions(round))
	if err != nil {
		return fmt.Errorf("raw random: %w", err)
	}
	res.addRand(varRaw, rr, 0)
	b.vlogf("  raw random: %.0f IOPS, p99 %s µs", rr.IOPS(), us(rr.Latency.Percentile(99)))
	return nil
}

// engineTarget writes through the primary engine.
type engineTarget struct {
	ctx context.Context
	e   *engine.Engine
}

func (t engineTarget) WriteAt(p []byte, off int64, sync bool) error {
	return t.e.Write(t.ctx, uint64(off), p, sync)
}

func (t engineTarget) Flush() error { return t.e.Flush(t.ctx) }

// setupMirror creates the primary's metadata (its data is the current
// generation), its engine, and the secondary's listener in namespace b;
// freshSecondary makes the secondary.
func (b *bench) setupMirror(ctx context.Context) error {
	b.key = make([]byte, 32)
	rand.Read(b.key)
	rand.Read(b.hash[:])
	rand.Read(b.uuid[:])
	var err error
	b.pMeta, err = meta.Create(b.path("primary.meta"), meta.Superblock{
		VolumeUUID: b.uuid, Size: uint64(b.o.size), BlockSize: 4096,
		Role: uint8(engine.Primary), Flags: meta.FlagConsistent | meta.FlagPrimary,
		Gens: meta.Generations{Current: mrand.Uint64() | 1},
	})
	if err != nil {
		return err
	}
	b.gran = uint64(b.pMeta.Superblock().Granularity)
	if err := b.newPrimary(engine.SyncMode); err != nil {
		return err
	}
	if b.ln, err = b.topo.b.listen(addrB); err != nil {
		return err
	}
	b.secRes = make(chan error, 4)
	go func() {
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			sec := b.sec.Load()
			if sec == nil {
				c.Close()
				b.secRes <- errors.New("no secondary engine")
				continue
			}
			b.secRes <- sec.Connect(ctx, c, false)
		}
	}()
	return nil
}

// freshSecondary replaces the secondary by one whose partition has never
// held data (new metadata; the data file keeps its bytes, which a full
// sync overwrites): the next connect is a full sync.
func (b *bench) freshSecondary() error {
	if old := b.sec.Swap(nil); old != nil {
		if err := old.Close(); err != nil {
			return fmt.Errorf("close secondary: %w", err)
		}
	}
	if b.sMeta != nil {
		if err := b.sMeta.Close(); err != nil {
			return fmt.Errorf("close secondary metadata: %w", err)
		}
		b.sMeta = nil
	}
	ms, err := meta.Create(b.path("secondary.meta"), meta.Superblock{
		VolumeUUID: b.uuid, Size: uint64(b.o.size), BlockSize: 4096,
	})
	if err != nil {
		return err
	}
	b.sMeta = ms
	e, err := engine.New(engine.Config{
		Role: engine.Secondary, Node: 1, ClusterKey: b.key, ConfigHash: b.hash,
		Data: b.s, Meta: ms, Timeout: b.o.engineTimeout,
	})
	if err != nil {
		return fmt.Errorf("secondary engine: %w", err)
	}
	b.sec.Store(e)
	return nil
}

// newPrimary (re)creates the primary's engine in mode, closing the one
// before; the new one stands alone.
func (b *bench) newPrimary(mode engine.Mode) error {
	if b.prim != nil {
		if err := b.prim.Close(); err != nil {
			return fmt.Errorf("close primary: %w", err)
		}
		b.prim = nil
	}
	e, err := engine.New(engine.Config{
		Role: engine.Primary, Node: 0, ClusterKey: b.key, ConfigHash: b.hash,
		Data: b.p, Meta: b.pMeta, Timeout: b.o.engineTimeout, Mode: mode,
	})
	if err != nil {
		return fmt.Errorf("primary engine: %w", err)
	}
	b.prim, b.mode = e, mode
	return nil
}

// useMode makes the primary a connected engine in mode: a clean one is
// closed and a new one connects (a differential resync of nothing, whose
// time res keeps as the reconnect's fixed cost).
func (b *bench) useMode(ctx context.Context, res *results, mode engine.Mode) error {
	if b.mode == mode && b.prim.Status().State == engine.Connected {
		return nil
	}
	if b.prim.Status().State == engine.Connected {
		if err := b.clean(ctx); err != nil {
			return err
		}
	}
	if err := b.newPrimary(mode); err != nil {
		return err
	}
	ct, err := b.connect(ctx)
	if err != nil {
		return fmt.Errorf("%s connect: %w", mode, err)
	}
	if ct.sent == 0 {
		res.reconnects = append(res.reconnects, ct.inSync)
	}
	return nil
}

// connectTimes are the phases of one connect, each from the dial.
type connectTimes struct {
	// connected: both Connects returned (handshake, bitmap exchange).
	connected time.Duration
	// copied: every resync byte sent (the in-sync time when the polls
	// never saw the resync between its last byte and its end).
	copied time.Duration
	// inSync: the target acked the resync's end and the source cleared
	// its bitmap.
	inSync time.Duration
	// sent is the resync bytes the primary sent.
	sent uint64
}

// connect dials the secondary from namespace a, runs both Connects and
// waits until the mirror is in sync: Connect returns once the bitmaps are
// exchanged, and a resync then streams in the session.
func (b *bench) connect(ctx context.Context) (connectTimes, error) {
	var ct connectTimes
	before := b.prim.Status().ResyncSent
	t0 := time.Now()
	nc, err := b.topo.a.dial(b.ln.Addr().String())
	if err != nil {
		return ct, err
	}
	perr := b.prim.Connect(ctx, nc, true)
	var serr error
	select {
	case serr = <-b.secRes:
	case <-time.After(b.o.engineTimeout + ioSlack):
		serr = fmt.Errorf("no Connect result: %w", errTimeout)
	case <-ctx.Done():
		serr = ctx.Err()
	}
	if perr != nil || serr != nil {
		return ct, fmt.Errorf("mirror connect: primary: %v; secondary: %v", perr, serr)
	}
	ct.connected = time.Since(t0)
	if err := b.waitInSync(ctx, t0, &ct); err != nil {
		return ct, err
	}
	ct.sent = b.prim.Status().ResyncSent - before
	return ct, nil
}

// waitInSync polls the primary until no resync runs and no region is
// dirty: every 0.2 ms for the first 100 ms, then every millisecond, so
// the times it notes are late by at most 1 % (or 0.2 ms).
func (b *bench) waitInSync(ctx context.Context, t0 time.Time, ct *connectTimes) error {
	for {
		st := b.prim.Status()
		now := time.Since(t0)
		switch st.State {
		case engine.Connected:
			if st.DirtyBytes == 0 {
				ct.inSync = now
				if ct.copied == 0 {
					ct.copied = now
				}
				return nil
			}
		case engine.Resyncing:
			if ct.copied == 0 && st.ResyncTotal > 0 && st.ResyncDone >= st.ResyncTotal {
				ct.copied = now
			}
		default:
			return fmt.Errorf("mirror resync: state %s: %s", st.State, st.LastError)
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("mirror resync: %w (%s of %s copied)", err, mib(st.ResyncDone), mib(st.ResyncTotal))
		}
		if now < 100*time.Millisecond {
			time.Sleep(200 * time.Microsecond)
		} else {
			time.Sleep(time.Millisecond)
		}
	}
}

// disconnect breaks the connection from the primary's side and waits for
// the secondary to notice.
func (b *bench) disconnect(ctx context.Context) error {
	b.prim.Disconnect()
	deadline := time.Now().Add(b.o.engineTimeout + ioSlack)
	for b.sec.Load().Status().State == engine.Connected {
		if time.Now().After(deadline) {
			return fmt.Errorf("secondary still connected after the primary disconnected: %w", errTimeout)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// connected fails if the mirror connection broke during phase: its
// figures would not be a mirror's.
func (b *bench) connected(phase string) error {
	st := b.prim.Status()
	if st.State != engine.Connected {
		return fmt.Errorf("%s: the mirror connection broke (state %s): %s", phase, st.State, st.LastError)
	}
	return nil
}

// settle makes the starting state of a measurement the same for every
// variant and round: everything written so far flushed end to end, the
// dirty bitmap clean in memory and on the cluster partition but for the
// activity extents, every one of them hot, as after earlier writes to it
// in steady use (so no write waits for a bitmap sync; DRBD's activity log
// extents stay hot alike), the partitions' pages dropped from the cache.
// With cold, every extent is cooled instead, as after a clean start: the
// first write to each extent then waits for a bitmap sync (a
// diagnostic).
func (b *bench) settle(ctx context.Context, cold bool) error {
	if err := b.clean(ctx); err != nil {
		return err
	}
	bm := b.pMeta.Bitmap()
	if cold {
		if err := bm.WriteBack(); err != nil {
			return fmt.Errorf("bitmap write back: %w", err)
		}
	} else {
		// Mark every region, then clear them: the extents stay hot.
		bm.MarkDirty(0, uint64(b.o.size))
		if err := bm.Sync(); err != nil {
			return fmt.Errorf("bitmap: %w", err)
		}
		bm.Clear(0, uint64(b.o.size))
		if err := bm.Sync(); err != nil {
			return fmt.Errorf("bitmap: %w", err)
		}
		if n, want := bm.HotCount(), min(b.extents(), meta.HotExtents); n != want {
			return fmt.Errorf("bitmap: %d activity extents hot, want %d", n, want)
		}
	}
	return b.coldCaches()
}

// extents returns the number of activity extents of the volume.
func (b *bench) extents() int {
	return int((uint64(b.o.size) + meta.ExtentSize - 1) / meta.ExtentSize)
}

// clean flushes end to end and checks that no region is left dirty; a
// region the flush could not clear (the engine tracks a bounded number of
// them) is resynced by a reconnect.
func (b *bench) clean(ctx context.Context) error {
	if err := b.prim.Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	if b.prim.Status().DirtyBytes == 0 {
		return nil
	}
	b.vlogf("  %s dirty after a flush: reconnecting to resync them", mib(b.prim.Status().DirtyBytes))
	if err := b.disconnect(ctx); err != nil {
		return err
	}
	if _, err := b.connect(ctx); err != nil {
		return err
	}
	if d := b.prim.Status().DirtyBytes; d != 0 {
		return fmt.Errorf("%d bytes still dirty after a flush and a resync", d)
	}
	return nil
}

// measureFullSync times a full sync of the primary's partition to a
// fresh secondary. The first one creates the mirror; later ones first
// disconnect and replace the secondary.
func (b *bench) measureFullSync(ctx context.Context, res *results, round int) error {
	b.logf("round %d/%d, vigil: full sync of %s to a fresh secondary ...", round+1, b.o.rounds, mib(b.o.size))
	if b.prim == nil {
		if err := b.setupMirror(ctx); err != nil {
			return err
		}
		res.gran = b.gran
	} else {
		if err := b.useMode(ctx, res, engine.SyncMode); err != nil {
			return err
		}
		if err := b.clean(ctx); err != nil {
			return err
		}
		if err := b.disconnect(ctx); err != nil {
			return err
		}
	}
	if err := b.freshSecondary(); err != nil {
		return err
	}
	if err := b.coldCaches(); err != nil {
		return err
	}
	ct, err := b.connect(ctx)
	if err != nil {
		return fmt.Errorf("full sync: %w", err)
	}
	if ct.sent != uint64(b.o.size) {
		return fmt.Errorf("full sync sent %d bytes, want the volume's %d", ct.sent, b.o.size)
	}
	res.full = append(res.full, resyncFig{connectTimes: ct, regions: int(uint64(b.o.size) / b.gran), dirty: uint64(b.o.size)})
	b.vlogf("  full sync: %s", secs(ct.inSync))
	return nil
}

// measureEngine runs one round of both workloads through the primary
// engine in mode v (and, in sync mode, the sequential one again with cold
// activity extents).
func (b *bench) measureEngine(ctx context.Context, res *results, v string, round int) error {
	mode := engine.SyncMode
	if v == varAsync {
		mode = engine.AsyncMode
	}
	if err := b.useMode(ctx, res, mode); err != nil {
		return err
	}
	t := engineTarget{ctx: ctx, e: b.prim}
	b.logf("round %d/%d, vigil %s: sequential 1 MiB writes, then random 4 KiB sync writes ...", round+1, b.o.rounds, v)
	if err := b.settle(ctx, false); err != nil {
		return err
	}
	if err := b.seqRun(ctx, res, t, v); err != nil {
		return err
	}

	if err := b.settle(ctx, false); err != nil {
		return err
	}
	// The first write to each region after settle sets its bit; later
	// ones find it set. Their latencies are kept apart too.
	seen := map[uint64]bool{}
	var first, later blockbench.Histogram
	ro := b.randOptions(round)
	ro.Observe = func(off int64, d time.Duration) {
		if r := uint64(off) / b.gran; !seen[r] {
			seen[r] = true
			first.Record(d)
		} else {
			later.Record(d)
		}
	}
	before := b.prim.Status()
	rr, err := blockbench.RandomSync(ctx, t, ro)
	if err != nil {
		return fmt.Errorf("vigil %s random: %w", v, err)
	}
	after := b.prim.Status()
	if err := b.connected("vigil " + v + " random"); err != nil {
		return err
	}
	// Without a catch-up resync (which clears bits), every region written
	// is dirty now.
	if dirtied := (after.DirtyBytes - before.DirtyBytes) / b.gran; after.Fallbacks == before.Fallbacks && dirtied != uint64(len(seen)) {
		return fmt.Errorf("vigil %s random: %d regions written, %d dirtied in the bitmap", v, len(seen), dirtied)
	}
	res.addRand(v, rr, after.Fallbacks-before.Fallbacks)
	a := res.rand[v]
	a.first.Merge(&first)
	a.later.Merge(&later)
	b.vlogf("  vigil %s random: %.0f IOPS, p99 %s µs", v, rr.IOPS(), us(rr.Latency.Percentile(99)))

	if v == varSync {
		b.logf("round %d/%d, vigil sync: sequential 1 MiB writes with cold activity extents ...", round+1, b.o.rounds)
		if err := b.settle(ctx, true); err != nil {
			return err
		}
		if err := b.seqRun(ctx, res, t, varSyncCold); err != nil {
			return err
		}
	}
	return nil
}

// seqRun runs the sequential workload through the engine and records it
// as variant v.
func (b *bench) seqRun(ctx context.Context, res *results, t engineTarget, v string) error {
	fb := b.prim.Status().Fallbacks
	cm := startCPU()
	sr, err := blockbench.Sequential(ctx, t, b.seqOptions())
	if err != nil {
		return fmt.Errorf("vigil %s sequential: %w", v, err)
	}
	cpu := cm.busy()
	if err := b.connected("vigil " + v + " sequential"); err != nil {
		return err
	}
	f := seqFigOf(sr)
	f.cpu = cpu
	f.fallbacks = b.prim.Status().Fallbacks - fb
	res.addSeq(v, f)
	b.vlogf("  vigil %s sequential: %.0f MB/s", v, sr.MBps())
	return nil
}

// measureDiffResync dirties 1 % of the bitmap's regions, spread at
// random, while the secondary is disconnected, and times the reconnect's
// differential resync.
func (b *bench) measureDiffResync(ctx context.Context, res *results, round int) error {
	b.logf("round %d/%d, vigil: 1 %% of the regions dirtied while disconnected, then reconnect ...", round+1, b.o.rounds)
	if err := b.useMode(ctx, res, engine.SyncMode); err != nil {
		return err
	}
	if err := b.settle(ctx, false); err != nil {
		return err
	}
	if err := b.disconnect(ctx); err != nil {
		return err
	}
	bits := uint64(b.o.size) / b.gran
	k := (bits + 99) / 100
	rng := mrand.New(mrand.NewPCG(b.o.seed, uint64(round)+1))
	picked := make(map[uint64]bool, k)
	buf := blockbench.AlignedBuffer(4096)
	blockbench.FillBlock(b.o.seed, 0, buf)
	for uint64(len(picked)) < k {
		r := rng.Uint64N(bits)
		if picked[r] {
			continue
		}
		picked[r] = true
		off := r*b.gran + rng.Uint64N(b.gran/4096)*4096
		if err := b.prim.Write(ctx, off, buf, false); err != nil {
			return fmt.Errorf("dirty region %d: %w", r, err)
		}
	}
	if err := b.prim.Flush(ctx); err != nil {
		return fmt.Errorf("flush while disconnected: %w", err)
	}
	st := b.prim.Status()
	if want := k * b.gran; st.DirtyBytes != want {
		return fmt.Errorf("%d regions written while disconnected left %d dirty bytes, want %d", k, st.DirtyBytes, want)
	}
	if err := b.coldCaches(); err != nil {
		return err
	}
	ct, err := b.connect(ctx)
	if err != nil {
		return fmt.Errorf("differential resync: %w", err)
	}
	if v := b.prim.Status().Verdict; v != meta.LocalNewer.String() {
		return fmt.Errorf("differential resync: verdict %q, want %q", v, meta.LocalNewer)
	}
	if d := b.prim.Status().DirtyBytes; d != 0 {
		return fmt.Errorf("differential resync left %d bytes dirty", d)
	}
	res.diff = append(res.diff, resyncFig{connectTimes: ct, regions: int(k), dirty: st.DirtyBytes})
	b.vlogf("  differential resync: %s", secs(ct.inSync))
	return nil
}

// compareData reads both partitions and fails at the first difference:
// after the last flush the secondary must hold exactly the primary's data.
func (b *bench) compareData(ctx context.Context) error {
	pb, sb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < b.o.size; off += int64(len(pb)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		if _, err := b.p.ReadAt(pb, off); err != nil {
			return fmt.Errorf("data check: read primary at %d: %w", off, err)
		}
		if _, err := b.s.ReadAt(sb, off); err != nil {
			return fmt.Errorf("data check: read secondary at %d: %w", off, err)
		}
		if bytes.Equal(pb, sb) {
			continue
		}
		for i := range pb {
			if pb[i] != sb[i] {
				return fmt.Errorf("data check: the partitions differ at byte %d", off+int64(i))
			}
		}
	}
	return nil
}

// closeEngines closes both engines (the primary first).
func (b *bench) closeEngines() error {
	var errs []error
	if b.prim != nil {
		errs = append(errs, b.prim.Close())
		b.prim = nil
	}
	if e := b.sec.Swap(nil); e != nil {
		errs = append(errs, e.Close())
	}
	return errors.Join(errs...)
}

// close stops the engines and releases everything; unless keep, the work
// directory goes too.
func (b *bench) close(keep bool) error {
	errs := []error{b.closeEngines()}
	if b.ln != nil {
		b.ln.Close()
	}
	for _, m := range []*meta.Store{b.pMeta, b.sMeta} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	for _, f := range []engine.DataFile{b.p, b.s, b.r} {
		if f.File != nil {
			errs = append(errs, f.Close())
		}
	}
	b.topo.close()
	if b.work != "" && !keep {
		errs = append(errs, os.RemoveAll(b.work))
	}
	return errors.Join(errs...)
}
