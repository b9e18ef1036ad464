package blockbench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// memTarget is an in-memory Target that records what it was asked.
type memTarget struct {
	mu        sync.Mutex
	data      []byte
	writes    int
	syncs     int
	flushes   int
	unaligned int
	inFlight  int
	maxFlight int
	offsets   []int64
	failAt    int64 // a write at this offset fails (if >= 0)
	delay     time.Duration
}

var errInjected = errors.New("injected write error")

func newMem(size int) *memTarget { return &memTarget{data: make([]byte, size), failAt: -1} }

func (m *memTarget) WriteAt(p []byte, off int64, sync bool) error {
	m.mu.Lock()
	m.inFlight++
	m.maxFlight = max(m.maxFlight, m.inFlight)
	m.mu.Unlock()
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.inFlight--
	if off == m.failAt {
		return errInjected
	}
	if !IsAligned(p) || off%Align != 0 {
		m.unaligned++
	}
	copy(m.data[off:], p)
	m.writes++
	if sync {
		m.syncs++
	}
	m.offsets = append(m.offsets, off)
	return nil
}

func (m *memTarget) Flush() error {
	m.mu.Lock()
	m.flushes++
	m.mu.Unlock()
	return nil
}

func TestSequentialWritesEveryBlockOnce(t *testing.T) {
	for _, qd := range []int{1, 3, 8, 100} {
		m := newMem(4 << 20)
		m.delay = 100 * time.Microsecond
		o := SeqOptions{Region: Region{Offset: 1 << 20, Size: 2 << 20}, BlockSize: 64 << 10, QueueDepth: qd}
		res, err := Sequential(context.Background(), m, o)
		if err != nil {
			t.Fatal(err)
		}
		if res.Writes != 32 || res.Bytes != 2<<20 || res.Latency.Count() != 32 {
			t.Fatalf("qd %d: %d writes, %d bytes, %d latencies; want 32, 2 MiB, 32", qd, res.Writes, res.Bytes, res.Latency.Count())
		}
		if m.unaligned != 0 || m.syncs != 0 || m.flushes != 1 {
			t.Fatalf("qd %d: %d unaligned, %d sync writes, %d flushes; want 0, 0, 1", qd, m.unaligned, m.syncs, m.flushes)
		}
		if m.maxFlight > min(qd, 32) {
			t.Fatalf("qd %d: %d writes in flight at once", qd, m.maxFlight)
		}
		seen := map[int64]bool{}
		for _, off := range m.offsets {
			if seen[off] || off < 1<<20 || off >= 3<<20 || off%(64<<10) != 0 {
				t.Fatalf("qd %d: bad or repeated offset %d", qd, off)
			}
			seen[off] = true
			if got := int64(binary.LittleEndian.Uint64(m.data[off:])); got != off {
				t.Fatalf("qd %d: block at %d is stamped %d", qd, off, got)
			}
		}
		if !bytes.Equal(m.data[:1<<20], make([]byte, 1<<20)) || !bytes.Equal(m.data[3<<20:], make([]byte, 1<<20)) {
			t.Fatalf("qd %d: wrote outside the region", qd)
		}
		if res.Elapsed <= 0 || res.Elapsed < res.Flush || res.MBps() <= 0 {
			t.Fatalf("qd %d: elapsed %v flush %v rate %v", qd, res.Elapsed, res.Flush, res.MBps())
		}
	}
}

func TestSequentialSyncAndNoFlush(t *testing.T) {
	m := newMem(1 << 20)
	if _, err := Sequential(context.Background(), m, SeqOptions{Region: Region{Size: 1 << 20}, BlockSize: 4096, Sync: true, NoFlush: true}); err != nil {
		t.Fatal(err)
	}
	if m.syncs != 256 || m.flushes != 0 {
		t.Fatalf("%d sync writes and %d flushes, want 256 and 0", m.syncs, m.flushes)
	}
}

func TestSequentialStopsAtFirstError(t *testing.T) {
	m := newMem(4 << 20)
	m.failAt = 1 << 20
	res, err := Sequential(context.Background(), m, SeqOptions{Region: Region{Size: 4 << 20}, BlockSize: 64 << 10, QueueDepth: 4})
	if !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the injected error", err)
	}
	if m.flushes != 0 || res.Writes >= 64 {
		t.Fatalf("after a failed write: %d flushes, %d writes", m.flushes, res.Writes)
	}
}

func TestSequentialCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m := newMem(1 << 20)
	if _, err := Sequential(ctx, m, SeqOptions{Region: Region{Size: 1 << 20}}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if m.writes != 0 {
		t.Fatalf("%d writes after cancel", m.writes)
	}
}

