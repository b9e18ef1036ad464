//go:build linux && vmtest

package mirror

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/internal/netnstest"
	"github.com/vigil-ha/vigil/vmtests/internal/vigiltest"
)

// Generous bounds: the VM runs under TCG on a shared machine.
const (
	// waitLong bounds a state change that includes mkfs, a full sync or
	// a failover.
	waitLong = 3 * time.Minute
	// cmdTimeout bounds one vigilctl or e2fsck run.
	cmdTimeout = 2 * time.Minute
)

// defaultPartitionSize is each node's data partition unless the test
// says otherwise: small enough for the VM's memory (the files live in its
// tmpfs), large enough for ext4's default layout with a journal.
const defaultPartitionSize = 64 << 20

// The mirror disk's resource in the group; @DIR@ is the test's directory.
// Each node has its own partitions and its own mount point.
const configText = `
cluster:
  name: vmmirror
  key_file: cluster.key
  heartbeat: {profile: @PROFILE@}
  startup_wait_ms: 2000
  metrics_address: 127.0.0.1:9750
servers:
  - {name: node1, availability_zone: az-a, interconnects: {lan1: 198.18.32.1}}
  - {name: node2, availability_zone: az-b, interconnects: {lan1: 198.18.32.2}}
lanes:
  - {name: lan1, priority: 1, mirror: true}
groups:
  - name: failover1
    resources:
      - name: md1
        type: mirror_disk
        data_partition: @DIR@/node1.data
        cluster_partition: @DIR@/node1.meta
        mode: sync
        frontend: nbd
        mount_point: @DIR@/mnt1
        fs_type: ext4
        mkfs: true
        timeout_ms: 3000
        port: 29051
        servers:
          node2: {data_partition: @DIR@/node2.data, cluster_partition: @DIR@/node2.meta, mount_point: @DIR@/mnt2}
`

// Names in the configuration.
const (
	groupName = "failover1"
	diskName  = "md1"
)

var addrs = [2]netip.Prefix{netip.MustParsePrefix("198.18.32.1/24"), netip.MustParsePrefix("198.18.32.2/24")}

// clusterOptions vary the cluster.
type clusterOptions struct {
	// Profile is the heartbeat profile.
	Profile string
	// Netem, if set, shapes the veth's both ends.
	Netem *netlink.NetemQdiscAttrs
	// PartitionSize is each data partition's size (default 64 MiB).
	PartitionSize int64
}

// cluster is two vigild nodes in network namespaces joined by a veth,
// sharing one mirror disk.
type cluster struct {
	t                *testing.T
	dir              string
	ns               [2]*netnstest.NS
	names            [2]string
	vigild, vigilctl string
	nodes            [2]*daemon
}

// newCluster makes the namespaces, the link, the partitions and the
// configuration; start starts the daemons.
func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: t.TempDir(), names: [2]string{"node1", "node2"}}
	c.ns = [2]*netnstest.NS{netnstest.New(t, "md-a"), netnstest.New(t, "md-b")}
	netnstest.Veth(t, c.ns[0], "eth0", addrs[0], c.ns[1], "eth0", addrs[1])
	if o.Netem != nil {
		for _, ns := range c.ns {
			ns.Do(t, func() error { return vigiltest.AddNetem("eth0", *o.Netem) })
		}
	}
	c.vigild, c.vigilctl = vigiltest.Binaries(t)
	key := make([]byte, 32)
	rand.Read(key)
	c.write("cluster.key", 0o600, key)
	c.configure(o.Profile)
	for _, n := range c.names {
		c.write(n+".data", 0o600, nil)
		if err := os.Truncate(c.path(n+".data"), cmp.Or(o.PartitionSize, defaultPartitionSize)); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(c.cleanUp)
	return c
}

// configure writes the configuration with heartbeat profile profile; the
// daemons read it when they start.
func (c *cluster) configure(profile string) {
	c.t.Helper()
	cfg := strings.ReplaceAll(configText, "@DIR@", c.dir)
	cfg = strings.ReplaceAll(cfg, "@PROFILE@", profile)
	c.write("cluster.yaml", 0o644, []byte(cfg))
}

func (c *cluster) path(name string) string { return filepath.Join(c.dir, name) }

