//go:build linux && vmtest

package drbd

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"flag"
	"fmt"
	"hash/crc32"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/blockbench"
	"github.com/vigil-ha/vigil/replicator/engine"
	"github.com/vigil-ha/vigil/replicator/mirror"
)

// The benchmark's settings, as test flags (make bench-vm passes
// BENCH_VM_FLAGS after -args).
var (
	benchMiB      = flag.Int("benchvm.mib", 96, "size of the replicated volume in MiB (four such files live in the VM's tmpfs, half its 1 GiB)")
	benchRounds   = flag.Int("benchvm.rounds", 3, "interleaved rounds of DRBD and Vigil runs")
	benchRandTime = flag.Duration("benchvm.rand-time", 30*time.Second, "random 4 KiB sync writes per variant, split over the rounds")
	benchSeqQD    = flag.Int("benchvm.seq-qd", 4, "sequential writes in flight (make bench-mirror's default)")
	benchSeed     = flag.Uint64("benchvm.seed", 1, "seed of the random offsets")
)

// vigilPort is the Vigil mirror connect's port on the looped link.
const vigilPort = 29051

// target is one replicated block device under test.
type target struct {
	name string
	dev  *blockbench.Device
	seq  []float64 // MB/s of each round
	rand blockbench.Histogram
	n    int // random writes
}

