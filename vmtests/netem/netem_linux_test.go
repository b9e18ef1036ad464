//go:build linux && vmtest

package netem

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/internal/netnstest"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/vmtests/internal/vigiltest"
	"github.com/vigil-ha/vigil/vmtests/vmenv"
)

// crossAZ is the link the suite runs on (vigiltest.CrossAZ).
var crossAZ = vigiltest.CrossAZ

// defaultDuration is how long the cluster runs on the link; VIGIL_NETEM_DURATION
// (a Go duration) changes it.
const defaultDuration = 60 * time.Second

const config = `
cluster:
  name: netem
  key_file: cluster.key
  heartbeat: {profile: cross-az}
  startup_wait_ms: 2000
  metrics_address: 127.0.0.1:9750
servers:
  - {name: node1, availability_zone: az-a, interconnects: {lan1: 198.18.30.1}}
  - {name: node2, availability_zone: az-b, interconnects: {lan1: 198.18.30.2}}
lanes:
  - {name: lan1, priority: 1}
groups:
  - name: failover1
    resources:
      - {name: fip1, type: floating_ip, address: 198.18.30.100/24, interface: eth0}
`

// TestCrossAZNoFalseFailover runs a two-node cluster with the cross-az
// heartbeat profile over a netem link for a minute and checks that nobody
// lost a peer and the group never moved.
func TestCrossAZNoFalseFailover(t *testing.T) {
	testutil.RequireRoot(t)
	duration := defaultDuration
	if v := os.Getenv("VIGIL_NETEM_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("VIGIL_NETEM_DURATION: %v", err)
		}
		duration = d
	}
	nodes := [2]*netnstest.NS{netnstest.New(t, "az-a"), netnstest.New(t, "az-b")}
	netnstest.Veth(t, nodes[0], "eth0", netip.MustParsePrefix("198.18.30.1/24"), nodes[1], "eth0", netip.MustParsePrefix("198.18.30.2/24"))
	for _, ns := range nodes {
		err := ns.Run(func() error { return vigiltest.AddNetem("eth0", crossAZ) })
		if err != nil && netemMissing(err) && !vmenv.InVM() {
			t.Skipf("the kernel has no sch_netem (%v); make vmtest runs this test in a VM whose kernel has it", err)
		}
		if err != nil {
			t.Fatalf("netem on %s: %v", ns.Name(), err)
		}
	}

	vigild, vigilctl := vigiltest.Binaries(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "cluster.yaml")
	key := make([]byte, 32)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var daemons [2]*vigiltest.Daemon
	for i, ns := range nodes {
		daemons[i] = vigiltest.Start(t, vigild, cfg, fmt.Sprintf("node%d", i+1), dir, func(c *exec.Cmd) error {
			// Started from a thread inside the namespace, the daemon
			// lives there.
			return ns.Run(c.Start)
		})
	}
	status := func(i int) (api.Status, error) { return vigiltest.Status(vigilctl, daemons[i].Socket) }
	online := func() bool {
		for i := range nodes {
			s, err := status(i)
			if err != nil || len(s.Groups) == 0 || s.Groups[0].State != api.StateOnline || s.Groups[0].Owner != "node1" {
				return false
			}
		}
		return true
	}
	vigiltest.Eventually(t, 60*time.Second, "failover1 online on node1, seen by both", online)
	first, err := status(0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("heartbeat %s; netem delay %v ± %v, loss %.0f%% each way; watching for %v",
		first.Heartbeat, time.Duration(crossAZ.Latency)*time.Microsecond, time.Duration(crossAZ.Jitter)*time.Microsecond, crossAZ.Loss, duration)

	// Watch: every second each node must see the other up and the
	// group online on node1.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	end := time.After(duration)
	checks := 0
watch:
	for {
		select {
		case <-end:
			break watch
		case <-tick.C:
		}
		checks++
		for i := range nodes {
			s, err := status(i)
			if err != nil {
				t.Fatalf("node%d: %v", i+1, err)
			}
			if s.LastFailover != nil {
				t.Fatalf("node%d: a failover on a healthy link: %+v", i+1, *s.LastFailover)
			}
			for _, n := range s.Nodes {
				if !n.Self && n.State != api.NodeUp {
					t.Errorf("node%d sees %s %s (%s)", i+1, n.Name, n.State, n.Reason)
				}
			}
			if g := s.Groups[0]; g.State != api.StateOnline || g.Owner != "node1" {
				t.Fatalf("node%d: failover1 %s on %q", i+1, g.State, g.Owner)
			}
		}
	}

	var report []string
	for i, ns := range nodes {
		var text string
		err := ns.Run(func() (err error) {
			text, err = vigiltest.Scrape("127.0.0.1:9750", net.Dial)
			return err
		})
		if err != nil {
			t.Fatalf("node%d: %v", i+1, err)
		}
		failovers := vigiltest.Sum(text, "vigil_failovers_total")
		lost := vigiltest.Sum(text, "vigil_peer_lost_total")
		misses := vigiltest.Sum(text, "vigil_lane_misses_total")
		if failovers != 0 || lost != 0 {
			t.Errorf("node%d: vigil_failovers_total %v, vigil_peer_lost_total %v; want 0", i+1, failovers, lost)
		}
		s, err := status(i)
		if err != nil {
			t.Fatal(err)
		}
		var rtt time.Duration
		for _, n := range s.Nodes {
			for _, l := range n.Lanes {
				rtt = l.RTT
			}
		}
		report = append(report, fmt.Sprintf("node%d: failovers %v, peers lost %v, lane misses %v, last RTT %v", i+1, failovers, lost, misses, rtt))
	}
	t.Logf("after %v (%d checks): %s", duration, checks, strings.Join(report, "; "))
}

// netemMissing reports whether err says the kernel has no netem qdisc.
func netemMissing(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)
}
