package blockbench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// ErrOptions reports workload options that do not describe a workload.
var ErrOptions = errors.New("blockbench: bad options")

// Region is the byte range [Offset, Offset+Size) a workload writes to.
// Both must be multiples of Align, Size positive.
type Region struct {
	Offset, Size int64
}

func (r Region) check(bs int) error {
	switch {
	case bs <= 0 || bs%Align != 0:
		return fmt.Errorf("%w: block size %d is not a positive multiple of %d", ErrOptions, bs, Align)
	case r.Offset < 0 || r.Offset%Align != 0:
		return fmt.Errorf("%w: offset %d is not a nonnegative multiple of %d", ErrOptions, r.Offset, Align)
	case r.Size < int64(bs) || r.Size%int64(bs) != 0:
		return fmt.Errorf("%w: size %d is not a positive multiple of the block size %d", ErrOptions, r.Size, bs)
	case r.Offset > 1<<62-r.Size:
		return fmt.Errorf("%w: offset %d + size %d overflows", ErrOptions, r.Offset, r.Size)
	}
	return nil
}

// SeqOptions configures Sequential.
type SeqOptions struct {
	// Region is written once, from its start, in blocks of BlockSize.
	Region
	// BlockSize is the size of each write (default 1 MiB).
	BlockSize int
	// QueueDepth is the number of writes in flight (default 1). Each of
	// QueueDepth writers takes the next block in order, as an
	// asynchronous engine with that many requests outstanding would.
	QueueDepth int
	// Sync makes every write a sync (FUA) write.
	Sync bool
	// NoFlush leaves out the final Flush. By default the run ends with
	// one, and its time counts.
	NoFlush bool
}

// SeqResult is what Sequential measured.
type SeqResult struct {
	Bytes  int64
	Writes int
	// Elapsed runs from the first write to the end of the final Flush.
	Elapsed time.Duration
	// Flush is the final Flush's share of Elapsed.
	Flush time.Duration
	// Latency holds each write's latency.
	Latency *Histogram
}

// MBps returns the throughput in megabytes (10^6 bytes) per second.
func (r SeqResult) MBps() float64 { return MBps(r.Bytes, r.Elapsed) }

