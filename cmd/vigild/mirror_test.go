//go:build linux

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// mirrorDiskResource is a mirror disk on file partitions, one pair per
// node, without a frontend (the host kernel has no nbd; the VM suite
// exposes and mounts it).
const mirrorDiskResource = `      - name: md1
        type: mirror_disk
        data_partition: @DIR@/node1.data
        cluster_partition: @DIR@/node1.meta
        frontend: none
        timeout_ms: 1000
        servers:
          node2: {data_partition: @DIR@/node2.data, cluster_partition: @DIR@/node2.meta}
`

// mirrorOf returns node i's view of md1.
func (c *testCluster) mirrorOf(i int) (api.Mirror, bool) {
	s, err := c.status(i)
	if err != nil {
		return api.Mirror{}, false
	}
	for _, m := range s.Mirrors {
		if m.Name == "md1" {
			return m, true
		}
	}
	return api.Mirror{}, false
}

// mirrorIs waits until node i's md1 has role and state.
func (c *testCluster) mirrorIs(i int, role, state string) {
	c.t.Helper()
	c.eventually(c.names[i]+" md1 "+role+" "+state, func() bool {
		m, ok := c.mirrorOf(i)
		return ok && m.Role == role && m.State == state
	})
}

// TestDaemonMirrorDisk: the mirror disk follows its group. The owner is
// primary and its peer secondary, connected; a move swaps them without a
// full resync; after the owner is SIGKILLed the survivor is promoted and
// the restarted node comes back as a consistent secondary; verify then
// finds both copies identical.
func TestDaemonMirrorDisk(t *testing.T) {
	c := newTestCluster(t)
	for _, n := range c.names {
		if err := os.Truncate(c.write(n+".data", 0o600, ""), 16<<20); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(c.dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	md := strings.ReplaceAll(mirrorDiskResource, "@DIR@", c.dir)
	c.write("cluster.yaml", 0o644, strings.Replace(string(cfg), "    resources:\n", "    resources:\n"+md, 1))
	c.startBoth()
	c.onlineOn(0, 0, 1)
	c.mirrorIs(0, "primary", "connected")
	c.mirrorIs(1, "secondary", "connected")
	c.eventually("md1-mon ok on node2", func() bool {
		s, err := c.status(1)
		if err != nil {
			return false
		}
		for _, m := range s.Monitors {
			if m.Name == "md1-mon" {
				return m.State == api.MonitorOK
			}
		}
		return false
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := c.client(0).GroupMove(ctx, "failover1", "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	c.onlineOn(1, 0, 1)
	c.mirrorIs(1, "primary", "connected")
	c.mirrorIs(0, "secondary", "connected")

	c.kill(1)
	c.onlineOn(0, 0)
	c.mirrorIs(0, "primary", "standalone")
	c.start(1, filepath.Join(c.dir, "cluster.yaml"))
	c.mirrorIs(1, "secondary", "connected")
	c.mirrorIs(0, "primary", "connected")
	if m, _ := c.mirrorOf(1); !m.Consistent || m.InSyncPercent != 100 {
		t.Fatalf("restarted node2's md1: %+v", m)
	}
	res, err := c.client(0).MirrorVerify(ctx, "md1", false)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.CheckedBytes != 16<<20 || res.MismatchedBytes != 0 {
		t.Fatalf("verify: %+v", res)
	}
	text := c.scrape(0)
	for name, want := range map[string]float64{
		"vigil_mirror_primary": 1, "vigil_mirror_connected": 1, "vigil_mirror_consistent": 1,
		"vigil_mirror_size_bytes": 16 << 20, "vigil_mirror_dirty_bytes": 0, "vigil_mirror_in_sync_ratio": 1,
	} {
		if got := metric(text, name, `disk="md1"`); got != want {
			t.Errorf("node1 %s = %v, want %v", name, got, want)
		}
	}
	if got := metric(c.scrape(1), "vigil_mirror_primary", `disk="md1"`); got != 0 {
		t.Errorf("node2 vigil_mirror_primary = %v, want 0", got)
	}
	// The secondary cannot be promoted while the peer is primary.
	if err := c.client(1).MirrorPromote(ctx, "md1", false); err == nil {
		t.Fatal("node2 promoted while node1 is primary")
	}
}