func (c *cluster) write(name string, perm os.FileMode, b []byte) {
	c.t.Helper()
	if err := os.WriteFile(c.path(name), b, perm); err != nil {
		c.t.Fatal(err)
	}
}

// mountPoint is node i's mount point.
func (c *cluster) mountPoint(i int) string { return c.path(fmt.Sprintf("mnt%d", i+1)) }

// start starts node i's daemon inside its namespace.
func (c *cluster) start(i int) {
	c.t.Helper()
	if d := c.nodes[i]; d != nil && !d.exited() {
		c.t.Fatalf("%s: already running", c.names[i])
	}
	d := &daemon{name: c.names[i], socket: c.path(c.names[i] + ".sock"), done: make(chan struct{})}
	if c.nodes[i] != nil {
		d.history = c.nodes[i].history + c.nodes[i].log.String() + "\n--- restarted ---\n"
	}
	d.cmd = exec.Command(c.vigild, "-config", c.path("cluster.yaml"), "-server", d.name, "-socket", d.socket, "-log-level", "info")
	d.cmd.Stdout, d.cmd.Stderr = &d.log, &d.log
	// Started from a thread inside the namespace, the daemon lives there.
	if err := c.ns[i].Run(d.cmd.Start); err != nil {
		c.t.Fatalf("start vigild %s: %v", d.name, err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	c.nodes[i] = d
}

// kill SIGKILLs node i's daemon and waits until it is gone.
func (c *cluster) kill(i int) {
	c.t.Helper()
	d := c.nodes[i]
	d.killed = true
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill %s: %v", d.name, err)
	}
	<-d.done
}

// stop stops node i's daemon with SIGTERM and waits until it is gone.
func (c *cluster) stop(i int) {
	c.t.Helper()
	d := c.nodes[i]
	d.killed = true
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		c.t.Fatalf("stop %s: %v", d.name, err)
	}
	select {
	case <-d.done:
	case <-time.After(waitLong):
		c.t.Fatalf("vigild %s still running %v after SIGTERM", d.name, waitLong)
	}
}

// cleanUp stops the daemons (SIGTERM, then SIGKILL) and shows their logs
// if the test failed.
func (c *cluster) cleanUp() {
	for _, d := range c.nodes {
		if d == nil {
			continue
		}
		if !d.exited() {
			d.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-d.done:
			case <-time.After(30 * time.Second):
				d.cmd.Process.Kill()
				<-d.done
			}
		}
		if c.t.Failed() {
			c.t.Logf("vigild %s log:\n%s", d.name, tail(d.history+d.log.String(), 200))
		}
	}
	// Whatever a failed test left mounted goes, so that the temporary
	// directory can be removed.
	for i := range c.nodes {
		unix.Unmount(c.mountPoint(i), unix.MNT_DETACH)
	}
}