// MBps returns n bytes over d in megabytes (10^6 bytes) per second, 0 for
// a nonpositive d.
func MBps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// PerSecond returns n events over d per second (IOPS), 0 for a
// nonpositive d.
func PerSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// Sequential writes the region once in order, QueueDepth writes at a
// time, then flushes. Every writer owns one aligned buffer of random bytes
// whose first 8 bytes are the block's offset, so no two blocks are alike
// and nothing can compress or deduplicate them away. It stops at the
// first error, or when ctx ends.
func Sequential(ctx context.Context, t Target, o SeqOptions) (SeqResult, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 1 << 20
	}
	if o.QueueDepth == 0 {
		o.QueueDepth = 1
	}
	if err := o.check(o.BlockSize); err != nil {
		return SeqResult{}, err
	}
	if o.QueueDepth < 1 {
		return SeqResult{}, fmt.Errorf("%w: queue depth %d", ErrOptions, o.QueueDepth)
	}
	blocks := o.Size / int64(o.BlockSize)
	qd := int(min(int64(o.QueueDepth), blocks))
	bufs := make([][]byte, qd)
	hists := make([]Histogram, qd)
	for i := range bufs {
		bufs[i] = AlignedBuffer(o.BlockSize)
		fillRandom(bufs[i], rand.New(rand.NewPCG(uint64(i), uint64(o.Offset))))
	}

	var (
		next    atomic.Int64
		errOnce sync.Once
		firstEr error
		stop    atomic.Bool
		wg      sync.WaitGroup
	)
	fail := func(err error) {
		errOnce.Do(func() { firstEr = err })
		stop.Store(true)
	}
	start := time.Now()
	for w := range qd {
		wg.Go(func() {
			buf, h := bufs[w], &hists[w]
			for !stop.Load() {
				i := next.Add(1) - 1
				if i >= blocks {
					return
				}
				if err := ctx.Err(); err != nil {
					fail(err)
					return
				}
				off := o.Offset + i*int64(o.BlockSize)
				binary.LittleEndian.PutUint64(buf, uint64(off))
				t0 := time.Now()
				if err := t.WriteAt(buf, off, o.Sync); err != nil {
					fail(fmt.Errorf("sequential write at %d: %w", off, err))
					return
				}
				h.Record(time.Since(t0))
			}
		})
	}
	wg.Wait()
	res := SeqResult{Latency: &Histogram{}}
	for i := range hists {
		res.Latency.Merge(&hists[i])
	}
	res.Writes = int(res.Latency.Count())
	res.Bytes = int64(res.Writes) * int64(o.BlockSize)
	if firstEr != nil {
		res.Elapsed = time.Since(start)
		return res, firstEr
	}
	if !o.NoFlush {
		t0 := time.Now()
		if err := t.Flush(); err != nil {
			return res, fmt.Errorf("sequential flush: %w", err)
		}
		res.Flush = time.Since(t0)
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// RandOptions configures RandomSync.
type RandOptions struct {
	// Region is where the writes land, on BlockSize boundaries.
	Region
	// BlockSize is the size of each write (default 4 KiB).
	BlockSize int
	// Duration bounds the run; Writes bounds the number of writes. At
	// least one must be set; the run ends at whichever comes first.
	Duration time.Duration
	Writes   int
	// Seed picks the offsets: the same seed gives the same sequence.
	Seed uint64
	// Observe, if set, is called after each write with its offset and
	// latency, before the next write starts: its time counts in Elapsed
	// (keep it cheap) but in no write's latency.
	Observe func(off int64, latency time.Duration)
}

// RandResult is what RandomSync measured.
type RandResult struct {
	Writes  int
	Elapsed time.Duration
	// Latency holds each write's latency.
	Latency *Histogram
}

// IOPS returns the writes per second.
func (r RandResult) IOPS() float64 { return PerSecond(r.Writes, r.Elapsed) }

// RandomSync writes BlockSize blocks at uniformly random aligned offsets
// of the region, one at a time (queue depth 1), each a sync (FUA) write,
// and records every write's latency. The data is random, with the offset
// in its first 8 bytes. It stops at the first error, or when ctx ends.
func RandomSync(ctx context.Context, t Target, o RandOptions) (RandResult, error) {
	if o.BlockSize == 0 {
		o.BlockSize = 4096
	}
	if err := o.check(o.BlockSize); err != nil {
		return RandResult{}, err
	}
	if o.Duration <= 0 && o.Writes <= 0 {
		return RandResult{}, fmt.Errorf("%w: neither a duration nor a number of writes", ErrOptions)
	}
	rng := rand.New(rand.NewPCG(o.Seed, 0x9e3779b97f4a7c15))
	buf := AlignedBuffer(o.BlockSize)
	fillRandom(buf, rng)
	blocks := uint64(o.Size / int64(o.BlockSize))
	res := RandResult{Latency: &Histogram{}}
	start := time.Now()
	var deadline time.Time
	if o.Duration > 0 {
		deadline = start.Add(o.Duration)
	}
	for o.Writes <= 0 || res.Writes < o.Writes {
		if err := ctx.Err(); err != nil {
			res.Elapsed = time.Since(start)
			return res, err
		}
		off := o.Offset + int64(rng.Uint64N(blocks))*int64(o.BlockSize)
		binary.LittleEndian.PutUint64(buf, uint64(off))
		t0 := time.Now()
		if err := t.WriteAt(buf, off, true); err != nil {
			res.Elapsed = time.Since(start)
			return res, fmt.Errorf("random sync write at %d: %w", off, err)
		}
		now := time.Now()
		res.Latency.Record(now.Sub(t0))
		res.Writes++
		if o.Observe != nil {
			o.Observe(off, now.Sub(t0))
		}
		if !deadline.IsZero() && !now.Before(deadline) {
			break
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// FillOptions configures Fill.
type FillOptions struct {
	// Region is written once, in order.
	Region
	// BlockSize is the size of each write (default 1 MiB).
	BlockSize int
	// Seed determines the data: FillBlock(Seed, off, ...) is what Fill
	// writes at off.
	Seed uint64
}

// Fill writes the whole region with data derived from Seed and the
// offset, then flushes: before a measurement, it gives every block of a
// file real, allocated extents (no unwritten-extent conversions in the
// way) and every block of a device known contents. Two targets filled
// with the same seed and region hold the same bytes there.
func Fill(ctx context.Context, t Target, o FillOptions) error {
	if o.BlockSize == 0 {
		o.BlockSize = 1 << 20
	}
	if err := o.check(o.BlockSize); err != nil {
		return err
	}
	buf := AlignedBuffer(o.BlockSize)
	for off := o.Offset; off < o.Offset+o.Size; off += int64(o.BlockSize) {
		if err := ctx.Err(); err != nil {
			return err
		}
		FillBlock(o.Seed, off, buf)
		if err := t.WriteAt(buf, off, false); err != nil {
			return fmt.Errorf("fill at %d: %w", off, err)
		}
	}
	if err := t.Flush(); err != nil {
		return fmt.Errorf("fill flush: %w", err)
	}
	return nil
}

// FillBlock puts into p the bytes Fill writes at byte offset off with
// seed: a pseudo-random stream keyed by both.
func FillBlock(seed uint64, off int64, p []byte) {
	fillRandom(p, rand.New(rand.NewPCG(seed, uint64(off))))
}

// fillRandom fills p with bytes from r.
func fillRandom(p []byte, r *rand.Rand) {
	i := 0
	for ; i+8 <= len(p); i += 8 {
		binary.LittleEndian.PutUint64(p[i:], r.Uint64())
	}
	if i < len(p) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], r.Uint64())
		copy(p[i:], b[:])
	}
}
