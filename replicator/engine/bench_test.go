package engine

import (
	"context"
	"testing"

	"github.com/vigil-ha/vigil/replicator/meta"
)

// BenchmarkWrite4K compares a replicated 4 KiB sync write over TCP
// loopback with the same write on a primary standing alone (the baseline
// of the same run): report the ratio, not the absolute figures.
func BenchmarkWrite4K(b *testing.B) {
	for _, connected := range []bool{false, true} {
		name := map[bool]string{false: "standalone", true: "replicated"}[connected]
		b.Run(name, func(b *testing.B) {
			gens := meta.Generations{Current: 0xabc}
			p := newNode(b, Primary, 1, gens)
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
		})
	}
}