// daemon is one vigild process.
type daemon struct {
	name, socket string
	cmd          *exec.Cmd
	log          vigiltest.SyncBuffer
	// history is the log of the node's earlier runs.
	history string
	// killed says the test killed or stopped it: its exit is no failure.
	killed bool
	done   chan struct{}
	err    error
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// ctl runs vigilctl against node i and returns its standard output.
func (c *cluster) ctl(i int, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, c.vigilctl, append([]string{"--socket", c.nodes[i].socket}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("vigilctl %s on %s: %w: %s", strings.Join(args, " "), c.names[i], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// mustCtl is ctl that fails the test on error.
func (c *cluster) mustCtl(i int, args ...string) string {
	c.t.Helper()
	out, err := c.ctl(i, args...)
	if err != nil {
		c.t.Fatal(err)
	}
	return out
}

// status is node i's vigilctl status --json.
func (c *cluster) status(i int) (api.Status, error) {
	return vigiltest.Status(c.vigilctl, c.nodes[i].socket)
}

// mirror is node i's md1 as vigilctl mirror status --json shows it.
func (c *cluster) mirror(i int) (api.Mirror, error) {
	out, err := c.ctl(i, "mirror", "status", "--json", diskName)
	if err != nil {
		return api.Mirror{}, err
	}
	var ms []api.Mirror
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		return api.Mirror{}, fmt.Errorf("vigilctl mirror status --json: %w", err)
	}
	if len(ms) != 1 {
		return api.Mirror{}, fmt.Errorf("vigilctl mirror status --json %s: %d disks", diskName, len(ms))
	}
	return ms[0], nil
}

// eventually polls cond until it holds, failing the test after timeout
// with what and the last value cond described.
func (c *cluster) eventually(timeout time.Duration, what string, cond func() (bool, string)) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, d := range c.nodes {
			if d != nil && !d.killed && d.exited() {
				c.t.Fatalf("waiting for %s: vigild %s exited: %v; its log ends:\n%s", what, d.name, d.err, tail(d.log.String(), 20))
			}
		}
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// groupOnlineOn waits until the nodes in views see the group online on
// node owner.
func (c *cluster) groupOnlineOn(owner int, views ...int) {
	c.t.Helper()
	c.eventually(waitLong, fmt.Sprintf("%s online on %s", groupName, c.names[owner]), func() (bool, string) {
		for _, i := range views {
			s, err := c.status(i)
			if err != nil {
				return false, err.Error()
			}
			if len(s.Groups) == 0 {
				return false, c.names[i] + ": no groups"
			}
			if g := s.Groups[0]; g.State != api.StateOnline || g.Owner != c.names[owner] {
				return false, fmt.Sprintf("%s sees %s %s on %q", c.names[i], g.Name, g.State, g.Owner)
			}
		}
		return true, ""
	})
}

// mirrorIs waits until node i's md1 satisfies cond and returns it.
func (c *cluster) mirrorIs(i int, what string, cond func(api.Mirror) bool) api.Mirror {
	c.t.Helper()
	var m api.Mirror
	c.eventually(waitLong, c.names[i]+" md1 "+what, func() (bool, string) {
		var err error
		if m, err = c.mirror(i); err != nil {
			return false, err.Error()
		}
		return cond(m), fmt.Sprintf("%+v", m)
	})
	return m
}

// primaryMounted waits until node i is md1's primary with the disk
// exposed and mounted on its mount point, in connection state state.
func (c *cluster) primaryMounted(i int, state string) api.Mirror {
	c.t.Helper()
	mp := c.mountPoint(i)
	return c.mirrorIs(i, "primary, "+state+", exposed and mounted on "+mp, func(m api.Mirror) bool {
		return m.Role == "primary" && m.State == state && strings.HasPrefix(m.Device, "/dev/nbd") && m.MountPoint == mp
	})
}

// inSync waits until node p is primary and node s secondary, connected,
// both consistent and fully in sync. The primary clears a region's dirty
// bit at the first end-to-end flush after the region's writes were acked
// (the engine has no periodic flush yet), so while its disk is mounted
// each look starts with a syncfs there, as an application's fsync would.
func (c *cluster) inSync(p, s int) (primary, secondary api.Mirror) {
	c.t.Helper()
	synced := func(role string, flush bool) func(api.Mirror) bool {
		return func(m api.Mirror) bool {
			if flush && m.MountPoint != "" {
				syncfs(m.MountPoint)
			}
			return m.Role == role && m.State == "connected" && m.Consistent && m.InSyncPercent == 100 && m.DirtyBytes == 0
		}
	}
	secondary = c.mirrorIs(s, "secondary, connected and in sync", synced("secondary", false))
	primary = c.mirrorIs(p, "primary, connected and in sync", synced("primary", true))
	return primary, secondary
}

// syncfs flushes the file system mounted on dir.
func syncfs(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Syncfs(int(f.Fd()))
}

// verify runs vigilctl mirror verify on node i and fails the test unless
// both copies are equal.
func (c *cluster) verify(i int) string {
	c.t.Helper()
	out := c.mustCtl(i, "mirror", "verify", diskName)
	if !strings.Contains(out, " 0 B differ") {
		c.t.Fatalf("vigilctl mirror verify %s on %s:\n%s", diskName, c.names[i], out)
	}
	return strings.TrimSpace(out)
}

// mountOf returns the source and file system type of the mount at dir,
// ok false when nothing is mounted there.
func mountOf(dir string) (source, fstype string, ok bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) || fields[4] != dir {
			continue
		}
		source, fstype, ok = fields[sep+2], fields[sep+1], true
	}
	return source, fstype, ok, sc.Err()
}

// checkMounted fails the test unless dev is mounted on dir as ext4 with a
// journal.
func checkMounted(t *testing.T, dev, dir string) {
	t.Helper()
	src, fstype, ok, err := mountOf(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || src != dev || fstype != "ext4" {
		t.Fatalf("mount on %s: %q %q (mounted %v); want %s ext4", dir, src, fstype, ok, dev)
	}
	journal, err := hasJournal(dev)
	if err != nil {
		t.Fatal(err)
	}
	if !journal {
		t.Fatalf("%s: the ext4 file system has no journal: nothing to replay after a crash", dev)
	}
}

// hasJournal reads dev's ext2/3/4 superblock and reports whether it has
// the has_journal feature.
func hasJournal(dev string) (bool, error) {
	f, err := os.Open(dev)
	if err != nil {
		return false, err
	}
	defer f.Close()
	sb := make([]byte, 1024)
	if _, err := f.ReadAt(sb, 1024); err != nil {
		return false, fmt.Errorf("read the superblock of %s: %w", dev, err)
	}
	if sb[0x38] != 0x53 || sb[0x39] != 0xef {
		return false, fmt.Errorf("%s holds no ext4 superblock", dev)
	}
	const compatHasJournal = 0x4
	return sb[0x5c]&compatHasJournal != 0, nil
}

// fileSet records files written to a mounted disk by name and SHA-256.
type fileSet struct {
	mu    sync.Mutex
	sums  map[string][sha256.Size]byte
	order []string
}

func newFileSet() *fileSet { return &fileSet{sums: map[string][sha256.Size]byte{}} }

// add records an acknowledged file (the latest content of a file
// rewritten).
func (s *fileSet) add(name string, sum [sha256.Size]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sums[name]; !ok {
		s.order = append(s.order, name)
	}
	s.sums[name] = sum
}

func (s *fileSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.order)
}

// check fails the test unless every recorded file is in dir with its
// content.
func (s *fileSet) check(t *testing.T, dir string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	bad := 0
	for _, name := range s.order {
		b, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case err != nil:
			t.Errorf("%s: %v", name, err)
		case sha256.Sum256(b) != s.sums[name]:
			t.Errorf("%s: %d bytes, SHA-256 %s; want %s", name, len(b), short(sha256.Sum256(b)), short(s.sums[name]))
		default:
			continue
		}
		if bad++; bad >= 10 {
			t.Fatalf("%s: giving up after %d bad files", dir, bad)
		}
	}
	if bad > 0 {
		t.FailNow()
	}
}

