package mirror

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/vigil-ha/vigil/replicator/engine"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testSize = 8 << 20

// node is one side of a test pair.
type node struct {
	d      *Disk
	dir    string
	cancel context.CancelFunc
	done   chan error
	front  *fakeFrontend
}

// fakeFrontend records exposures; it serves nothing.
type fakeFrontend struct {
	mu      sync.Mutex
	exposed int
	closed  int
	dev     *Device
	fail    error
}

func (f *fakeFrontend) Expose(_ context.Context, name string, dev *Device) (Exposed, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.exposed++
	f.dev = dev
	return fakeExposed{f}, nil
}

func (f *fakeFrontend) String() string { return "fake" }

type fakeExposed struct{ f *fakeFrontend }

func (e fakeExposed) Path() string { return "/dev/fake0" }
func (e fakeExposed) Close(context.Context) error {
	e.f.mu.Lock()
	defer e.f.mu.Unlock()
	e.f.closed++
	e.f.dev = nil
	return nil
}

// freePort returns a port free on 127.0.0.1 and 127.0.0.2 for now.
func freePort(t *testing.T) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

func partitions(t *testing.T, dir string) (string, string) {
	t.Helper()
	data := filepath.Join(dir, "data")
	if err := os.WriteFile(data, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(data, testSize); err != nil {
		t.Fatal(err)
	}
	return data, filepath.Join(dir, "meta")
}

// start opens and runs one node of a pair: index 0 at 127.0.0.1 dials
// index 1 at 127.0.0.2.
func start(t *testing.T, dir string, idx uint8, port uint16) *node {
	t.Helper()
	return startWith(t, dir, idx, port, nil)
}

// startWith is start with the configuration changed by edit.
func startWith(t *testing.T, dir string, idx uint8, port uint16, edit func(*Config)) *node {
	t.Helper()
	data, meta := partitions(t, dir)
	addrs := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	fe := &fakeFrontend{}
	cfg := Config{
		Name: "md1", DataPath: data, MetaPath: meta,
		VolumeUUID: VolumeUUID("c", "md1"),
		Node:       idx, Peer: 1 - idx,
		Local: netip.AddrPortFrom(addrs[idx], port), PeerAddr: netip.AddrPortFrom(addrs[1-idx], port),
		ClusterKey: []byte("0123456789abcdef0123456789abcdef"),
		Timeout:    2 * time.Second, RedialInterval: 50 * time.Millisecond,
		Frontend: fe,
	}
	if edit != nil {
		edit(&cfg)
	}
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{d: d, dir: dir, cancel: cancel, done: make(chan error, 1), front: fe}
	go func() { n.done <- d.Run(ctx) }()
	return n
}

// stop ends the node's loop and closes its disk.
func (n *node) stop(t *testing.T) {
	t.Helper()
	n.cancel()
	if err := <-n.done; err != nil {
		t.Errorf("run: %v", err)
	}
	if err := n.d.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// waitState waits until the disk reaches state.
func waitState(t *testing.T, n *node, want engine.State) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if st := n.d.Status().Engine; st.State == want {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("disk never reached %v: %+v", want, n.d.Status().Engine)
}

func pattern(seed byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func readFile(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSwitchoverAndFailover: the pair connects by itself; a write through
// the primary's device lands on the secondary; a planned switchover
// (demote, promote) replicates the other way without a full resync; after
// the primary's process is gone, the survivor is promoted and a restarted
// node catches up from it.
func TestSwitchoverAndFailover(t *testing.T) {
	port := freePort(t)
	a := start(t, t.TempDir(), 0, port)
	b := start(t, t.TempDir(), 1, port)
	defer func() { b.stop(t) }()
	waitState(t, a, engine.Connected)
	waitState(t, b, engine.Connected)

	ctx := context.Background()
	if err := a.d.Promote(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	if a.front.exposed != 1 {
		t.Fatalf("promote exposed the disk %d times, want 1", a.front.exposed)
	}
	waitState(t, a, engine.Connected)
	one := pattern(1, 256<<10)
	if err := a.front.dev.WriteAt(one, 1<<20, true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(b.dir, "data"), 1<<20, len(one)); !bytes.Equal(got, one) {
		t.Fatal("a's write is not on b")
	}
	// The secondary refuses to be promoted while the peer is primary.
	if err := b.d.Promote(ctx, false, false); err == nil {
		t.Fatal("b promoted while a is primary")
	}
	if b.front.exposed != 0 {
		t.Fatal("a refused promote exposed the disk")
	}

	// Switchover.
	sent := func() uint64 { return a.d.Status().Engine.ResyncSent + b.d.Status().Engine.ResyncSent }
	before := sent()
	if err := a.d.Demote(ctx); err != nil {
		t.Fatal(err)
	}
	if a.front.closed != 1 {
		t.Fatalf("demote closed the exposure %d times, want 1", a.front.closed)
	}
	if err := b.d.Promote(ctx, false, false); err != nil {
		t.Fatal(err)
	}
	waitState(t, b, engine.Connected)
	two := pattern(2, 128<<10)
	if err := b.front.dev.WriteAt(two, 3<<20, true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(a.dir, "data"), 3<<20, len(two)); !bytes.Equal(got, two) {
		t.Fatal("b's write is not on a")
	}
	if n := sent() - before; n > 1<<20 {
		t.Fatalf("the switchover resynced %d bytes: more than the regions written", n)
	}

	// Failover: a goes away, b goes on alone, a comes back and catches up.
	a.stop(t)
	waitState(t, b, engine.StandAlone)
	three := pattern(3, 64<<10)
	if err := b.front.dev.WriteAt(three, 5<<20, false); err != nil {
		t.Fatal(err)
	}
	sentBefore := b.d.Status().Engine.ResyncSent
	a = start(t, a.dir, 0, port)
	defer func() { a.stop(t) }()
	waitState(t, a, engine.Connected)
	waitState(t, b, engine.Connected)
	// Only dirty regions are resynced, not the whole disk: the 64 KiB
	// written while a was away, and the two regions of b's earlier write,
	// whose bits no flush has cleared yet (clears are lazy).
	if n := b.d.Status().Engine.ResyncSent - sentBefore; n == 0 || n > 3*64<<10 {
		t.Fatalf("a's return resynced %d bytes, want at most the 3 regions of 64 KiB written since the last flush", n)
	}
	if err := b.front.dev.Flush(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(a.dir, "data"), 5<<20, len(three)); !bytes.Equal(got, three) {
		t.Fatal("the write made while a was away did not reach it")
	}
	if st := a.d.Status().Engine; st.Role != engine.Secondary {
		t.Fatalf("restarted a is %v, want secondary", st.Role)
	}
}

// TestExposeFailureLeavesSecondary: a frontend that fails leaves the disk
// secondary and unexposed.
func TestExposeFailureLeavesSecondary(t *testing.T) {
	port := freePort(t)
	a := start(t, t.TempDir(), 0, port)
	defer a.stop(t)
	a.front.fail = errors.New("no nbd")
	if err := a.d.Promote(context.Background(), false, false); err == nil {
		t.Fatal("promote succeeded without its frontend")
	}
	if st := a.d.Status(); st.Engine.Role != engine.Secondary || st.Device != "" {
		t.Fatalf("after a failed promote: role %v, device %q", st.Engine.Role, st.Device)
	}
}

// TestStrangerRefused: the listener drops connections that do not come
// from the peer's address, and the peer still connects.
func TestStrangerRefused(t *testing.T) {
	port := freePort(t)
	b := start(t, t.TempDir(), 1, port)
	defer b.stop(t)
	var c net.Conn
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		// 127.0.0.3 is not the peer (127.0.0.1).
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}
		c, err = d.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), port).String())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Fatal("a stranger's connection was served")
	}
	a := start(t, t.TempDir(), 0, port)
	defer a.stop(t)
	waitState(t, b, engine.Connected)
}

