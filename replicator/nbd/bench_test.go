package nbd

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkServer measures the server alone: a file-backed Device served
// over a socketpair (as Expose makes it) to an in-test client that keeps
// 32 requests in flight, like the kernel's queue. Beside it, in the same
// run, the same requests made directly on the file by 32 goroutines: the
// baseline. It reports the server's MB/s (the standard figure), the
// file's ("file-MB/s") and their ratio ("x-file"). The file (256 MiB) is
// in the page cache, so this is the frontend's cost, not a disk's.
func BenchmarkServer(b *testing.B) {
	const (
		fileSize = 256 << 20
		depth    = 32
	)
	path := filepath.Join(b.TempDir(), "disk")
	if err := os.WriteFile(path, pattern(1, fileSize), 0o600); err != nil {
		b.Fatal(err)
	}
	dev, err := OpenFile(path, 4096)
	if err != nil {
		b.Fatal(err)
	}
	defer dev.Close()
	for _, w := range []struct {
		name   string
		size   int
		random bool
		write  bool
	}{
		{"4KiB-randread", 4 << 10, true, false},
		{"4KiB-randwrite", 4 << 10, true, true},
		{"1MiB-seqread", 1 << 20, false, false},
		{"1MiB-seqwrite", 1 << 20, false, true},
	} {
		b.Run(w.name, func(b *testing.B) {
			// offset returns the i-th request's offset.
			blocks := uint64(fileSize / w.size)
			offset := func(r *rand.Rand, i uint64) int64 {
				if w.random {
					return int64(r.Uint64N(blocks)) * int64(w.size)
				}
				return int64(i%blocks) * int64(w.size)
			}
			// run makes n requests with depth workers, op doing one.
			run := func(n int, op func(buf []byte, off int64)) time.Duration {
				var next atomic.Uint64
				var wg sync.WaitGroup
				start := time.Now()
				for k := range depth {
					wg.Go(func() {
						r := rand.New(rand.NewPCG(uint64(k), 7))
						buf := pattern(byte(k), w.size)
						for {
							i := next.Add(1) - 1
							if i >= uint64(n) {
								return
							}
							op(buf, offset(r, i))
						}
					})
				}
				wg.Wait()
				return time.Since(start)
			}

			srv, err := NewServer(dev, ServerOptions{})
			if err != nil {
				b.Fatal(err)
			}
			kfd, conn, err := socketPair()
			if err != nil {
				b.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(context.Background(), conn) }()
			c := newClient(b, fdConn(b, kfd))
			nbdOp := func(buf []byte, off int64) {
				var ch <-chan result
				if w.write {
					_, ch = c.send(Request{Type: CmdWrite, Offset: uint64(off), Length: uint32(len(buf))}, buf)
				} else {
					_, ch = c.sendInto(Request{Type: CmdRead, Offset: uint64(off), Length: uint32(len(buf))}, nil, buf)
				}
				if r, ok := <-ch; !ok || r.errno != 0 {
					b.Errorf("request: errno %d, connection up %v", r.errno, ok)
				}
			}
			fileOp := func(buf []byte, off int64) {
				var err error
				if w.write {
					err = dev.WriteAt(buf, off, false)
				} else {
					_, err = dev.ReadAt(buf, off)
				}
				if err != nil {
					b.Error(err)
				}
			}

			b.SetBytes(int64(w.size))
			b.ResetTimer()
			nbdTime := run(b.N, nbdOp)
			b.StopTimer()
			fileTime := run(b.N, fileOp)
			mb := float64(b.N) * float64(w.size) / 1e6
			b.ReportMetric(mb/fileTime.Seconds(), "file-MB/s")
			b.ReportMetric(fileTime.Seconds()/nbdTime.Seconds(), "x-file")

			c.send(Request{Type: CmdDisc}, nil)
			if err := <-served; err != nil {
				b.Fatal(err)
			}
			<-c.done
			c.conn.Close()
		})
	}
}
