//go:build linux && vmtest

package mirror

import (
	"fmt"
	mrand "math/rand/v2"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/internal/blockbench"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/vmtests/internal/vigiltest"
)

// crossAZ is the link the suite runs on (vigiltest.CrossAZ).
var crossAZ = vigiltest.CrossAZ

// defaultCrossAZDuration is how long the writes run on the link;
// VIGIL_MIRROR_NETEM_DURATION (a Go duration) changes it.
const defaultCrossAZDuration = 60 * time.Second

// TestMirrorCrossAZ writes fsynced files to the mounted mirror disk in
// sync mode for a minute while netem makes the veth a cross-AZ link and the
// heartbeat runs with the cross-az profile (the cluster is deployed, its
// initial sync done, with the conservative one). Every second the group must be
// online on node1 on both nodes' view, with no failover; the mirror must
// stay connected, or come back without a full resync; at the end it is in
// sync, verify finds both copies equal and every file is intact. A peer
// briefly seen down without a failover (the VM is emulated and its two
// CPUs are busy replicating) is counted and reported, not failed.
func TestMirrorCrossAZ(t *testing.T) {
	testutil.RequireRoot(t)
	requireNBD(t)
	duration := defaultCrossAZDuration
	if v := os.Getenv("VIGIL_MIRROR_NETEM_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("VIGIL_MIRROR_NETEM_DURATION: %v", err)
		}
		duration = d
	}
	attrs := crossAZ
	// The cluster is deployed first: the initial full sync and mkfs, a
	// one-time step that keeps the VM's two emulated CPUs busy for tens of
	// seconds, run with the conservative profile. Then the group stops and
	// both daemons restart with the cross-az profile, and find their
	// copies in sync. Half the usual partition halves the final verify's
	// work too.
	c := newCluster(t, clusterOptions{Profile: "conservative", Netem: &attrs, PartitionSize: 32 << 20})
	c.start(0)
	c.start(1)
	c.groupOnlineOn(0, 0, 1)
	c.primaryMounted(0, "connected")
	c.inSync(0, 1)
	c.mustCtl(0, "group", "stop", groupName)
	c.mirrorIs(0, "secondary, unexposed", func(m api.Mirror) bool { return m.Role == "secondary" && m.Device == "" })
	c.stop(0)
	c.stop(1)
	c.configure("cross-az")
	c.start(0)
	c.start(1)
	c.groupOnlineOn(0, 0, 1)
	m := c.primaryMounted(0, "connected")
	checkMounted(t, m.Device, c.mountPoint(0))
	p0, _ := c.inSync(0, 1)
	t.Logf("deployed with the conservative profile, restarted with cross-az: %s mounted again, verdict %q", m.Device, p0.Verdict)
	first, err := c.status(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("heartbeat %s; netem delay %v ± %v, loss %.0f%% each way; writing to %s on %s for %v",
		first.Heartbeat, time.Duration(crossAZ.Latency)*time.Microsecond, time.Duration(crossAZ.Jitter)*time.Microsecond,
		crossAZ.Loss, c.mountPoint(0), m.Device, duration)

	// The writer: files of 4 to 64 KiB, each fsynced with its directory.
	files := newFileSet()
	var lat blockbench.Histogram
	var written int64
	stop := make(chan struct{})
	werr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 3))
		for k := 0; ; k++ {
			select {
			case <-stop:
				return
			default:
			}
			// 256 names, rewritten in turn: at most 16 MiB of the disk.
			name := fmt.Sprintf("z-%03d", k%256)
			size := 4096 + rng.IntN(60*1024)
			t0 := time.Now()
			sum, err := writeFile(c.mountPoint(0), name, size, rng)
			if err != nil {
				werr <- err
				return
			}
			lat.Record(time.Since(t0))
			written += int64(size)
			files.add(name, sum)
		}
	})
	stopWriter := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriter()

	// Watch every second.
	states := map[string]int{}
	breaks, notUp := 0, 0
	last := "connected"
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(duration)
	checks := 0
watch:
	for {
		select {
		case <-end:
			break watch
		case err := <-werr:
			t.Fatalf("writer: %v", err)
		case <-tick.C:
		}
		checks++
		for i := range c.nodes {
			s, err := c.status(i)
			if err != nil {
				t.Fatalf("%s: %v", c.names[i], err)
			}
			if s.LastFailover != nil {
				t.Fatalf("%s: a failover on a healthy link: %+v", c.names[i], *s.LastFailover)
			}
			for _, n := range s.Nodes {
				if !n.Self && n.State != api.NodeUp {
					notUp++
					t.Logf("%s sees %s %s (%s)", c.names[i], n.Name, n.State, n.Reason)
				}
			}
			if g := s.Groups[0]; g.State != api.StateOnline || g.Owner != "node1" {
				t.Fatalf("%s: %s %s on %q", c.names[i], g.Name, g.State, g.Owner)
			}
		}
		mm, err := c.mirror(0)
		if err != nil {
			t.Fatal(err)
		}
		states[mm.State]++
		if mm.State != "connected" && last == "connected" {
			breaks++
			t.Logf("node1's md1 left connected: %s (%s)", mm.State, mm.LastError)
		}
		last = mm.State
	}
	stopWriter()

	p, _ := c.inSync(0, 1)
	if breaks > 0 && p.ResyncTotal >= p.SizeBytes {
		t.Errorf("the mirror connection broke %d times and the last resync copied %d of %d bytes: a full resync", breaks, p.ResyncTotal, p.SizeBytes)
	}
	verify := c.verify(0)
	files.check(t, c.mountPoint(0))

	var report []string
	for i, ns := range c.ns {
		var text string
		err := ns.Run(func() (err error) {
			text, err = vigiltest.Scrape("127.0.0.1:9750", net.Dial)
			return err
		})
		if err != nil {
			t.Fatalf("%s: %v", c.names[i], err)
		}
		failovers := vigiltest.Sum(text, "vigil_failovers_total")
		lost := vigiltest.Sum(text, "vigil_peer_lost_total")
		misses := vigiltest.Sum(text, "vigil_lane_misses_total")
		if failovers != 0 {
			t.Errorf("%s: vigil_failovers_total %v; want 0", c.names[i], failovers)
		}
		report = append(report, fmt.Sprintf("%s: failovers %v, peers lost %v, lane misses %v", c.names[i], failovers, lost, misses))
	}
	var seen []string
	for s, n := range states {
		seen = append(seen, fmt.Sprintf("%s %d", s, n))
	}
	sort.Strings(seen)
	t.Logf("after %v (%d checks): %d files, %.1f MB fsynced (%.2f MB/s), fsync latency p50 %v p99 %v max %v",
		duration, checks, files.len(), float64(written)/1e6, blockbench.MBps(written, duration),
		lat.Quantile(0.5).Round(time.Microsecond), lat.Quantile(0.99).Round(time.Microsecond), lat.Max().Round(time.Microsecond))
	t.Logf("node1's md1 seen %s; %d breaks; last resync %d bytes; verify: %s", strings.Join(seen, ", "), breaks, p.ResyncTotal, verify)
	t.Logf("%s; checks that saw the peer not up: %d", strings.Join(report, "; "), notUp)

	// Stop the group before the daemons, so that no shutdown hands an
	// online mirror disk over.
	c.mustCtl(0, "group", "stop", groupName)
	c.mirrorIs(0, "secondary, unexposed", func(m api.Mirror) bool { return m.Role == "secondary" && m.Device == "" })
}