func TestBadOptions(t *testing.T) {
	ctx := context.Background()
	m := newMem(1 << 20)
	for name, o := range map[string]SeqOptions{
		"unaligned block":  {Region: Region{Size: 1 << 20}, BlockSize: 1000},
		"negative block":   {Region: Region{Size: 1 << 20}, BlockSize: -4096},
		"unaligned offset": {Region: Region{Offset: 512, Size: 1 << 20}},
		"negative offset":  {Region: Region{Offset: -4096, Size: 1 << 20}},
		"size not blocks":  {Region: Region{Size: 1<<20 + 4096}},
		"empty":            {Region: Region{}},
		"negative qd":      {Region: Region{Size: 1 << 20}, QueueDepth: -1},
		"overflow":         {Region: Region{Offset: 1 << 62, Size: 1 << 62}},
	} {
		if _, err := Sequential(ctx, m, o); !errors.Is(err, ErrOptions) {
			t.Errorf("Sequential %s: err = %v, want ErrOptions", name, err)
		}
	}
	for name, o := range map[string]RandOptions{
		"no bound":        {Region: Region{Size: 1 << 20}},
		"unaligned block": {Region: Region{Size: 1 << 20}, BlockSize: 512, Writes: 1},
		"too small":       {Region: Region{Size: 4096}, BlockSize: 8192, Writes: 1},
	} {
		if _, err := RandomSync(ctx, m, o); !errors.Is(err, ErrOptions) {
			t.Errorf("RandomSync %s: err = %v, want ErrOptions", name, err)
		}
	}
	if err := Fill(ctx, m, FillOptions{Region: Region{Size: 100}}); !errors.Is(err, ErrOptions) {
		t.Errorf("Fill with a bad size: err = %v, want ErrOptions", err)
	}
	if m.writes != 0 || m.flushes != 0 {
		t.Fatalf("bad options still wrote (%d writes, %d flushes)", m.writes, m.flushes)
	}
}

func TestRandomSync(t *testing.T) {
	m := newMem(8 << 20)
	var observed []int64
	var observedLat Histogram
	o := RandOptions{Region: Region{Offset: 4 << 20, Size: 2 << 20}, Writes: 2000, Seed: 42,
		Observe: func(off int64, d time.Duration) {
			observed = append(observed, off)
			observedLat.Record(d)
		}}
	res, err := RandomSync(context.Background(), m, o)
	if err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(observed, m.offsets) || observedLat.Summarize() != res.Latency.Summarize() {
		t.Fatal("Observe did not see every write, in order, with its latency")
	}
	if res.Writes != 2000 || res.Latency.Count() != 2000 || m.syncs != 2000 || m.unaligned != 0 || m.maxFlight != 1 {
		t.Fatalf("%d writes (%d latencies, %d sync, %d unaligned, %d at once), want 2000 sync aligned at queue depth 1",
			res.Writes, res.Latency.Count(), m.syncs, m.unaligned, m.maxFlight)
	}
	blocks := map[int64]bool{}
	for _, off := range m.offsets {
		if off < 4<<20 || off >= 6<<20 || off%4096 != 0 {
			t.Fatalf("offset %d outside the region or unaligned", off)
		}
		blocks[off] = true
	}
	// 2000 uniform draws from 512 blocks leave almost none untouched
	// (expected about 10); a constant or clustered generator would.
	if len(blocks) < 450 {
		t.Fatalf("only %d distinct blocks of 512 in 2000 random writes", len(blocks))
	}
	// The same seed gives the same offsets.
	m2 := newMem(8 << 20)
	o.Observe = nil
	if _, err := RandomSync(context.Background(), m2, o); err != nil {
		t.Fatal(err)
	}
	if !slicesEqual(m.offsets, m2.offsets) {
		t.Fatal("the same seed gave different offsets")
	}
	if res.IOPS() <= 0 {
		t.Fatalf("IOPS %v", res.IOPS())
	}
}

