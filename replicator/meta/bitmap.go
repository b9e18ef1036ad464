package meta

import (
	"fmt"
	"math/bits"
	"os"
	"sync"
)

const pageWords = PageSize / 8

// Bitmap is the dirty bitmap: one bit per Granularity bytes of volume, set
// while the region may differ from the peer. It keeps the in-memory truth
// and a copy of what is durable on the partition, and follows a
// write-ahead rule: a bit set in memory but not yet durable makes
// MarkDirty return mustSync, and the caller must Sync before it issues
// the write. Clears are lazy: they reach the partition with the next Sync
// or WriteBack, so the on-disk bitmap is always a superset of the regions
// that may differ.
//
// The partition holds whole activity extents (ExtentSize): those with a
// dirty region, and the hot ones, the extents MarkDirty touched most
// recently, at most HotExtents of them (least recently used leave first),
// whose regions may all be clear. A write to a hot extent never waits for
// a bitmap sync, as a write to one of DRBD's activity log extents does
// not; a node restarted after a crash resyncs the hot extents whole.
// WriteBack cools them all: the state of a clean shutdown. Methods are
// safe for concurrent use.
type Bitmap struct {
	f    *os.File
	gran uint64
	size uint64
	nbit uint64

	ext uint64 // bits per activity extent: a power of two, 1 to 64

	mu      sync.Mutex
	mem     []uint64
	disk    []uint64 // what the partition holds: mem's bits widened to extents, and hot
	pending []uint64 // one bit per page that differs from disk

	// The hot extents: hotm has their bits set word by word; ring lists
	// them for the clock that picks the one to cool (hand is its
	// position), which passes over an extent whose ref bit is set once,
	// clearing it: MarkDirty sets it.
	hotm   []uint64
	ring   []uint64
	ref    []uint64 // one bit per extent
	hand   int
	maxHot int

	syncMu sync.Mutex // one Sync at a time
	pages  []uint64   // scratch: page indexes being written
	buf    []byte     // scratch: their contents
}

func loadBitmap(f *os.File, nbit uint64, gran uint32, size uint64) (*Bitmap, error) {
	nwords := (nbit + 63) / 64
	npages := (nwords + pageWords - 1) / pageWords
	b := &Bitmap{
		f: f, gran: uint64(gran), size: size, nbit: nbit,
		ext:     extentBits(uint64(gran)),
		mem:     make([]uint64, npages*pageWords),
		disk:    make([]uint64, npages*pageWords),
		pending: make([]uint64, (npages+63)/64),
		hotm:    make([]uint64, npages*pageWords),
		maxHot:  HotExtents,
	}
	b.ref = make([]uint64, (nbit/b.ext+64)/64)
	raw := make([]byte, npages*PageSize)
	if _, err := f.ReadAt(raw, BitmapOffset); err != nil {
		return nil, fmt.Errorf("meta read bitmap: %w", err)
	}
	for i := range b.mem {
		b.mem[i] = le.Uint64(raw[8*i:])
	}
	// Bits past the volume's end are never set.
	for i := nbit; i < nwords*64; i++ {
		b.mem[i/64] &^= 1 << (i % 64)
	}
	copy(b.disk, b.mem)
	return b, nil
}

// ExtentSize is the volume an activity extent covers: a bit made durable
// makes its whole extent durable, so later first writes to the extent's
// other regions need no bitmap sync (DRBD's activity log extents are as
// large). A restarted node resyncs whole extents; a running one only the
// regions it marked.
const ExtentSize = 4 << 20

// HotExtents is how many activity extents a Bitmap keeps hot at most:
// a restart after a crash resyncs up to HotExtents*ExtentSize (DRBD's
// default al-extents, 1237, is as many).
const HotExtents = 1237

// extentBits returns the bits per activity extent for granularity gran:
// ExtentSize/gran, within one 64-bit word.
func extentBits(gran uint64) uint64 {
	return min(max(ExtentSize/gran, 1), 64)
}

