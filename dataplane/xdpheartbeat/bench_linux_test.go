package xdpheartbeat

import (
	"errors"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/dataplane/heartbeat"
)

// BenchmarkXDPProbe measures the fast path's cost per probe with
// BPF_PROG_TEST_RUN, for the smallest and the largest probe, beside the
// userspace Codec decoding the same probe (the baseline).
//
//   - answer: a probe verified, copied to the ring buffer and turned into a
//     reply. A reader blocks on the ring buffer, as the daemon would, so
//     every probe also pays for waking it up. The program
//     rewrites its input, so every run is its own BPF_PROG_TEST_RUN with
//     repeat 1; ns/op is the kernel's own timing of the run, which includes
//     one clock read, not the system call.
//   - bad_tag: the same probe with a broken tag, verified and dropped: the
//     input stays as it was, so one BPF_PROG_TEST_RUN repeats it b.N times.
//   - userspace_decode: heartbeat.Codec.Decode of the probe, in this process.
func BenchmarkXDPProbe(b *testing.B) {
	f := loadOnLoopback(b)
	go func() {
		buf := make([]byte, heartbeat.MaxPacketSize)
		for {
			if _, err := f.ReadProbe(buf); errors.Is(err, os.ErrClosed) {
				return
			}
		}
	}()
	c := heartbeat.NewCodec(testKey)
	src := netip.AddrPortFrom(addrA, 40001)
	for _, size := range []struct {
		name    string
		payload int
	}{{"min", 0}, {"max", heartbeat.MaxPayload}} {
		probe := encode(b, c, testProbe(serverA, 0, 1, size.payload))
		in := frame(src, hbB, probe)
		bad := frame(src, hbB, append(probe[:len(probe)-1:len(probe)-1], probe[len(probe)-1]^1))

		b.Run("answer/"+size.name, func(b *testing.B) {
			var total time.Duration
			for range b.N {
				ret, d, err := f.objs.VigilHbXdp.Benchmark(in, 1, nil)
				if err != nil || ret != xdpTx {
					b.Fatalf("verdict %d, %v", ret, err)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
		})
		b.Run("bad_tag/"+size.name, func(b *testing.B) {
			ret, d, err := f.objs.VigilHbXdp.Benchmark(bad, b.N, nil)
			if err != nil || ret != xdpDrop {
				b.Fatalf("verdict %d, %v", ret, err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/op")
		})
		b.Run("userspace_decode/"+size.name, func(b *testing.B) {
			for range b.N {
				if _, err := c.Decode(probe); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