// BenchmarkMirrorVM is make bench-vm: DRBD 8.4 in protocol C against
// Vigil's mirror disk in sync mode, on the same looped veth, each on loop
// devices over files of the VM's tmpfs, each written with O_DIRECT through
// its kernel block device (/dev/drbd0, /dev/nbdN) with make bench-mirror's
// workloads. It runs its work once, whatever b.N (run it with
// -benchtime 1x), and prints the figures, ending with two bench-vm: lines.
//
// Vigil runs as vigild runs it (replicator/mirror: the engine, the mirror
// connect, the NBD frontend), both nodes in this process: DRBD's two ends
// share one kernel and its sockets live in the initial namespace, so
// Vigil's share the same namespace and veth, and no daemon's control plane
// (heartbeat, status) competes for the VM's two CPUs that DRBD's kernel
// threads do not have either. The benchmark's writer is a separate
// goroutine blocked in the kernel, as fio would be.
func BenchmarkMirrorVM(b *testing.B) {
	requireVM(b, "drbd", "loop", "veth", "nbd")
	if *benchMiB < 16 || *benchRounds < 1 || *benchRandTime <= 0 || *benchSeqQD < 1 {
		b.Fatalf("bad flags: -benchvm.mib %d (at least 16), -benchvm.rounds %d, -benchvm.rand-time %v, -benchvm.seq-qd %d",
			*benchMiB, *benchRounds, *benchRandTime, *benchSeqQD)
	}
	size := int64(*benchMiB) << 20
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	loopedLink(b)
	dir := b.TempDir()
	// Four partitions and two small ones, in the VM's memory.
	need := 4*(size+1<<20) + 2*(4<<20)
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		b.Fatal(err)
	}
	if free := int64(fs.Bavail) * fs.Bsize; free < need {
		b.Fatalf("-benchvm.mib %d needs %d MiB in %s, which has %d MiB free", *benchMiB, need>>20, dir, free>>20)
	}
	logf := func(format string, args ...any) { fmt.Printf("benchvm: "+format+"\n", args...) }

	// DRBD: internal metadata at the end of each backing device, which is
	// 1 MiB larger than the volume. Both devices are zeros, so the
	// initial sync is skipped as DRBD documents it.
	start := time.Now()
	p := newDRBDPair(b, loopDevice(b, sparseFile(b, dir, "drbd-a", size+1<<20)), loopDevice(b, sparseFile(b, dir, "drbd-b", size+1<<20)), drbdOptions{})
	p.connected()
	p.skipInitialSync()
	p.primary(0, false)
	logf("DRBD %s: %s connected in protocol C over %s-%s, initial sync skipped (%v)",
		drbdVersion(), p.device(0), endA, endB, time.Since(start).Round(time.Millisecond))

	// Vigil: the mirror disk on its own loop devices, node 0 primary.
	start = time.Now()
	vp := newVigilPair(b, size, dir)
	vdev := vp.promote(ctx)
	logf("Vigil: %s exposed by node 0, sync mode, connected over %s-%s after a full sync of %d MiB (%v)",
		vdev, endA, endB, *benchMiB, time.Since(start).Round(time.Millisecond))

	targets := []*target{{name: "drbd"}, {name: "vigil-sync"}}
	for i, path := range []string{p.device(0), vdev} {
		d, err := blockbench.OpenDevice(path)
		if err != nil {
			b.Fatal(err)
		}
		defer d.Close()
		if d.Size() < size {
			b.Fatalf("%s has %d bytes, less than the volume's %d", path, d.Size(), size)
		}
		targets[i].dev = d
		t0 := time.Now()
		// Known data everywhere first: every page of the backing files
		// exists before anything is measured.
		if err := blockbench.Fill(ctx, d, blockbench.FillOptions{Region: blockbench.Region{Size: size}, Seed: 1}); err != nil {
			b.Fatalf("fill %s: %v", path, err)
		}
		logf("%s: %s filled in %v", targets[i].name, path, time.Since(t0).Round(time.Millisecond))
	}

	logf("the VM's CPU, for context: %s", cpuRates())

	b.ResetTimer()
	rounds := *benchRounds
	for r := range rounds {
		order := slices.Clone(targets)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, tg := range order {
			tx := linkTxBytes(b, endA)
			res, err := blockbench.Sequential(ctx, tg.dev, blockbench.SeqOptions{Region: blockbench.Region{Size: size}, BlockSize: 1 << 20, QueueDepth: *benchSeqQD})
			if err != nil {
				b.Fatalf("%s: %v", tg.name, err)
			}
			tg.seq = append(tg.seq, res.MBps())
			logf("round %d: %s sequential 1 MiB QD%d: %.1f MB/s (%v, flush %v; %.0f MB crossed the veth)",
				r+1, tg.name, *benchSeqQD, res.MBps(), res.Elapsed.Round(time.Millisecond), res.Flush.Round(time.Millisecond),
				float64(linkTxBytes(b, endA)-tx)/1e6)
		}
		for _, tg := range order {
			res, err := blockbench.RandomSync(ctx, tg.dev, blockbench.RandOptions{
				Region: blockbench.Region{Size: size}, BlockSize: 4096,
				Duration: *benchRandTime / time.Duration(rounds), Seed: *benchSeed + uint64(r),
			})
			if err != nil {
				b.Fatalf("%s: %v", tg.name, err)
			}
			tg.rand.Merge(res.Latency)
			tg.n += res.Writes
			logf("round %d: %s random 4 KiB sync QD1: %.0f IOPS, %s", r+1, tg.name, res.IOPS(), res.Latency.Summarize())
		}
	}
	b.StopTimer()

	for _, tg := range targets {
		logf("%s: sequential median %.1f MB/s of %v; random 4 KiB sync %d writes, %s",
			tg.name, median(tg.seq), fmtRates(tg.seq), tg.n, tg.rand.Summarize())
	}
	d, v := targets[0], targets[1]
	logf("vigil-sync/drbd: sequential %.2f, random p99 %.2f",
		median(v.seq)/median(d.seq), float64(v.rand.Quantile(0.99))/float64(d.rand.Quantile(0.99)))
	b.ReportMetric(median(d.seq), "drbd-seq-MBps")
	b.ReportMetric(median(v.seq), "vigil-seq-MBps")
	b.ReportMetric(float64(d.rand.Quantile(0.99).Microseconds()), "drbd-rand4k-p99-us")
	b.ReportMetric(float64(v.rand.Quantile(0.99).Microseconds()), "vigil-rand4k-p99-us")
	fmt.Printf("bench-vm: seq-MBps drbd=%.0f vigil-sync=%.0f\n", median(d.seq), median(v.seq))
	fmt.Printf("bench-vm: rand4k-p99-us drbd=%.0f vigil-sync=%.0f\n", us(d.rand.Quantile(0.99)), us(v.rand.Quantile(0.99)))
}

// vigilPair is Vigil's mirror disk between two nodes of this process:
// node 0 on addrA (it dials), node 1 on addrB (it listens), each on its
// own loop devices for the data and cluster partitions.
type vigilPair struct {
	t     testing.TB
	disks [2]*mirror.Disk
	log   *lockedBuffer
}

