//go:build linux

// Package netnstest makes network namespaces for tests: named ones, so that
// processes can also be started inside them with `ip netns exec NAME ...`,
// joined by veth pairs and removed when the test ends.
//
// Test hosts live in these namespaces and are addressed from 198.18.0.0/15;
// nothing a test sends through them reaches the host's own network.
package netnstest

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// runDir is where iproute2 keeps named network namespaces.
const runDir = "/run/netns"

// NS is a named network namespace made for one test.
type NS struct {
	name string
}

// New creates a network namespace whose name starts with name and ends with
// a suffix unique to this test run, brings its loopback interface up, and
// removes the namespace when the test ends. It calls testutil.RequireRoot
// first, so a test without root is skipped (or fails under CI=true).
func New(t testing.TB, name string) *NS {
	t.Helper()
	testutil.RequireRoot(t)

	sweepStale()
	full := fmt.Sprintf("vt-%s-%d-%s", sanitize(name), os.Getpid(), randomHex(3))
	if err := create(full); err != nil {
		t.Fatalf("netns %s: %v", full, err)
	}
	ns := &NS{name: full}
	t.Cleanup(func() {
		if err := remove(full); err != nil {
			t.Errorf("netns %s: remove: %v", full, err)
		}
	})
	ns.Do(t, func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return fmt.Errorf("lo: %w", err)
		}
		if err := netlink.LinkSetUp(lo); err != nil {
			return fmt.Errorf("lo up: %w", err)
		}
		return nil
	})
	return ns
}

// Name is the namespace's name, as `ip netns exec NAME` takes it.
func (ns *NS) Name() string { return ns.name }

// Path is the namespace's file under /run/netns.
func (ns *NS) Path() string { return filepath.Join(runDir, ns.name) }

// Do runs fn inside the namespace (see Run) and fails the test if fn or
// entering the namespace fails. Call it from the test's goroutine.
func (ns *NS) Do(t testing.TB, fn func() error) {
	t.Helper()
	if err := ns.Run(fn); err != nil {
		t.Fatalf("in netns %s: %v", ns.name, err)
	}
}

// Run runs fn in a fresh goroutine locked to an OS thread that has entered
// the namespace, and returns fn's error. The thread is never unlocked, so
// the Go runtime discards it when fn returns instead of reusing a thread in
// the wrong namespace. Sockets fn opens stay in the namespace and may be
// used from any goroutine afterwards. Run may be called from any goroutine.
func (ns *NS) Run(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread dies with this goroutine.
		h, err := netns.GetFromPath(ns.Path())
		if err != nil {
			errc <- fmt.Errorf("open netns: %w", err)
			return
		}
		defer h.Close()
		if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Veth creates a veth pair with end aIf in namespace a and end bIf in
// namespace b, gives each end its address, and brings both up. The
// addresses are added without duplicate address detection, so IPv6 ones
// are usable at once. Interface names are at most 15 bytes.
func Veth(t testing.TB, a *NS, aIf string, aAddr netip.Prefix, b *NS, bIf string, bAddr netip.Prefix) {
	t.Helper()
	if a == nil || b == nil {
		t.Fatal("veth: both ends need a namespace made by netnstest.New")
	}
	bh, err := netns.GetFromPath(b.Path())
	if err != nil {
		t.Fatalf("veth %s-%s: open netns %s: %v", aIf, bIf, b.name, err)
	}
	defer bh.Close()

	a.Do(t, func() error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: aIf},
			PeerName:      bIf,
			PeerNamespace: netlink.NsFd(int(bh)),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("veth %s-%s: add: %w", aIf, bIf, err)
		}
		return configure(aIf, aAddr)
	})
	b.Do(t, func() error { return configure(bIf, bAddr) })
}

// configure gives interface name the address p and brings it up; it runs
// inside the interface's namespace.
func configure(name string, p netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if p.IsValid() {
		addr := &netlink.Addr{IPNet: &net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("%s: add %s: %w", name, p, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("%s: up: %w", name, err)
	}
	return nil
}

// create makes the named namespace the way `ip netns add` does, so the two
// can be mixed on one machine: /run/netns is made a shared mount point
// first, then a new namespace is bind-mounted onto /run/netns/name.
func create(name string) error {
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	madeMount := false
	for {
		err := unix.Mount("", runDir, "none", unix.MS_SHARED|unix.MS_REC, "")
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EINVAL) || madeMount {
			return fmt.Errorf("make %s shared: %w", runDir, err)
		}
		// Not a mount point yet: bind it onto itself, then retry.
		if err := unix.Mount(runDir, runDir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind %s: %w", runDir, err)
		}
		madeMount = true
	}

	path := filepath.Join(runDir, name)
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0)
	if err != nil {
		return err
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: this thread leaves the host namespace for good.
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount: %w", err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// remove unmounts and deletes the named namespace, as `ip netns del` does.
// The namespace itself goes away once no process or socket uses it.
func remove(name string) error {
	path := filepath.Join(runDir, name)
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("unmount: %w", err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// sweepStale removes namespaces this package made in test processes that
// no longer exist (a test binary killed before its cleanups ran). Names
// end in -PID-RANDOM; namespaces of live processes are left alone.
func sweepStale() {
	entries, err := os.ReadDir(runDir)
	if err != nil {
		return
	}
	for _, e := range entries {
		parts := strings.Split(e.Name(), "-")
		if len(parts) < 4 || parts[0] != "vt" {
			continue
		}
		pid, err := strconv.Atoi(parts[len(parts)-2])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); errors.Is(err, unix.ESRCH) {
			remove(e.Name())
		}
	}
}

// sanitize keeps the characters of s that are safe in a file name and in
// `ip netns` arguments, and at most 24 of them.
func sanitize(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 24 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		case r == '_', r == '/', r == '.':
			b.WriteByte('-')
		}
	}
	if b.Len() == 0 {
		return "ns"
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