// widen returns word w of the bitmap as the partition holds it: every
// extent holding a set bit set whole, and every hot extent, within the
// volume. Caller holds b.mu.
func (b *Bitmap) widen(w uint64) uint64 {
	v := b.mem[w]
	if v == 0 || b.ext == 1 {
		return v | b.hotm[w]
	}
	group := ^uint64(0) >> (64 - b.ext)
	var out uint64
	for i := uint64(0); i < 64; i += b.ext {
		if v&(group<<i) != 0 {
			out |= group << i
		}
	}
	return b.clip(w, out) | b.hotm[w]
}

// clip clears the bits of word w past the volume's end: they are never
// set.
func (b *Bitmap) clip(w, v uint64) uint64 {
	if end := (w + 1) * 64; end > b.nbit {
		v &= ^uint64(0) >> (end - b.nbit)
	}
	return v
}

// extentMask returns the bits of extent x within its word.
func (b *Bitmap) extentMask(x uint64) (w, m uint64) {
	first := x * b.ext
	w = first / 64
	return w, b.clip(w, (^uint64(0)>>(64-b.ext))<<(first%64))
}

// heat makes the extents of bits first to last hot, the least recently
// used one cooling when there are too many. Caller holds b.mu.
func (b *Bitmap) heat(first, last uint64) {
	if b.maxHot <= 0 {
		return
	}
	for x := first / b.ext; x <= last/b.ext; x++ {
		w, m := b.extentMask(x)
		if b.hotm[w]&m != 0 {
			b.ref[x/64] |= 1 << (x % 64)
			continue
		}
		if len(b.ring) < b.maxHot {
			b.ring = append(b.ring, x)
		} else {
			for { // the clock: a referenced extent gets a second chance
				y := b.ring[b.hand]
				if b.ref[y/64]&(1<<(y%64)) == 0 {
					b.cool(y)
					break
				}
				b.ref[y/64] &^= 1 << (y % 64)
				b.hand = (b.hand + 1) % len(b.ring)
			}
			b.ring[b.hand] = x
			b.hand = (b.hand + 1) % len(b.ring)
		}
		b.hotm[w] |= m
	}
}

// cool makes extent x cold: the partition drops it at the next Sync
// unless a region of it is dirty. Caller holds b.mu.
func (b *Bitmap) cool(x uint64) {
	w, m := b.extentMask(x)
	b.hotm[w] &^= m
	b.ref[x/64] &^= 1 << (x % 64)
	p := w / pageWords
	b.pending[p/64] |= 1 << (p % 64)
}

// SetHotExtents sets how many activity extents stay hot at most (0: none;
// HotExtents by default), cooling the least recently used ones if there
// are more.
func (b *Bitmap) SetHotExtents(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.maxHot = max(n, 0)
	if len(b.ring) <= b.maxHot {
		return
	}
	// Keep the ones the clock would reach last.
	kept := make([]uint64, 0, b.maxHot)
	for i := range len(b.ring) {
		x := b.ring[(b.hand+i)%len(b.ring)]
		if i < len(b.ring)-b.maxHot {
			b.cool(x)
		} else {
			kept = append(kept, x)
		}
	}
	b.ring, b.hand = kept, 0
}

// HotCount returns how many activity extents are hot.
func (b *Bitmap) HotCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.ring)
}

// Granularity returns the volume bytes one bit covers.
func (b *Bitmap) Granularity() uint64 { return b.gran }

// Bits returns the number of bits.
func (b *Bitmap) Bits() uint64 { return b.nbit }

// span returns the bits covering [off, off+n), clamped to the volume, and
// false for an empty range.
func (b *Bitmap) span(off, n uint64) (first, last uint64, ok bool) {
	if n == 0 || off >= b.size {
		return 0, 0, false
	}
	end := min(off+n, b.size) // off < size <= 1<<60: no overflow
	if off+n < off {
		end = b.size
	}
	return off / b.gran, (end - 1) / b.gran, true
}

