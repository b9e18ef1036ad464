//go:build linux && vmtest

package drbd

import (
	"bytes"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/blockbench"
)

// baselineSize is each backing device of the quick test: DRBD's internal
// metadata takes a little of its end.
const baselineSize = 16 << 20

// TestDRBDBaseline sets DRBD 8.4 up as the benchmark does, on small
// devices: the two devices connect over the looped veth, a forced primary
// syncs its peer (the data crosses the veth), a sync write on the primary
// is on the secondary's disk as soon as it completes (protocol C), and it
// reads back through DRBD on the other side once the roles are switched.
func TestDRBDBaseline(t *testing.T) {
	requireVM(t, "drbd", "loop", "veth")
	loopedLink(t)
	dir := t.TempDir()
	backA := loopDevice(t, sparseFile(t, dir, "a", baselineSize))
	fileB := sparseFile(t, dir, "b", baselineSize)
	backB := loopDevice(t, fileB)
	p := newDRBDPair(t, backA, backB, drbdOptions{ResyncKiBps: 100 << 10})
	p.connected()
	t.Logf("%s (%s) and %s (%s) connected over %s-%s", p.device(0), backA, p.device(1), backB, endA, endB)

	// The initial full sync, from a forced primary.
	tx := linkTxBytes(t, endA)
	start := time.Now()
	p.primary(0, true)
	a, _ := p.waitFor("primary 0 UpToDate/UpToDate", func(a, b minorState) bool {
		return a.Conn == "Connected" && a.Role == "Primary" && a.Disk == "UpToDate" && a.PeerDisk == "UpToDate" && b.Disk == "UpToDate"
	})
	sent := linkTxBytes(t, endA) - tx
	t.Logf("full sync in %v: %s sent %d bytes; %s is %+v", time.Since(start).Round(time.Millisecond), endA, sent, p.device(0), a)
	if sent < baselineSize*9/10 {
		t.Fatalf("the full sync of %d bytes sent only %d bytes through %s: it did not cross the veth", baselineSize, sent, endA)
	}

	// A sync write on the primary.
	dev, err := blockbench.OpenDevice(p.device(0))
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	const off, size = 5 << 20, 1 << 20
	buf := blockbench.AlignedBuffer(size)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range buf {
		buf[i] = byte(rng.Uint32())
	}
	if err := dev.WriteAt(buf, off, true); err != nil {
		t.Fatalf("write on %s: %v", p.device(0), err)
	}
	// Protocol C: completed means on the peer's disk too; the secondary's
	// loop device wrote it to its file.
	got := make([]byte, size)
	f, err := os.Open(fileB)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf) {
		t.Fatalf("the secondary's disk does not hold the %d bytes written at %d on the primary", size, off)
	}
	dev.Close()

	// Switch roles and read through DRBD on the other side.
	p.secondary(0)
	p.primary(1, false)
	p.waitFor("primary 1", func(a, b minorState) bool { return b.Role == "Primary" && b.Disk == "UpToDate" && a.Disk == "UpToDate" })
	rd, err := os.OpenFile(p.device(1), os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	clear(got)
	if _, err := rd.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf) {
		t.Fatalf("%s does not read back the %d bytes written at %d on %s", p.device(1), size, off, p.device(0))
	}
	t.Logf("a %d-byte sync write on %s was on the secondary's disk on completion and reads back through %s as primary", size, p.device(0), p.device(1))
}
