package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/replicator/meta"
	"github.com/vigil-ha/vigil/replicator/wire"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashDirEnv) != "" {
		os.Exit(crashChild()) // a primary of TestCrashSIGKILL
	}
	goleak.VerifyTestMain(m)
}

const (
	volSize = 8 << 20
	gran    = meta.DefaultGranularity
)

var testKey = []byte("cluster secret")

type node struct {
	e        *Engine
	data     DataFile // direct where the file system allows, as vigild's
	path     string   // data file
	metaPath string
	st       *meta.Store
	cfg      Config // as given to New, for restart
}

// newNode creates a node with a zero-filled volume and generations gens.
func newNode(t testing.TB, role Role, idx uint8, gens meta.Generations) *node {
	t.Helper()
	return newNodeCfg(t, role, idx, gens, nil)
}

// newNodeCfg is newNode with tweak applied to the engine's Config.
func newNodeCfg(t testing.TB, role Role, idx uint8, gens meta.Generations, tweak func(*Config)) *node {
	t.Helper()
	return newNodeFlags(t, role, idx, gens, meta.FlagConsistent, tweak)
}

// newNodeFlags is newNodeCfg with the superblock's initial flags.
func newNodeFlags(t testing.TB, role Role, idx uint8, gens meta.Generations, flags uint32, tweak func(*Config)) *node {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "data")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(volSize); err != nil {
		t.Fatal(err)
	}
	metaPath := filepath.Join(dir, "meta")
	st, err := meta.Create(metaPath, meta.Superblock{
		VolumeUUID: [16]byte{7}, Size: volSize, BlockSize: 4096,
		Role: uint8(role), Flags: flags, Gens: gens,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Role: role, Node: idx, ClusterKey: testKey, ConfigHash: [16]byte{1},
		PingInterval: 20 * time.Millisecond, Timeout: 2 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	n := &node{path: path, metaPath: metaPath, cfg: cfg}
	n.start(t, f, st, cfg.Role)
	t.Cleanup(func() {
		if err := n.e.Close(); err != nil {
			t.Error(err)
		}
		n.st.Close()
		n.data.Close()
	})
	return n
}

// start runs a new engine over f and st as role.
func (n *node) start(t testing.TB, f *os.File, st *meta.Store, role Role) {
	t.Helper()
	cfg := n.cfg
	cfg.Role = role
	d, err := NewDataFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Data == nil {
		cfg.Data = d
	} else if hv, ok := cfg.Data.(*heldVolume); ok {
		hv.Volume = d
	}
	cfg.Meta = st
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.e, n.data, n.st = e, d, st
}

// restart stops the engine as a killed daemon would (no flush: Close only
// breaks the connection; the volume's page cache survives, as it would a
// daemon crash), closes the files and runs a new engine over them.
func (n *node) restart(t testing.TB, role Role) {
	t.Helper()
	if err := n.e.Close(); err != nil {
		t.Fatal(err)
	}
	n.st.Close()
	n.data.Close()
	f, err := os.OpenFile(n.path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := meta.Open(n.metaPath)
	if err != nil {
		t.Fatal(err)
	}
	n.start(t, f, st, role)
}

// connect connects p (dialling) to s over TCP loopback and returns both
// Connect errors.
func connect(t testing.TB, p, s *node) (perr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		done <- s.e.Connect(ctx, c, false)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	perr = p.e.Connect(ctx, c, true)
	return perr, <-done
}

// mustConnect connects p (dialling) to s and waits until a resync the
// connection started has ended on both.
func mustConnect(t testing.TB, p, s *node) {
	t.Helper()
	if perr, serr := connect(t, p, s); perr != nil || serr != nil {
		t.Fatalf("connect: primary %v, secondary %v", perr, serr)
	}
	waitState(t, Connected, p, s)
}

// waitState waits until every node is in state want (generous deadline:
// an event, not a duration).
func waitState(t testing.TB, want State, nodes ...*node) {
	t.Helper()
	waitFor(t, fmt.Sprintf("state %v", want), func() bool {
		for _, n := range nodes {
			if n.e.Status().State != want {
				return false
			}
		}
		return true
	}, nodes...)
}

// waitFor polls cond until it holds, failing after a minute.
func waitFor(t testing.TB, what string, cond func() bool, nodes ...*node) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("node %d: %+v", n.e.cfg.Node, n.e.Status())
			}
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func pair(t *testing.T) (p, s *node) {
	gens := meta.Generations{Current: 0xabc}
	p = newNode(t, Primary, 1, gens)
	s = newNode(t, Secondary, 2, gens)
	mustConnect(t, p, s)
	return p, s
}

func sameFiles(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		for i := range x {
			if x[i] != y[i] {
				t.Fatalf("volumes differ first at byte %d", i)
			}
		}
		t.Fatal("volumes differ in length")
	}
}