func slicesEqual(a, b []int64) bool {
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

func TestRandomSyncDuration(t *testing.T) {
	m := newMem(1 << 20)
	m.delay = time.Millisecond
	res, err := RandomSync(context.Background(), m, RandOptions{Region: Region{Size: 1 << 20}, Duration: 30 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// Event, not timing: it stopped by itself, after at least one write.
	if res.Writes < 1 || res.Elapsed < 30*time.Millisecond {
		t.Fatalf("%d writes in %v", res.Writes, res.Elapsed)
	}
}

func TestRandomSyncError(t *testing.T) {
	m := newMem(4096)
	m.failAt = 0
	if _, err := RandomSync(context.Background(), m, RandOptions{Region: Region{Size: 4096}, Writes: 5}); !errors.Is(err, errInjected) {
		t.Fatalf("err = %v, want the injected error", err)
	}
}

func TestFillIsDeterministic(t *testing.T) {
	a, b := newMem(2<<20), newMem(2<<20)
	o := FillOptions{Region: Region{Size: 2 << 20}, BlockSize: 256 << 10, Seed: 7}
	for _, m := range []*memTarget{a, b} {
		if err := Fill(context.Background(), m, o); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.data, b.data) || a.flushes != 1 {
		t.Fatalf("same seed, different data (or %d flushes)", a.flushes)
	}
	block := make([]byte, 256<<10)
	FillBlock(7, 512<<10, block)
	if !bytes.Equal(block, a.data[512<<10:768<<10]) {
		t.Fatal("FillBlock differs from what Fill wrote")
	}
	if bytes.Equal(a.data[:256<<10], a.data[256<<10:512<<10]) {
		t.Fatal("two blocks hold the same data")
	}
	c := newMem(2 << 20)
	o.Seed = 8
	if err := Fill(context.Background(), c, o); err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.data, c.data) {
		t.Fatal("another seed gave the same data")
	}
}

func TestAlignedBuffer(t *testing.T) {
	for _, n := range []int{0, 1, 4096, 1 << 20, 12345} {
		b := AlignedBuffer(n)
		if len(b) != n || cap(b) != n {
			t.Fatalf("AlignedBuffer(%d): len %d cap %d", n, len(b), cap(b))
		}
		if n%Align == 0 && n > 0 && !IsAligned(b) {
			t.Fatalf("AlignedBuffer(%d) is not aligned", n)
		}
	}
	b := AlignedBuffer(8192)
	if IsAligned(b[1:4097]) || IsAligned(b[:4000]) {
		t.Fatal("IsAligned accepted a misaligned slice")
	}
}

func TestFileTargetSyncs(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &countingFile{File: f}
	b := FileTarget{File: s}
	p := AlignedBuffer(4096)
	p[0] = 9
	if err := b.WriteAt(p, 8192, false); err != nil {
		t.Fatal(err)
	}
	if s.syncs != 0 {
		t.Fatal("a plain write synced")
	}
	if err := b.WriteAt(p, 0, true); err != nil {
		t.Fatal(err)
	}
	if s.syncs != 1 {
		t.Fatalf("a sync write made %d syncs, want 1", s.syncs)
	}
	if err := b.Flush(); err != nil || s.syncs != 2 {
		t.Fatalf("Flush: %v, %d syncs", err, s.syncs)
	}
	got := make([]byte, 1)
	if _, err := f.ReadAt(got, 8192); err != nil || got[0] != 9 {
		t.Fatalf("read back %v, %v", got, err)
	}
}

type countingFile struct {
	*os.File
	syncs int
}

// fuaFile is a countingFile with FUA writes.
type fuaFile struct {
	countingFile
	fuas int
}

func (f *fuaFile) WriteAtFUA(p []byte, off int64) (int, error) {
	f.fuas++
	return f.File.WriteAt(p, off)
}

// TestFileTargetFUA: over a file with FUA writes, a sync write is one FUA
// write and no Sync, as the engine writes its volume.
func TestFileTargetFUA(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := &fuaFile{countingFile: countingFile{File: f}}
	b := FileTarget{File: s}
	p := AlignedBuffer(4096)
	if err := b.WriteAt(p, 0, false); err != nil || s.fuas != 0 || s.syncs != 0 {
		t.Fatalf("plain write: %v, %d FUA writes, %d syncs", err, s.fuas, s.syncs)
	}
	if err := b.WriteAt(p, 4096, true); err != nil || s.fuas != 1 || s.syncs != 0 {
		t.Fatalf("sync write: %v, %d FUA writes, %d syncs; want 1 and 0", err, s.fuas, s.syncs)
	}
}

func (c *countingFile) Sync() error {
	c.syncs++
	return c.File.Sync()
}

// TestPair: every write and flush reaches both targets, at the same
// offset, with its sync flag; an error of either is returned.
func TestPair(t *testing.T) {
	a, b := newMem(1<<20), newMem(1<<20)
	p := NewPair(a, b)
	defer p.Close()
	res, err := RandomSync(context.Background(), p, RandOptions{Region: Region{Size: 1 << 20}, Writes: 50, Seed: 3})
	if err != nil || res.Writes != 50 {
		t.Fatalf("random on a pair: %d writes, %v", res.Writes, err)
	}
	if err := p.Flush(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.data, b.data) || a.writes != 50 || b.writes != 50 || a.syncs != 50 || b.syncs != 50 || a.flushes != 1 || b.flushes != 1 {
		t.Fatalf("a: %d writes %d syncs %d flushes, b: %d %d %d, equal %v", a.writes, a.syncs, a.flushes, b.writes, b.syncs, b.flushes, bytes.Equal(a.data, b.data))
	}
	b.failAt = a.offsets[0]
	if err := p.WriteAt(AlignedBuffer(4096), b.failAt, true); !errors.Is(err, errInjected) {
		t.Fatalf("the second target failing: %v", err)
	}
}