func newVigilPair(t testing.TB, size int64, dir string) *vigilPair {
	t.Helper()
	key := make([]byte, 32)
	rand.Read(key)
	vp := &vigilPair{t: t, log: &lockedBuffer{}}
	addrs := [2]netip.Addr{addrA, addrB}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, d := range vp.disks {
			if d == nil {
				continue
			}
			if err := d.Close(); err != nil {
				t.Errorf("close %s: %v", d.Name(), err)
			}
		}
		if t.Failed() {
			t.Logf("mirror log:\n%s", vp.log.String())
		}
	})
	for i := range vp.disks {
		cfg := mirror.Config{
			Name:       fmt.Sprintf("bench%d", i),
			DataPath:   loopDevice(t, sparseFile(t, dir, fmt.Sprintf("vigil-%d.data", i), size)),
			MetaPath:   loopDevice(t, sparseFile(t, dir, fmt.Sprintf("vigil-%d.meta", i), 4<<20)),
			VolumeUUID: mirror.VolumeUUID("vmdrbd", "bench"),
			Node:       uint8(i), Peer: uint8(1 - i),
			Local:      netip.AddrPortFrom(addrs[i], vigilPort),
			PeerAddr:   netip.AddrPortFrom(addrs[1-i], vigilPort),
			ClusterKey: key,
			Mode:       engine.SyncMode,
			// As make bench-mirror: a flush of many dirty pages on a slow
			// machine takes seconds; no timeout may cut the mirror.
			Timeout: 30 * time.Second,
			Log:     slog.New(slog.NewTextHandler(vp.log, nil)),
		}
		if i == 0 {
			cfg.Frontend = mirror.NBD{Cluster: "vmdrbd"}
		}
		d, err := mirror.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		vp.disks[i] = d
		wg.Go(func() { d.Run(ctx) })
	}
	return vp
}

// promote makes node 0 primary once both are connected, waits for the
// initial full sync and returns the exposed device.
func (vp *vigilPair) promote(ctx context.Context) string {
	vp.t.Helper()
	vp.wait("both nodes connected", func(a, b engine.Status) bool {
		return a.State == engine.Connected && b.State == engine.Connected
	})
	if err := vp.disks[0].Promote(ctx, false, false); err != nil {
		vp.t.Fatalf("promote: %v", err)
	}
	vp.wait("node 0 primary and node 1 in sync", func(a, b engine.Status) bool {
		return a.Role == engine.Primary && a.State == engine.Connected && b.State == engine.Connected && b.Consistent && b.InSyncPercent == 100
	})
	dev := vp.disks[0].Status().Device
	if dev == "" {
		vp.t.Fatal("node 0 is primary but exposes no device")
	}
	return dev
}

func (vp *vigilPair) wait(what string, cond func(a, b engine.Status) bool) {
	vp.t.Helper()
	deadline := time.Now().Add(vmTimeout)
	for {
		a, b := vp.disks[0].Status().Engine, vp.disks[1].Status().Engine
		if cond(a, b) {
			return
		}
		if time.Now().After(deadline) {
			vp.t.Fatalf("timed out after %v waiting for Vigil: %s; node 0 %s %s, node 1 %s %s (%.1f%% in sync)",
				vmTimeout, what, a.Role, a.State, b.Role, b.State, b.InSyncPercent)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cpuRates measures, on 16 MiB, what the emulated CPU does per byte that
// Vigil's data path needs and DRBD's (without data-integrity-alg) does
// not: AES-GCM (the mirror connect's per-frame GMAC is GCM's hash) and
// CRC-32C (each frame's checksum), beside a plain copy.
func cpuRates() string {
	const n = 16 << 20
	src, dst := make([]byte, n), make([]byte, n+64)
	rand.Read(src)
	rate := func(f func()) float64 {
		t0 := time.Now()
		f()
		return blockbench.MBps(n, time.Since(t0))
	}
	blk, _ := aes.NewCipher(make([]byte, 16))
	gcm, _ := cipher.NewGCM(blk)
	nonce := make([]byte, gcm.NonceSize())
	var sum uint32
	tab := crc32.MakeTable(crc32.Castagnoli)
	return fmt.Sprintf("copy %.0f MB/s, AES-GCM seal %.0f MB/s, CRC-32C %.0f MB/s",
		rate(func() { copy(dst, src) }),
		rate(func() { gcm.Seal(dst[:0], nonce, src, nil) }),
		rate(func() { sum = crc32.Update(sum, tab, src) }))
}

// drbdVersion is the module's version, from /proc/drbd's first line.
func drbdVersion() string {
	b, err := os.ReadFile("/proc/drbd")
	if err != nil {
		return "(unknown version)"
	}
	if f := strings.Fields(string(b)); len(f) >= 2 && f[0] == "version:" {
		return f[1]
	}
	return "(unknown version)"
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}

func fmtRates(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.1f", x)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
