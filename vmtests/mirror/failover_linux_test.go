//go:build linux && vmtest

package mirror

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/internal/testutil"
)

// TestMirrorFailover follows a mirror disk with frontend nbd through a
// group's life: online on node1, a planned move to node2, node2's daemon
// SIGKILLed during fsynced writes, the takeover by node1, node2's restart
// and resync, an online verify and e2fsck after the group stops.
func TestMirrorFailover(t *testing.T) {
	testutil.RequireRoot(t)
	requireNBD(t)
	c := newCluster(t, clusterOptions{Profile: "conservative"})
	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 1))
	files := newFileSet()

	// Online on node1: mkfs, mount, files.
	c.start(0)
	c.start(1)
	c.groupOnlineOn(0, 0, 1)
	m := c.primaryMounted(0, "connected")
	checkMounted(t, m.Device, c.mountPoint(0))
	writeFiles(t, c.mountPoint(0), "a", 24, files, rng)
	p, s := c.inSync(0, 1)
	t.Logf("node1: %s on %s, %d files written; node1 %s %s, node2 %s %s, %.0f%% in sync",
		m.Device, c.mountPoint(0), files.len(), p.Role, p.State, s.Role, s.State, s.InSyncPercent)

	// A planned move: node1 unmounts and demotes, node2 promotes and
	// mounts its own mount point.
	c.mustCtl(0, "group", "move", groupName, "node2")
	c.groupOnlineOn(1, 0, 1)
	m = c.primaryMounted(1, "connected")
	c.mirrorIs(0, "secondary, connected", func(m api.Mirror) bool { return m.Role == "secondary" && m.State == "connected" })
	if _, _, mounted, _ := mountOf(c.mountPoint(0)); mounted {
		t.Fatalf("%s is still mounted after the move", c.mountPoint(0))
	}
	checkMounted(t, m.Device, c.mountPoint(1))
	files.check(t, c.mountPoint(1))
	writeFiles(t, c.mountPoint(1), "b", 16, files, rng)
	t.Logf("moved: node2 has every file on %s (%s) and wrote %d in all", m.Device, c.mountPoint(1), files.len())

	// SIGKILL node2's daemon while a writer fsyncs file after file.
	killed := m.Device
	acked := newFileSet()
	var inFlight atomic.Value
	stop := make(chan struct{})
	werr := make(chan error, 1)
	go func() {
		rng := mrand.New(mrand.NewPCG(rng.Uint64(), 2))
		for k := 0; ; k++ {
			select {
			case <-stop:
				werr <- errStopped
				return
			default:
			}
			name := fmt.Sprintf("k-%04d", k)
			inFlight.Store(name)
			sum, err := writeFile(c.mountPoint(1), name, 4096+rng.IntN(60*1024), rng)
			if err != nil {
				werr <- err
				return
			}
			acked.add(name, sum)
		}
	}()
	defer close(stop)
	c.eventually(waitLong, "10 acknowledged writes on node2", func() (bool, string) {
		select {
		case err := <-werr:
			t.Fatalf("writer on node2 before the kill: %v", err)
		default:
		}
		return acked.len() >= 10, fmt.Sprintf("%d", acked.len())
	})
	c.kill(1)
	atKill := acked.len()
	select {
	case err := <-werr:
		t.Logf("node2's vigild SIGKILLed after %d acknowledged writes; the writer stopped at %v (%v)", atKill, inFlight.Load(), err)
	case <-time.After(waitLong):
		t.Fatalf("the writer on node2's %s is still blocked %v after its daemon was killed", killed, waitLong)
	}

	// node1 takes over: promote, expose, mount (ext4 replays its
	// journal), and finds every acknowledged write.
	c.groupOnlineOn(0, 0)
	m = c.primaryMounted(0, "standalone")
	checkMounted(t, m.Device, c.mountPoint(0))
	files.check(t, c.mountPoint(0))
	acked.check(t, c.mountPoint(0))
	name, _ := inFlight.Load().(string)
	_, err := os.Stat(filepath.Join(c.mountPoint(0), name))
	t.Logf("node1 took over: %s on %s holds all %d earlier files and all %d writes acknowledged before the kill (the one in flight, %s: %v)",
		m.Device, c.mountPoint(0), files.len(), acked.len(), name, presence(err))

	// The killed daemon's node restarts: secondary again, resynced from
	// node1 without a full sync.
	c.start(1)
	p, s = c.inSync(0, 1)
	if p.ResyncTotal >= p.SizeBytes {
		t.Errorf("node2's return resynced %d of %d bytes: a full sync, not a differential one", p.ResyncTotal, p.SizeBytes)
	}
	t.Logf("node2 restarted: secondary, %s, consistent %v; the resync copied %d of %d bytes (verdict %q)",
		s.State, s.Consistent, p.ResyncTotal, p.SizeBytes, p.Verdict)
	t.Logf("node2's leftover %s after the restart: %s; its cleanup said: %s", killed, nbdState(killed), events(c.nodes[1].log.String(), "mirror_cleanup"))
	if st := nbdState(killed); st != "released" {
		t.Errorf("the restarted node2 left its predecessor's %s %s", killed, st)
	}
	// node1's disk still works after node2's restart.
	files.check(t, c.mountPoint(0))
	acked.check(t, c.mountPoint(0))
	writeFiles(t, c.mountPoint(0), "c", 8, files, rng)
	c.inSync(0, 1)
	t.Logf("verify: %s", c.verify(0))

	// Stop the group: node1 unmounts and unexposes; both copies are
	// clean ext4 file systems with the same bytes.
	c.mustCtl(0, "group", "stop", groupName)
	c.mirrorIs(0, "secondary, unexposed", func(m api.Mirror) bool {
		return m.Role == "secondary" && m.Device == "" && m.MountPoint == ""
	})
	if _, _, mounted, _ := mountOf(c.mountPoint(0)); mounted {
		t.Fatalf("%s is still mounted after the group stopped", c.mountPoint(0))
	}
	c.mirrorIs(1, "secondary, connected", func(m api.Mirror) bool { return m.Role == "secondary" && m.State == "connected" })
	for _, n := range c.names {
		out := e2fsck(t, c.path(n+".data"))
		t.Logf("e2fsck -fn %s.data: %s", n, lastLine(out))
	}
	if a, b := fileSum(t, c.path("node1.data")), fileSum(t, c.path("node2.data")); a != b {
		t.Fatalf("after the group stopped, node1.data (%s) and node2.data (%s) differ", short(a), short(b))
	}
}

// requireNBD fails the test if the kernel has no nbd driver: the suite
// loads nbd.ko.
func requireNBD(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/module/nbd"); err != nil {
		t.Fatalf("no nbd driver (the suite loads nbd.ko): %v", err)
	}
}

// nbdState says whether the kernel still holds nbd device dev (its sysfs
// pid file stays until the device is released).
func nbdState(dev string) string {
	name := strings.TrimPrefix(dev, "/dev/")
	if _, err := os.Stat(filepath.Join("/sys/block", name, "pid")); err == nil {
		b, _ := os.ReadFile(filepath.Join("/sys/block", name, "backend"))
		return fmt.Sprintf("still held by the kernel (backend %q)", strings.TrimSpace(string(b)))
	}
	return "released"
}

// events returns the log lines of event name, or "nothing".
func events(log, name string) string {
	var out []string
	for line := range strings.Lines(log) {
		if strings.Contains(line, "event="+name) {
			out = append(out, strings.TrimSpace(line))
		}
	}
	if len(out) == 0 {
		return "nothing"
	}
	return strings.Join(out, "; ")
}

func presence(err error) string {
	switch {
	case err == nil:
		return "present"
	case errors.Is(err, os.ErrNotExist):
		return "absent"
	}
	return err.Error()
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
