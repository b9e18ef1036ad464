package meta

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func newStore(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta")
	s, err := Create(path, Superblock{VolumeUUID: [16]byte{1}, Size: 10 << 30, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	return s, path
}

func TestSuperblockTornSlot(t *testing.T) {
	s, path := newStore(t)
	sb := s.Superblock()
	sb.Gens = Generations{Current: 7}
	if err := s.WriteSuperblock(sb); err != nil {
		t.Fatal(err)
	}
	sb.Gens = Generations{Current: 8, Bitmap: 7}
	if err := s.WriteSuperblock(sb); err != nil {
		t.Fatal(err)
	}
	last := s.Superblock()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Corrupt the newest slot, as a torn write would: the older survives.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	newest := int64(s.Superblock().Seq%2) * SlotSize
	if _, err := f.WriteAt([]byte("torn"), newest+70); err != nil {
		t.Fatal(err)
	}
	f.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got := s2.Superblock()
	if got.Gens != last.Gens || got.Size != 10<<30 || got.Granularity != DefaultGranularity {
		t.Fatalf("after torn slot: %+v, want gens %+v", got, last.Gens)
	}
	if !s2.Crashed() {
		t.Fatal("the surviving slot was written while open: want Crashed")
	}
	s2.Close()
	// Both slots gone.
	f, _ = os.OpenFile(path, os.O_RDWR, 0)
	_, _ = f.WriteAt(make([]byte, 2*SlotSize), 0)
	f.Close()
	if _, err := Open(path); !errors.Is(err, ErrNoSuperblock) {
		t.Fatalf("no slot: %v", err)
	}
}

func TestCleanCloseAndBadGeometry(t *testing.T) {
	s, path := newStore(t)
	if s.Crashed() {
		t.Fatal("new store crashed")
	}
	s.Close()
	s, err := Open(path)
	if err != nil || s.Crashed() {
		t.Fatalf("reopen: %v crashed=%v", err, s.Crashed())
	}
	s.Close()
	if _, err := Create(filepath.Join(t.TempDir(), "m"), Superblock{Size: 4096, BlockSize: 4096, Granularity: 1000}); !errors.Is(err, ErrBadGeometry) {
		t.Fatalf("granularity 1000: %v", err)
	}
}

// TestCrashKeepsDirtyRegions marks regions, syncs as the engine does
// before writing, then drops the Store without Close: every region
// written since is dirty after reopening.
func TestCrashKeepsDirtyRegions(t *testing.T) {
	s, path := newStore(t)
	bm := s.Bitmap()
	writes := [][2]uint64{{0, 4096}, {1 << 20, 128 << 10}, {5<<30 - 512, 1024}, {10<<30 - 4096, 4096}}
	for _, w := range writes {
		if bm.MarkDirty(w[0], w[1]) {
			if err := bm.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if bm.MarkDirty(w[0], w[1]) {
			t.Fatalf("region %v still needs a sync after Sync", w)
		}
	}
	// Clears are lazy: a cleared but not written back region stays dirty
	// on disk, which is safe.
	bm.Clear(1<<20, 64<<10)
	if n := bm.Count(); n != 5 {
		t.Fatalf("%d dirty bits in memory, want the 5 regions marked and not cleared", n)
	}
	// The partition holds whole activity extents: 0-4 MiB (the first two
	// writes), both sides of 5 GiB, and the last one.
	want := uint64(4 * ExtentSize / DefaultGranularity)
	// Crash: no Close, no WriteBack.
	s.f.Close()

	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if !s2.Crashed() {
		t.Fatal("crash not detected")
	}
	bm2 := s2.Bitmap()
	if bm2.Count() != want {
		t.Fatalf("%d dirty bits after crash, want %d", bm2.Count(), want)
	}
	for _, w := range writes {
		covered := false
		bm2.Runs(func(off, n uint64) bool {
			if off <= w[0] && w[0]+w[1] <= off+n {
				covered = true
			}
			return true
		})
		if !covered {
			t.Fatalf("write %v not dirty after crash", w)
		}
	}
}

func TestBitmapRunsClearExport(t *testing.T) {
	s, _ := newStore(t)
	defer s.Close()
	bm := s.Bitmap()
	g := bm.Granularity()
	bm.MarkDirty(g, 3*g)       // bits 1-3
	bm.MarkDirty(100*g, 1)     // bit 100
	bm.MarkDirty(10<<30-1, 10) // last bit, range clamped
	var runs [][2]uint64
	bm.Runs(func(off, n uint64) bool { runs = append(runs, [2]uint64{off, n}); return true })
	want := [][2]uint64{{g, 3 * g}, {100 * g, g}, {10<<30 - g, g}}
	if len(runs) != len(want) {
		t.Fatalf("runs %v, want %v", runs, want)
	}
	for i := range want {
		if runs[i] != want[i] {
			t.Fatalf("runs %v, want %v", runs, want)
		}
	}
	bm.Clear(g+1, 3*g) // only bits 2 and 3 are whole inside
	if bm.Count() != 3 {
		t.Fatalf("count %d after partial clear, want 3", bm.Count())
	}
	chunk := make([]byte, 16)
	if n := bm.Export(0, chunk); n != 16 || chunk[0] != 0x02 || chunk[12] != 0x10 {
		t.Fatalf("export %d %x", n, chunk)
	}
	bm.Clear(0, 10<<30)
	bm.Or(0, chunk)
	if bm.Count() != 2 {
		t.Fatalf("count %d after Or, want 2", bm.Count())
	}
	if err := bm.SetAll(); err != nil || bm.Count() != bm.Bits() {
		t.Fatalf("SetAll: %v count %d of %d", err, bm.Count(), bm.Bits())
	}
}

// BenchmarkMarkDirty is the hot path: a 4 KiB write to a region already
// dirty (the common case once a working set is marked).
func BenchmarkMarkDirty(b *testing.B) {
	s, _ := newStore(b)
	defer s.Close()
	bm := s.Bitmap()
	bm.MarkDirty(0, 1<<30)
	if err := bm.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var off uint64
	for b.Loop() {
		if bm.MarkDirty(off, 4096) {
			b.Fatal("already durable region needs a sync")
		}
		off = (off + 4096) % (1 << 30)
	}
}

// BenchmarkMarkDirtySync is the cold path: each write dirties a new region
// and syncs its bitmap page (fsync on the test's file system).
func BenchmarkMarkDirtySync(b *testing.B) {
	s, _ := newStore(b)
	defer s.Close()
	bm := s.Bitmap()
	b.ReportAllocs()
	var off uint64
	for b.Loop() {
		if bm.MarkDirty(off, 4096) {
			if err := bm.Sync(); err != nil {
				b.Fatal(err)
			}
		}
		off = (off + bm.Granularity()) % (10 << 30)
	}
}

// TestActivityExtents: a durable bit makes its extent durable, so a first
// write to another region of the extent needs no Sync, one outside it
// does; an extent leaves the partition once all its regions are clear.
func TestActivityExtents(t *testing.T) {
	s, path := newStore(t)
	bm := s.Bitmap()
	if !bm.MarkDirty(0, 4096) {
		t.Fatal("a first write needs no sync")
	}
	if err := bm.Sync(); err != nil {
		t.Fatal(err)
	}
	if bm.MarkDirty(ExtentSize-4096, 4096) {
		t.Fatal("a write in a durable extent asks for a sync")
	}
	if !bm.MarkDirty(ExtentSize, 4096) {
		t.Fatal("a write in the next extent needs no sync")
	}
	if err := bm.Sync(); err != nil {
		t.Fatal(err)
	}
	if n := bm.Count(); n != 3 {
		t.Fatalf("%d dirty bits in memory, want 3", n)
	}
	// The first extent clears; the second keeps a dirty region.
	bm.Clear(0, ExtentSize)
	if err := bm.WriteBack(); err != nil {
		t.Fatal(err)
	}
	s.f.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	var runs [][2]uint64
	s2.Bitmap().Runs(func(off, n uint64) bool { runs = append(runs, [2]uint64{off, n}); return true })
	if len(runs) != 1 || runs[0] != [2]uint64{ExtentSize, ExtentSize} {
		t.Fatalf("dirty on the partition: %v; want the second extent only", runs)
	}
}

// TestActivityExtentAtTheEnd: widening never sets bits past the volume's
// end.
func TestActivityExtentAtTheEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta")
	s, err := Create(path, Superblock{VolumeUUID: [16]byte{1}, Size: ExtentSize + DefaultGranularity, BlockSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	bm := s.Bitmap()
	bm.MarkDirty(ExtentSize, 4096)
	if err := bm.Sync(); err != nil {
		t.Fatal(err)
	}
	s.f.Close()
	s2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if n := s2.Bitmap().Count(); n != 1 {
		t.Fatalf("%d dirty bits on the partition, want the last region's 1", n)
	}
}

// TestHotExtents: an extent stays on the partition after its regions
// clear while it is hot, so the next first write to it needs no sync; the
// least recently used extent cools when too many are hot; WriteBack cools
// them all; MarkStale and SetAll heat none.
func TestHotExtents(t *testing.T) {
	s, path := newStore(t)
	bm := s.Bitmap()
	bm.SetHotExtents(2)
	onDisk := func() [][2]uint64 {
		t.Helper()
		f, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var runs [][2]uint64
		for x := uint64(0); x < 4; x++ { // the first four extents' first bit
			bit := x * ExtentSize / DefaultGranularity
			if f[BitmapOffset+bit/8]&(1<<(bit%8)) != 0 {
				runs = append(runs, [2]uint64{x * ExtentSize, ExtentSize})
			}
		}
		return runs
	}
	for x := range uint64(2) {
		if !bm.MarkDirty(x*ExtentSize, 4096) {
			t.Fatalf("extent %d: a first write needs no sync", x)
		}
	}
	if err := bm.Sync(); err != nil {
		t.Fatal(err)
	}
	bm.Clear(0, 2*ExtentSize)
	if err := bm.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); len(got) != 2 || bm.Count() != 0 || bm.HotCount() != 2 {
		t.Fatalf("clean but hot: on the partition %v, %d bits dirty, %d hot", got, bm.Count(), bm.HotCount())
	}
	if bm.MarkDirty(ExtentSize-4096, 4096) {
		t.Fatal("a write to a hot extent asks for a sync")
	}
	// Extent 0 was used again: extent 1 cools for extent 2.
	if !bm.MarkDirty(2*ExtentSize, 4096) {
		t.Fatal("a write to a cold extent needs no sync")
	}
	bm.Clear(0, 3*ExtentSize)
	if err := bm.Sync(); err != nil {
		t.Fatal(err)
	}
	if got, want := onDisk(), [][2]uint64{{0, ExtentSize}, {2 * ExtentSize, ExtentSize}}; !slices.Equal(got, want) {
		t.Fatalf("on the partition %v, want %v", got, want)
	}
	if !bm.MarkDirty(ExtentSize, 4096) {
		t.Fatal("a write to the cooled extent needs no sync")
	}
	if err := bm.WriteBack(); err != nil {
		t.Fatal(err)
	}
	if got, want := onDisk(), [][2]uint64{{ExtentSize, ExtentSize}}; !slices.Equal(got, want) || bm.HotCount() != 0 {
		t.Fatalf("after WriteBack: on the partition %v, want %v (the dirty one); %d hot", got, want, bm.HotCount())
	}
	bm.Clear(0, 4*ExtentSize)
	if !bm.MarkStale(3*ExtentSize, 4096) || bm.HotCount() != 0 {
		t.Fatalf("MarkStale: a sync not asked for, or %d extents heated", bm.HotCount())
	}
	if err := bm.SetAll(); err != nil {
		t.Fatal(err)
	}
	if bm.HotCount() != 0 {
		t.Fatalf("SetAll heated %d extents", bm.HotCount())
	}
}