func short(sum [sha256.Size]byte) string { return hex.EncodeToString(sum[:6]) }

// writeFile writes size random bytes to file name in dir (created or
// truncated), fsyncs
// it and then dir, and returns the content's SHA-256: when it returns nil
// the file is acknowledged, durable as a database's commit would be.
func writeFile(dir, name string, size int, rng *mrand.Rand) ([sha256.Size]byte, error) {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	sum := sha256.Sum256(b)
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return sum, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return sum, fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return sum, fmt.Errorf("fsync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return sum, fmt.Errorf("close %s: %w", name, err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return sum, err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return sum, fmt.Errorf("fsync %s: %w", dir, err)
	}
	return sum, nil
}

// writeFiles writes n acknowledged files prefix-NNN of 1 to 128 KiB to
// dir and records them in set.
func writeFiles(t *testing.T, dir, prefix string, n int, set *fileSet, rng *mrand.Rand) {
	t.Helper()
	for k := range n {
		name := fmt.Sprintf("%s-%03d", prefix, k)
		sum, err := writeFile(dir, name, 1024+rng.IntN(127*1024), rng)
		if err != nil {
			t.Fatal(err)
		}
		set.add(name, sum)
	}
}

// e2fsck runs e2fsck -fn (force, read-only) on path and fails the test
// unless it finds the file system clean.
func e2fsck(t *testing.T, path string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "e2fsck", "-fn", path).CombinedOutput()
	if err != nil {
		t.Fatalf("e2fsck -fn %s: %v\n%s", path, err, out)
	}
	return string(out)
}

// fileSum returns the SHA-256 of the file at path.
func fileSum(t *testing.T, path string) [sha256.Size]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[%d earlier lines]\n", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "")
}

var errStopped = errors.New("stopped")
