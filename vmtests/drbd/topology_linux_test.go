//go:build linux && vmtest

package drbd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// vmTimeout bounds each step that waits on the kernel; generous, as the VM
// runs under TCG on a shared machine.
const vmTimeout = 3 * time.Minute

// The two ends of the looped veth pair, in the initial namespace.
const (
	endA = "vmdrbd-a"
	endB = "vmdrbd-b"
)

var (
	addrA = netip.MustParseAddr("198.18.41.1")
	addrB = netip.MustParseAddr("198.18.41.2")
)

// Routing tables and rule priorities of the looped link.
const (
	tableA, tableB = 241, 242
	prioA, prioB   = 100, 101
	// prioLocal is where the local table's rule moves, after the link's
	// rules (it is at 0, before every other rule, by default).
	prioLocal = 1000
)

// requireVM fails the test unless it runs as root with the kernel
// modules the suite loads.
func requireVM(t testing.TB, modules ...string) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, m := range modules {
		if _, err := os.Stat(filepath.Join("/sys/module", m)); err != nil {
			t.Fatalf("no %s module (the suite loads it): %v", m, err)
		}
	}
}

// loopedLink makes a veth pair with both ends in the current (initial)
// network namespace, endA holding addrA and endB addrB, such that what a
// local socket sends from one address to the other leaves through its own
// end and arrives at the other's: the local table's rule moves after two
// rules that send locally made packets for the other address to a table
// routing them out of the sender's end; each end accepts packets from a
// local source (accept_local, rp_filter off); static neighbour entries
// replace ARP. Everything is undone when the test ends.
func loopedLink(t testing.TB) {
	t.Helper()
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: endA}, PeerName: endB}); err != nil {
		t.Fatalf("looped link: add veth: %v", err)
	}
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(endA); err == nil {
			netlink.LinkDel(l)
		}
	})
	for _, k := range []string{"all/accept_local", "all/rp_filter"} {
		restoreSysctl(t, k)
	}
	a, b := mustLink(t, endA), mustLink(t, endB)
	host := net.CIDRMask(32, 32)
	ends := []struct {
		link        netlink.Link
		self, other netip.Addr
		table, prio int
	}{{a, addrA, addrB, tableA, prioA}, {b, addrB, addrA, tableB, prioB}}
	for _, e := range ends {
		name := e.link.Attrs().Name
		if err := netlink.AddrAdd(e.link, &netlink.Addr{IPNet: &net.IPNet{IP: e.self.AsSlice(), Mask: host}}); err != nil {
			t.Fatalf("looped link: %s: add %s: %v", name, e.self, err)
		}
		for k, v := range map[string]string{"all/accept_local": "1", name + "/accept_local": "1", "all/rp_filter": "0", name + "/rp_filter": "0"} {
			if err := writeSysctl(k, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := netlink.LinkSetUp(e.link); err != nil {
			t.Fatalf("looped link: %s up: %v", name, err)
		}
	}
	for _, e := range ends {
		name := e.link.Attrs().Name
		err := netlink.RouteAdd(&netlink.Route{
			LinkIndex: e.link.Attrs().Index, Dst: &net.IPNet{IP: e.other.AsSlice(), Mask: host},
			Src: e.self.AsSlice(), Table: e.table, Scope: netlink.SCOPE_LINK,
		})
		if err != nil {
			t.Fatalf("looped link: route to %s via %s: %v", e.other, name, err)
		}
		r := netlink.NewRule()
		r.Priority, r.IifName, r.Dst, r.Table = e.prio, "lo", &net.IPNet{IP: e.other.AsSlice(), Mask: host}, e.table
		if err := netlink.RuleAdd(r); err != nil {
			t.Fatalf("looped link: rule %d: %v", e.prio, err)
		}
		t.Cleanup(func() { netlink.RuleDel(r) })
		// The peer end's address, by its own hardware address.
		peer := b
		if e.link == b {
			peer = a
		}
		peer = mustLink(t, peer.Attrs().Name)
		err = netlink.NeighAdd(&netlink.Neigh{
			LinkIndex: e.link.Attrs().Index, IP: e.other.AsSlice(),
			HardwareAddr: peer.Attrs().HardwareAddr, State: netlink.NUD_PERMANENT,
		})
		if err != nil {
			t.Fatalf("looped link: neighbour %s on %s: %v", e.other, name, err)
		}
	}
	local := netlink.NewRule()
	local.Priority, local.Table = prioLocal, unix.RT_TABLE_LOCAL
	if err := netlink.RuleAdd(local); err != nil {
		t.Fatalf("looped link: local table rule at %d: %v", prioLocal, err)
	}
	first := netlink.NewRule()
	first.Priority, first.Table = 0, unix.RT_TABLE_LOCAL
	if err := netlink.RuleDel(first); err != nil {
		netlink.RuleDel(local)
		t.Fatalf("looped link: remove the local table rule at 0: %v", err)
	}
	t.Cleanup(func() {
		if err := netlink.RuleAdd(first); err != nil {
			t.Errorf("looped link: restore the local table rule at 0: %v", err)
		}
		netlink.RuleDel(local)
	})
}

// linkTxBytes returns the bytes end name has sent.
func linkTxBytes(t testing.TB, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/class/net", name, "statistics/tx_bytes"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		t.Fatalf("%s tx_bytes: %v", name, err)
	}
	return n
}