// MarkDirty sets the bits covering the byte range [off, off+n) and reports
// whether any of them is not yet durable: then the caller must call Sync,
// and wait for it, before issuing the write. One Sync covers every
// MarkDirty before it, so an engine marks a batch of writes and syncs
// once. It does not allocate.
func (b *Bitmap) MarkDirty(off, n uint64) (mustSync bool) {
	return b.mark(off, n, true)
}

// MarkStale is MarkDirty for regions no write touched (a resync asked
// for, a verify's mismatches): it heats no extent, so that the hot ones
// stay those that writes use.
func (b *Bitmap) MarkStale(off, n uint64) (mustSync bool) {
	return b.mark(off, n, false)
}

// mark is MarkDirty; heat makes the extents hot.
func (b *Bitmap) mark(off, n uint64, heat bool) (mustSync bool) {
	first, last, ok := b.span(off, n)
	if !ok {
		return false
	}
	b.mu.Lock()
	if heat {
		b.heat(first, last)
	}
	for w := first / 64; w <= last/64; w++ {
		m := wordMask(w, first, last)
		b.mem[w] |= m
		if b.disk[w]&m != m {
			mustSync = true
			p := w / pageWords
			b.pending[p/64] |= 1 << (p % 64)
		}
	}
	b.mu.Unlock()
	return mustSync
}

// Clear clears the bits covering [off, off+n) in memory (after a resync
// of the range, or when no write to it is in flight and the peer holds
// it). Only whole bits inside the range are cleared. The partition learns
// of it lazily.
func (b *Bitmap) Clear(off, n uint64) {
	g := b.gran
	start := (off + g - 1) / g * g
	if off+n < off || start >= off+n {
		return
	}
	end := off + n
	if end < b.size {
		end = end / g * g // only whole bits
	} else {
		end = b.size
	}
	if end <= start {
		return
	}
	first, last, ok := b.span(start, end-start)
	if !ok {
		return
	}
	b.mu.Lock()
	for w := first / 64; w <= last/64; w++ {
		m := wordMask(w, first, last)
		if b.mem[w]&m != 0 {
			b.mem[w] &^= m
			p := w / pageWords
			b.pending[p/64] |= 1 << (p % 64)
		}
	}
	b.mu.Unlock()
}

// SetAll marks the whole volume dirty (full sync) and makes it durable.
// It heats no extent.
func (b *Bitmap) SetAll() error {
	b.mark(0, b.size, false)
	return b.Sync()
}

// wordMask returns the bits of word w inside [first, last].
func wordMask(w, first, last uint64) uint64 {
	lo, hi := w*64, w*64+63
	m := ^uint64(0)
	if first > lo {
		m &= ^uint64(0) << (first - lo)
	}
	if last < hi {
		m &= ^uint64(0) >> (hi - last)
	}
	return m
}

// Sync writes every bitmap page changed since the last Sync and fsyncs
// the partition once. Bits set before Sync was called are durable when it
// returns nil.
func (b *Bitmap) Sync() error {
	b.syncMu.Lock()
	defer b.syncMu.Unlock()
	b.mu.Lock()
	b.pages = b.pages[:0]
	for i, word := range b.pending {
		for word != 0 {
			j := uint64(bits.TrailingZeros64(word))
			word &^= 1 << j
			b.pages = append(b.pages, uint64(i)*64+j)
		}
		b.pending[i] = 0
	}
	if need := len(b.pages) * PageSize; cap(b.buf) < need {
		b.buf = make([]byte, need)
	}
	b.buf = b.buf[:len(b.pages)*PageSize]
	for k, p := range b.pages {
		page := b.buf[k*PageSize : (k+1)*PageSize]
		for i := range pageWords {
			le.PutUint64(page[8*i:], b.widen(p*pageWords+uint64(i)))
		}
	}
	b.mu.Unlock()
	if len(b.pages) == 0 {
		return nil
	}
	err := b.writePages()
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, p := range b.pages {
		if err != nil { // try again next time
			b.pending[p/64] |= 1 << (p % 64)
			continue
		}
		page := b.buf[k*PageSize : (k+1)*PageSize]
		for i := range pageWords {
			b.disk[p*pageWords+uint64(i)] = le.Uint64(page[8*i:])
		}
	}
	return err
}

