package engine

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vigil-ha/vigil/replicator/meta"
)

// BenchmarkWrite4K compares a replicated 4 KiB write over TCP loopback,
// sync and async, with the same write on a primary standing alone (the
// baseline of the same run): report the ratios, not the absolute figures.
// The async case's queue is bounded (4096 writes / 64 MiB by default): a
// run longer than that measures the peer's pace, or falls back to the
// bitmap (reported as fallbacks/op > 0). Its final Flush is not timed.
func BenchmarkWrite4K(b *testing.B) {
	for _, mode := range []string{"standalone", "replicated", "async"} {
		connected := mode != "standalone"
		b.Run(mode, func(b *testing.B) {
			gens := meta.Generations{Current: 0xabc}
			p := newNodeCfg(b, Primary, 1, gens, func(c *Config) {
				if mode == "async" {
					c.Mode = AsyncMode
				}
			})
			if connected {
				s := newNode(b, Secondary, 2, gens)
				if perr, serr := connect(b, p, s); perr != nil || serr != nil {
					b.Fatal(perr, serr)
				}
			}
			buf := make([]byte, 4096)
			ctx := context.Background()
			b.SetBytes(4096)
			i := 0
			for b.Loop() {
				if err := p.e.Write(ctx, uint64(i%(volSize/4096))*4096, buf, false); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := p.e.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			if mode == "async" {
				b.ReportMetric(float64(p.e.Status().Fallbacks)/float64(b.N), "fallbacks/op")
			}
		})
	}
}

// BenchmarkVerify compares an online verify of the whole volume over TCP
// loopback (both sides read and hash their copy, chunks pipelined) with
// the local read and SHA-256 of the same chunks: the baseline of the same
// run. Report the ratio.
func BenchmarkVerify(b *testing.B) {
	gens := meta.Generations{Current: 0xabc}
	p := newNode(b, Primary, 1, gens)
	s := newNode(b, Secondary, 2, gens)
	mustConnect(b, p, s)
	ctx := context.Background()
	buf := make([]byte, 1<<20)
	for off := 0; off < volSize; off += len(buf) {
		for i := range buf {
			buf[i] = byte(off + i*7)
		}
		if err := p.e.Write(ctx, uint64(off), buf, false); err != nil {
			b.Fatal(err)
		}
	}
	if err := p.e.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("local-sha256", func(b *testing.B) {
		b.SetBytes(volSize)
		chunk := buf[:minVerifyChunk]
		for b.Loop() {
			for off := int64(0); off < volSize; off += minVerifyChunk {
				if _, err := p.data.ReadAt(chunk, off); err != nil {
					b.Fatal(err)
				}
				_ = sha256.Sum256(chunk)
			}
		}
	})
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(volSize)
		for b.Loop() {
			res, err := p.e.Verify(ctx, VerifyOptions{})
			if err != nil || res.Mismatched != 0 {
				b.Fatal(res, err)
			}
		}
	})
}

// BenchmarkWrite1MQD4 is bench-mirror's sequential workload in process:
// 1 MiB writes, four in flight, standalone (the baseline of the same run)
// and replicated over TCP loopback in sync mode.
func BenchmarkWrite1MQD4(b *testing.B) {
	for _, mode := range []string{"standalone", "replicated"} {
		b.Run(mode, func(b *testing.B) {
			gens := meta.Generations{Current: 0xabc}
			p := newNode(b, Primary, 1, gens)
			if mode == "replicated" {
				s := newNode(b, Secondary, 2, gens)
				if perr, serr := connect(b, p, s); perr != nil || serr != nil {
					b.Fatal(perr, serr)
				}
			}
			ctx := context.Background()
			b.SetBytes(1 << 20)
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ResetTimer()
			for range 4 {
				buf := make([]byte, 1<<20)
				wg.Go(func() {
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						if err := p.e.Write(ctx, uint64(i%(volSize>>20))<<20, buf, false); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			if err := p.e.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