func mustLink(t testing.TB, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatalf("looped link: %s: %v", name, err)
	}
	return l
}

func writeSysctl(key, value string) error {
	p := filepath.Join("/proc/sys/net/ipv4/conf", key)
	if err := os.WriteFile(p, []byte(value), 0o644); err != nil {
		return fmt.Errorf("sysctl %s: %w", p, err)
	}
	return nil
}

// restoreSysctl puts key's current value back when the test ends.
func restoreSysctl(t testing.TB, key string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv4/conf", key))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { writeSysctl(key, strings.TrimSpace(string(b))) })
}

// loopDevice attaches a loop device to the file at path (of the VM's
// tmpfs: the kernel's loop driver writes it through the page cache) and
// detaches it when the test ends.
func loopDevice(t testing.TB, path string) string {
	t.Helper()
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("loop: %v", err)
	}
	n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
	ctl.Close()
	if err != nil {
		t.Fatalf("loop: LOOP_CTL_GET_FREE: %v", err)
	}
	dev := fmt.Sprintf("/dev/loop%d", n)
	back, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("loop: %v", err)
	}
	defer back.Close()
	ld, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("loop: %v", err)
	}
	defer ld.Close()
	cfg := unix.LoopConfig{Fd: uint32(back.Fd()), Size: 0}
	copy(cfg.Info.File_name[:], path)
	if err := unix.IoctlLoopConfigure(int(ld.Fd()), &cfg); err != nil {
		t.Fatalf("loop: LOOP_CONFIGURE %s on %s: %v", path, dev, err)
	}
	t.Cleanup(func() {
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err != nil {
			t.Errorf("loop: detach %s: %v", dev, err)
			return
		}
		defer f.Close()
		if err := unix.IoctlSetInt(int(f.Fd()), unix.LOOP_CLR_FD, 0); err != nil {
			t.Errorf("loop: detach %s: %v", dev, err)
		}
	})
	return dev
}

// sparseFile makes a file of size bytes in dir.
func sparseFile(t testing.TB, dir, name string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, name)
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	return p
}

// The DRBD 8.4 tools of drbd-utils (the suite copies them into the VM).
const (
	drbdsetup = "/usr/lib/drbd/drbdsetup-84"
	drbdmeta  = "drbdmeta"
)

// drbdPort is the DRBD connection's TCP port on both ends.
const drbdPort = 7789

// drbdOptions tune a pair.
type drbdOptions struct {
	// ResyncKiBps is the resync rate (0: DRBD's default controller).
	ResyncKiBps int
}

// drbdPair is two DRBD 8.4 devices in one kernel, resources vmdrbd0
// (minor 0, on endA) and vmdrbd1 (minor 1, on endB), connected in
// protocol C over the looped link, with internal metadata on their
// backing devices.
type drbdPair struct {
	t       testing.TB
	backing [2]string
}

// device is side i's DRBD device.
func (p *drbdPair) device(i int) string { return fmt.Sprintf("/dev/drbd%d", i) }

func resource(i int) string { return fmt.Sprintf("vmdrbd%d", i) }

