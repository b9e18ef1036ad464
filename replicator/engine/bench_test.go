package engine

import (
	"context"
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