// TestVolumeIdentity: metadata of another volume, or of another size, is
// refused with a clear error.
func TestVolumeIdentity(t *testing.T) {
	dir := t.TempDir()
	data, meta := partitions(t, dir)
	cfg := Config{Name: "md1", DataPath: data, MetaPath: meta, VolumeUUID: VolumeUUID("c", "md1"), Node: 0, Peer: 1}
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	other := cfg
	other.VolumeUUID = VolumeUUID("c", "md2")
	if _, err := Open(other); err == nil || !bytes.Contains([]byte(err.Error()), []byte("another volume")) {
		t.Fatalf("open with another volume's metadata: %v", err)
	}
	if err := os.Truncate(data, testSize*2); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(cfg); err == nil || !bytes.Contains([]byte(err.Error()), []byte("describes")) {
		t.Fatalf("open with a resized data partition: %v", err)
	}
	if VolumeUUID("c", "md1") == VolumeUUID("c2", "md1") {
		t.Fatal("two clusters' disks share a UUID")
	}
}

// TestHotExtentsConfig: Config.HotExtents bounds the extents writes keep
// hot; negative keeps none; 0 is the default.
func TestHotExtentsConfig(t *testing.T) {
	for _, tc := range []struct{ cfg, want int }{{0, 2}, {1, 1}, {-1, 0}} { // testSize: two extents
		dir := t.TempDir()
		data, meta := partitions(t, dir)
		d, err := Open(Config{Name: "md1", DataPath: data, MetaPath: meta, VolumeUUID: VolumeUUID("c", "md1"), Node: 0, Peer: 1, HotExtents: tc.cfg})
		if err != nil {
			t.Fatal(err)
		}
		e := d.Engine()
		ctx := context.Background()
		if err := e.Promote(true); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		for x := range 2 {
			if err := e.Write(ctx, uint64(x)*4<<20, buf, false); err != nil {
				t.Fatal(err)
			}
		}
		if got := e.Status().HotExtents; got != tc.want {
			t.Errorf("HotExtents %d: %d extents hot, want %d", tc.cfg, got, tc.want)
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