// block returns a write of n bytes carrying seq, its length and a CRC32C
// of the rest.
func block(rng *rand.Rand, seq uint64, n int) []byte {
	b := make([]byte, n)
	for i := 16; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	binary.LittleEndian.PutUint64(b[0:], seq)
	binary.LittleEndian.PutUint32(b[8:], uint32(n))
	binary.LittleEndian.PutUint32(b[12:], crc32.Checksum(b[16:], crc32.MakeTable(crc32.Castagnoli)))
	return b
}

func checkBlock(b []byte, seq uint64) bool {
	return binary.LittleEndian.Uint64(b[0:]) == seq && int(binary.LittleEndian.Uint32(b[8:])) == len(b) &&
		binary.LittleEndian.Uint32(b[12:]) == crc32.Checksum(b[16:], crc32.MakeTable(crc32.Castagnoli))
}

func TestSyncWritesIdentical(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	writers(t, 8, 1, func(rng *rand.Rand) error {
		for i := range 50 {
			n := 512 * (1 + rng.IntN(64))
			off := uint64(rng.IntN(volSize/512-n/512)) * 512 // overlapping across goroutines
			if err := p.e.Write(ctx, off, block(rng, uint64(i), n), i%7 == 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	st := p.e.Status()
	if st.State != Connected || st.DirtyBytes != 0 || st.InSyncPercent != 100 || st.Role != Primary || st.Peer != 2 {
		t.Fatalf("after flush: %+v", st)
	}
	if err := s.e.Write(ctx, 0, make([]byte, 512), false); !errors.Is(err, ErrNotPrimary) {
		t.Fatalf("write on secondary: %v", err)
	}
	if err := p.e.Write(ctx, volSize-512, make([]byte, 1024), false); !errors.Is(err, ErrRange) {
		t.Fatalf("write past the end: %v", err)
	}
}

// TestLargeAndSmallWritesInOrder: large writes (applied by the
// secondary's applier, written around the page cache) and small ones
// (applied by its read loop, some unaligned, through the page cache),
// FUA writes and flushes, all overlapping in 2 MiB: the secondary ends
// identical, so every frame kept its place.
func TestLargeAndSmallWritesInOrder(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	writers(t, 4, 2, func(rng *rand.Rand) error {
		for i := range 60 {
			var n int
			var off uint64
			if rng.IntN(2) == 0 {
				n = applyLarge << rng.IntN(5) // 64 KiB to 1 MiB, aligned
				off = uint64(rng.IntN((2<<20-n)/4096)) * 4096
			} else {
				n = 512 * (1 + rng.IntN(16))
				off = uint64(rng.IntN((2<<20-n)/512)) * 512
			}
			if err := p.e.Write(ctx, off, alignedCopy(block(rng, uint64(i), n)), i%5 == 0); err != nil {
				return err
			}
			if i%17 == 0 {
				if err := p.e.Flush(ctx); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
	if st := p.e.Status(); st.State != Connected || st.DirtyBytes != 0 {
		t.Fatalf("after flush: %+v", st)
	}
}

// writers runs each in n goroutines at once, goroutine g with a random
// source seeded (g, seed), and fails the test on the first error.
func writers(t *testing.T, n int, seed uint64, each func(rng *rand.Rand) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Go(func() {
			if err := each(rand.New(rand.NewPCG(uint64(g), seed))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// alignedCopy returns b copied to a 4 KiB-aligned buffer.
func alignedCopy(b []byte) []byte {
	a := alignedBuf(len(b))
	copy(a, b)
	return a
}

func TestDisconnectDifferentialResync(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 20 {
		if err := p.e.Write(ctx, uint64(i)*4096, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	genBefore := p.e.Status().Gens

	s.e.Disconnect() // the secondary goes away mid-stream
	const regions = 5
	dirtyData := 0
	for i := range regions {
		off := uint64(1<<20 + i*3*gran + 8192) // distinct 64 KiB regions
		if err := p.e.Write(ctx, off, block(rng, uint64(100+i), 4096), i == 0); err != nil {
			t.Fatalf("write alone: %v", err)
		}
		dirtyData += 4096
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	st := p.e.Status()
	if st.State != StandAlone || st.DirtyBytes != regions*gran || st.Gens.Bitmap != genBefore.Current || st.Gens.Current == genBefore.Current {
		t.Fatalf("alone: %+v (before %+v)", st, genBefore)
	}

	mustConnect(t, p, s)
	ps, ss := p.e.Status(), s.e.Status()
	sent := ps.ResyncSent
	t.Logf("resync sent %d bytes for %d bytes of dirty data, volume %d", sent, dirtyData, volSize)
	if sent < uint64(dirtyData) || sent > regions*gran || sent*16 > volSize {
		t.Fatalf("resync sent %d bytes", sent)
	}
	if ps.State != Connected || ps.DirtyBytes != 0 || ss.DirtyBytes != 0 || ps.Gens.Current != ss.Gens.Current || !ss.Consistent || ps.Verdict != meta.LocalNewer.String() {
		t.Fatalf("after resync: primary %+v, secondary %+v", ps, ss)
	}
	sameFiles(t, p.path, s.path)

	// Replication carries on after the resync.
	if err := p.e.Write(ctx, 4096, block(rng, 999, 8192), true); err != nil {
		t.Fatal(err)
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, p.path, s.path)
}

func TestSplitBrain(t *testing.T) {
	p, s := pair(t)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	if err := p.e.Write(ctx, 0, block(rng, 1, 4096), false); err != nil {
		t.Fatal(err)
	}
	s.e.Disconnect()
	if err := s.e.Promote(false); err != nil {
		t.Fatal(err)
	}
	if err := s.e.Write(ctx, 1<<20, block(rng, 2, 4096), false); err != nil {
		t.Fatal(err)
	}
	if err := p.e.Write(ctx, 2<<20, block(rng, 3, 4096), false); err != nil {
		t.Fatal(err)
	}
	perr, serr := connect(t, p, s)
	if !errors.Is(perr, ErrSplitBrain) || !errors.Is(serr, ErrSplitBrain) {
		t.Fatalf("connect after split brain: %v / %v", perr, serr)
	}
	for _, n := range []*node{p, s} {
		if st := n.e.Status(); st.State != SplitBrain || st.Verdict != meta.SplitBrain.String() || st.ResyncSent != 0 {
			t.Fatalf("status: %+v", st)
		}
	}
	// Nothing was merged: each side still has only its own write.
	pb, sb := make([]byte, 4096), make([]byte, 4096)
	if _, err := p.data.ReadAt(pb, 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := s.data.ReadAt(sb, 1<<20); err != nil {
		t.Fatal(err)
	}
	if !checkBlock(sb, 2) || checkBlock(pb, 2) {
		t.Fatal("split brain data was merged")
	}
}

// TestAckedWritesSurvivePrimaryCrash: every write the primary completed
// while connected is on the secondary after the primary dies abruptly.
func TestAckedWritesSurvivePrimaryCrash(t *testing.T) {
	const rounds, writers, writes = 20, 4, 10
	for round := range rounds {
		p, s := pair(t)
		ctx := context.Background()
		slice := volSize / writers
		shadows := make([][]byte, writers)
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for g := range writers {
			shadows[g] = make([]byte, slice)
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for i := range writes {
					n := 512 * (1 + rng.IntN(32))
					rel := rng.IntN(slice/512-n/512) * 512
					b := block(rng, uint64(round<<16|g<<8|i), n)
					if err := p.e.Write(ctx, uint64(g*slice+rel), b, rng.IntN(4) == 0); err != nil {
						errs <- err
						return
					}
					copy(shadows[g][rel:], b)
					if !checkBlock(shadows[g][rel:rel+n], uint64(round<<16|g<<8|i)) {
						errs <- errors.New("bad block")
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if st := p.e.Status(); st.State != Connected {
			t.Fatalf("round %d: primary %v before the crash", round, st.State)
		}
		if err := p.e.Close(); err != nil { // the crash: no flush, connection cut
			t.Fatal(err)
		}
		got := make([]byte, slice)
		for g := range writers {
			if _, err := s.data.ReadAt(got, int64(g*slice)); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, shadows[g]) {
				t.Fatalf("round %d: writer %d's acked writes missing on the secondary", round, g)
			}
		}
	}
}

// TestStalledPeer: a peer that completes the handshake and then never
// acks does not hang the primary's writes.
func TestStalledPeer(t *testing.T) {
	gens := meta.Generations{Current: 0xabc}
	p := newNode(t, Primary, 1, gens)
	p.e.cfg.Timeout = 300 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	stall := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r, w := wire.NewReader(c, nil), wire.NewWriter(c)
		_, err = wire.Server(r, w, wire.Config{ClusterKey: testKey, Local: wire.Hello{
			ConfigHash: [16]byte{1}, VolumeUUID: [16]byte{7}, Incarnation: 1, Size: volSize,
			BlockSize: 4096, Node: 2, Gens: wire.Generations{Current: 0xabc}, DiskFlags: meta.FlagConsistent,
		}})
		if err != nil {
			t.Error(err)
			return
		}
		<-stall // never read, never ack
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.e.Connect(context.Background(), c, true); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 3 {
		if err := p.e.Write(context.Background(), uint64(i)*gran, block(rng, uint64(i), 4096), false); err != nil {
			t.Fatal(err)
		}
	}
	st := p.e.Status()
	if st.State != StandAlone || st.DirtyBytes != 3*gran || st.LastError == "" {
		t.Fatalf("after a stall: %+v", st)
	}
	close(stall)
	<-done
}

// TestHotExtentsSpareBitmapSyncs: the first write to an activity extent
// waits for a bitmap sync; after a flush has cleared its bits, the next
// one does not, the extent being hot; a demotion cools the extents.
func TestHotExtentsSpareBitmapSyncs(t *testing.T) {
	p, _ := pair(t)
	ctx := context.Background()
	buf := alignedCopy(make([]byte, 4096))
	write := func(off uint64) {
		t.Helper()
		if err := p.e.Write(ctx, off, buf, false); err != nil {
			t.Fatal(err)
		}
	}
	write(0)
	write(meta.ExtentSize)
	if st := p.e.Status(); st.BitmapSyncs != 2 || st.HotExtents != 2 {
		t.Fatalf("after writes to two extents: %d bitmap syncs, %d hot", st.BitmapSyncs, st.HotExtents)
	}
	if err := p.e.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	write(gran) // another region of the first extent, its bits clear
	if st := p.e.Status(); st.BitmapSyncs != 2 || st.DirtyBytes != gran {
		t.Fatalf("a write to a hot extent: %d bitmap syncs, %d bytes dirty", st.BitmapSyncs, st.DirtyBytes)
	}
	if err := p.e.Demote(ctx); err != nil {
		t.Fatal(err)
	}
	if st := p.e.Status(); st.HotExtents != 0 {
		t.Fatalf("after a demotion: %d hot extents", st.HotExtents)
	}
}
