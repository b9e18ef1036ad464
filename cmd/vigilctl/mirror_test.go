package main

import (
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// TestRenderMirrors: mirror status shows each disk as clpmdstat would,
// with its activity log, and the resync line only for a resync.
func TestRenderMirrors(t *testing.T) {
	var b strings.Builder
	renderMirrors(&b, []api.Mirror{
		{
			Name: "md1", Role: "primary", PeerRole: "secondary", State: "resyncing", Mode: "sync", Consistent: true,
			SizeBytes: 1 << 30, DirtyBytes: 1 << 20, InSyncPercent: 99.9,
			ResyncTotal: 4 << 20, ResyncDone: 3 << 20, ResyncRate: 1 << 20, ResyncETA: time.Second,
			HotExtents: 3, BitmapSyncs: 5, Frontend: "nbd", Device: "/dev/nbd0", MountPoint: "/mnt/md1",
		},
		{Name: "md2", Role: "secondary", State: "standalone", Mode: "async", SizeBytes: 1 << 20, Frontend: "none", LastError: "peer lost"},
	})
	out := b.String()
	for _, want := range []string{
		"md1\n", "Role:          primary (peer secondary)", "Connection:    resyncing", "99.90% in sync, 1 MiB dirty",
		"Activity log:  3 extents hot, 5 writes waited for a bitmap sync", "Resync:        3 MiB of 4 MiB, 1 MiB/s, ETA 1s",
		"Device:        /dev/nbd0 on /mnt/md1 (nbd)",
		"md2\n", "data INCONSISTENT", "Activity log:  0 extents hot, 0 writes waited", "Last error:    peer lost",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if strings.Count(out, "Resync:") != 1 {
		t.Errorf("a resync line for a disk without one:\n%s", out)
	}
}