// newDRBDPair creates the metadata on both backing devices, attaches them
// and connects the two; it takes them down when the test ends. Both are
// then secondary and inconsistent, until one is made primary.
func newDRBDPair(t testing.TB, backA, backB string, o drbdOptions) *drbdPair {
	t.Helper()
	// drbdsetup and drbdmeta keep locks and state here.
	for _, d := range []string{"/var/lib/drbd", "/var/run/drbd", "/var/lock"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	p := &drbdPair{t: t, backing: [2]string{backA, backB}}
	local := [2]netip.Addr{addrA, addrB}
	for i, back := range p.backing {
		run(t, drbdmeta, "--force", strconv.Itoa(i), "v08", back, "internal", "create-md")
		run(t, drbdsetup, "new-resource", resource(i))
		t.Cleanup(func() {
			if out, err := command(drbdsetup, "down", resource(i)); err != nil {
				t.Errorf("drbdsetup down %s: %v\n%s", resource(i), err, out)
			}
		})
		run(t, drbdsetup, "new-minor", resource(i), strconv.Itoa(i), "0")
		attach := []string{"attach", strconv.Itoa(i), back, back, "internal"}
		if o.ResyncKiBps > 0 {
			attach = append(attach, "--c-plan-ahead=0", "--resync-rate="+strconv.Itoa(o.ResyncKiBps))
		}
		run(t, drbdsetup, attach...)
	}
	for i := range p.backing {
		self := netip.AddrPortFrom(local[i], drbdPort)
		peer := netip.AddrPortFrom(local[1-i], drbdPort)
		run(t, drbdsetup, "connect", resource(i), "ipv4:"+self.String(), "ipv4:"+peer.String(), "--protocol=C")
	}
	return p
}

// states reads /proc/drbd.
func (p *drbdPair) states() (map[int]minorState, error) {
	b, err := os.ReadFile("/proc/drbd")
	if err != nil {
		return nil, err
	}
	return parseProcDRBD(string(b))
}

// waitFor waits until cond holds for the two devices' states.
func (p *drbdPair) waitFor(what string, cond func(a, b minorState) bool) (a, b minorState) {
	p.t.Helper()
	deadline := time.Now().Add(vmTimeout)
	for {
		st, err := p.states()
		if err != nil {
			p.t.Fatal(err)
		}
		a, b = st[0], st[1]
		if cond(a, b) {
			return a, b
		}
		if time.Now().After(deadline) {
			out, _ := os.ReadFile("/proc/drbd")
			p.t.Fatalf("timed out after %v waiting for DRBD: %s; /proc/drbd:\n%s", vmTimeout, what, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// connected waits until both devices are connected.
func (p *drbdPair) connected() {
	p.t.Helper()
	p.waitFor("both connected", func(a, b minorState) bool { return a.Conn == "Connected" && b.Conn == "Connected" })
}

// upToDate waits until both devices are connected and up to date.
func (p *drbdPair) upToDate() {
	p.t.Helper()
	p.waitFor("both connected and UpToDate", func(a, b minorState) bool {
		return a.Conn == "Connected" && b.Conn == "Connected" && a.Disk == "UpToDate" && a.PeerDisk == "UpToDate" &&
			b.Disk == "UpToDate" && b.PeerDisk == "UpToDate"
	})
}

// skipInitialSync declares both (connected, secondary, freshly created,
// hence equal: zeros) devices in sync without copying, DRBD's documented
// way to skip the initial full sync.
func (p *drbdPair) skipInitialSync() {
	p.t.Helper()
	run(p.t, drbdsetup, "new-current-uuid", "0", "--clear-bitmap")
	p.upToDate()
}

// primary makes side i primary; force makes its data the source of a
// full sync of a fresh pair.
func (p *drbdPair) primary(i int, force bool) {
	p.t.Helper()
	args := []string{"primary", strconv.Itoa(i)}
	if force {
		args = append(args, "--force")
	}
	run(p.t, drbdsetup, args...)
}

// secondary makes side i secondary.
func (p *drbdPair) secondary(i int) {
	p.t.Helper()
	run(p.t, drbdsetup, "secondary", strconv.Itoa(i))
}

// run runs a command and fails the test if it fails.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := command(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

func command(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("%w (after %v)", err, vmTimeout)
	}
	return string(out), err
}