// writePages writes the scratch pages, joining consecutive ones, and
// fsyncs.
func (b *Bitmap) writePages() error {
	for k := 0; k < len(b.pages); {
		j := k + 1
		for j < len(b.pages) && b.pages[j] == b.pages[j-1]+1 {
			j++
		}
		off := int64(BitmapOffset) + int64(b.pages[k])*PageSize
		if _, err := b.f.WriteAt(b.buf[k*PageSize:j*PageSize], off); err != nil {
			return fmt.Errorf("meta write bitmap: %w", err)
		}
		k = j
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("meta sync bitmap: %w", err)
	}
	return nil
}

// WriteBack cools every hot extent and persists the lazy clears: the
// partition then holds the dirty regions widened to their extents and
// nothing more, the state of a clean shutdown (an engine's Close, a
// demotion, the end of a resync on its target).
func (b *Bitmap) WriteBack() error {
	b.mu.Lock()
	for _, x := range b.ring {
		b.cool(x)
	}
	b.ring, b.hand = b.ring[:0], 0
	b.mu.Unlock()
	return b.Sync()
}

// Count returns the number of dirty bits.
func (b *Bitmap) Count() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	var n int
	for _, w := range b.mem {
		n += bits.OnesCount64(w)
	}
	return uint64(n)
}

// Dirty reports whether any bit covering [off, off+n) is set.
func (b *Bitmap) Dirty(off, n uint64) bool {
	first, last, ok := b.span(off, n)
	if !ok {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for w := first / 64; w <= last/64; w++ {
		if b.mem[w]&wordMask(w, first, last) != 0 {
			return true
		}
	}
	return false
}

// Runs calls fn with each maximal dirty byte range, in order, clamped to
// the volume, until fn returns false. It holds the bitmap's lock: fn must
// not call the Bitmap.
func (b *Bitmap) Runs(fn func(off, n uint64) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var start uint64
	in := false
	for i := uint64(0); i < b.nbit; i++ {
		w := b.mem[i/64]
		if !in && w == 0 && i%64 == 0 {
			i += 63
			continue
		}
		set := w&(1<<(i%64)) != 0
		switch {
		case set && !in:
			start, in = i, true
		case !set && in:
			in = false
			if !fn(start*b.gran, (i-start)*b.gran) {
				return
			}
		}
	}
	if in {
		off := start * b.gran
		fn(off, b.size-off)
	}
}

// Or sets the bits of a peer's bitmap chunk (the wire's BitmapChunk
// layout: bit i is byte i/8, bit i%8) starting at bit start, a multiple of
// 8. Bits past the volume are ignored. The caller Syncs.
func (b *Bitmap) Or(start uint64, chunk []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, c := range chunk {
		for j := range uint64(8) {
			i := start + uint64(k)*8 + j
			if c&(1<<j) == 0 || i >= b.nbit {
				continue
			}
			w := i / 64
			b.mem[w] |= 1 << (i % 64)
			p := w / pageWords
			b.pending[p/64] |= 1 << (p % 64)
		}
	}
}

// Export copies the bits from bit start (a multiple of 8) into dst in the
// wire's BitmapChunk layout and returns the number of bytes written.
func (b *Bitmap) Export(start uint64, dst []byte) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for k := range dst {
		i := start + uint64(k)*8
		if i >= b.nbit {
			break
		}
		dst[k] = byte(b.mem[i/64] >> (i % 64))
		n++
	}
	return n
}
