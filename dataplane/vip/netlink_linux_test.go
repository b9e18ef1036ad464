//go:build linux

package vip

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/netnstest"
)

// pair makes two namespaces joined by a veth: "va" 198.18.100.1/24 in a,
// "vb" 198.18.100.2/24 in b.
func pair(t *testing.T) (a, b *netnstest.NS) {
	t.Helper()
	a = netnstest.New(t, "vip-a")
	b = netnstest.New(t, "vip-b")
	netnstest.Veth(t, a, "va", netip.MustParsePrefix("198.18.100.1/24"), b, "vb", netip.MustParsePrefix("198.18.100.2/24"))
	return a, b
}

// addrs lists the IPv4 addresses of ifname in ns, sorted.
func addrs(t *testing.T, ns *netnstest.NS, ifname string) []string {
	t.Helper()
	var out []string
	ns.Do(t, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		list, err := netlink.AddrList(link, netlink.FAMILY_V4)
		if err != nil {
			return err
		}
		for _, a := range list {
			out = append(out, a.IPNet.String())
		}
		return nil
	})
	slices.Sort(out)
	return out
}

func TestNetlinkSet(t *testing.T) {
	a, _ := pair(t)
	v1 := bind("va", "198.18.100.10/24")
	v2 := bind("va", "198.18.100.11/32")
	n := NewNetlink([]Binding{v1, v2}, nil)
	defer n.Wait()

	steps := []struct {
		name    string
		desired []Binding
		want    []string
	}{
		{"add both", []Binding{v1, v2}, []string{"198.18.100.1/24", "198.18.100.10/24", "198.18.100.11/32"}},
		{"again is a no-op", []Binding{v2, v1}, []string{"198.18.100.1/24", "198.18.100.10/24", "198.18.100.11/32"}},
		{"fewer removes", []Binding{v2}, []string{"198.18.100.1/24", "198.18.100.11/32"}},
		{"none", nil, []string{"198.18.100.1/24"}},
		{"none again", nil, []string{"198.18.100.1/24"}},
	}
	for _, s := range steps {
		if err := a.Run(func() error { return n.Set(s.desired) }); err != nil {
			t.Fatalf("%s: Set: %v", s.name, err)
		}
		if got := addrs(t, a, "va"); !slices.Equal(got, s.want) {
			t.Fatalf("%s: addresses %v, want %v", s.name, got, s.want)
		}
		for _, b := range []Binding{v1, v2} {
			var bound bool
			a.Do(t, func() (err error) { bound, err = n.IsBound(b); return err })
			if want := slices.Contains(s.desired, b); bound != want {
				t.Fatalf("%s: IsBound(%s) = %v, want %v", s.name, b, bound, want)
			}
		}
	}
	var bound bool
	a.Do(t, func() (err error) { bound, err = n.IsBound(bind("nosuch0", "198.18.100.10/24")); return err })
	if bound {
		t.Error("IsBound on a missing interface = true")
	}

	err := a.Run(func() error { return n.Set([]Binding{bind("va", "198.18.100.12/24")}) })
	if err == nil || !strings.Contains(err.Error(), "not managed") {
		t.Errorf("Set(unmanaged) error = %v", err)
	}
}

func TestNetlinkMove(t *testing.T) {
	a := netnstest.New(t, "vip-move")
	var b [2]*netnstest.NS
	for i := range b {
		b[i] = netnstest.New(t, "vip-move-peer")
	}
	netnstest.Veth(t, a, "va0", netip.MustParsePrefix("198.18.100.1/24"), b[0], "vb0", netip.MustParsePrefix("198.18.100.2/24"))
	netnstest.Veth(t, a, "va1", netip.MustParsePrefix("198.18.101.1/24"), b[1], "vb1", netip.MustParsePrefix("198.18.101.2/24"))
	on0 := bind("va0", "198.18.102.10/32")
	on1 := bind("va1", "198.18.102.10/32")
	n := NewNetlink([]Binding{on0, on1}, nil)
	defer n.Wait()
	if err := a.Run(func() error { return n.Set([]Binding{on0}) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(func() error { return n.Set([]Binding{on1}) }); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, a, "va0"); slices.Contains(got, "198.18.102.10/32") {
		t.Errorf("va0 still holds the moved address: %v", got)
	}
	if got := addrs(t, a, "va1"); !slices.Contains(got, "198.18.102.10/32") {
		t.Errorf("va1 lacks the moved address: %v", got)
	}
}

func TestNetlinkCleanUpKeepsUnmanaged(t *testing.T) {
	a, _ := pair(t)
	v1 := bind("va", "198.18.100.10/24")
	v2 := bind("va", "198.18.100.11/32")
	// What a crashed predecessor left behind, beside an address somebody
	// else manages on the same interface.
	a.Do(t, func() error {
		link, err := netlink.LinkByName("va")
		if err != nil {
			return err
		}
		for _, p := range []string{"198.18.100.10/24", "198.18.100.11/32", "198.18.100.20/24"} {
			if err := netlink.AddrAdd(link, toAddr(netip.MustParsePrefix(p))); err != nil {
				return err
			}
		}
		return nil
	})
	n := NewNetlink([]Binding{v1, v2}, nil)
	defer n.Wait()
	for range 2 { // CleanUp is idempotent too
		if err := a.Run(n.CleanUp); err != nil {
			t.Fatalf("CleanUp: %v", err)
		}
		want := []string{"198.18.100.1/24", "198.18.100.20/24"}
		if got := addrs(t, a, "va"); !slices.Equal(got, want) {
			t.Fatalf("after CleanUp: %v, want %v", got, want)
		}
	}
}

func TestNetlinkMissingInterface(t *testing.T) {
	a := netnstest.New(t, "vip-missing")
	v := bind("eth9", "198.18.100.10/24")
	n := NewNetlink([]Binding{v}, nil)
	defer n.Wait()
	err := a.Run(func() error { return n.Set([]Binding{v}) })
	if err == nil || !strings.HasPrefix(err.Error(), "bind 198.18.100.10/24 to eth9: link not found: ") {
		t.Fatalf("Set error = %v, want bind 198.18.100.10/24 to eth9: link not found: ...", err)
	}
	if !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("error %v does not wrap ErrLinkNotFound", err)
	}
	// Nothing to remove on an interface that does not exist.
	if err := a.Run(n.CleanUp); err != nil {
		t.Errorf("CleanUp: %v", err)
	}
	if err := a.Run(func() error { return n.Set(nil) }); err != nil {
		t.Errorf("Set(nil): %v", err)
	}
}

// arpCapture opens, in ns, a packet socket receiving the ARP frames that
// arrive on ifname.
func arpCapture(t *testing.T, ns *netnstest.NS, ifname string) int {
	t.Helper()
	var fd int
	ns.Do(t, func() error {
		link, err := netlink.LinkByName(ifname)
		if err != nil {
			return err
		}
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: link.Attrs().Index}); err != nil {
			unix.Close(fd)
			return err
		}
		tv := unix.NsecToTimeval((200 * time.Millisecond).Nanoseconds())
		return unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	})
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

type arpPacket struct {
	op       uint16
	sha      net.HardwareAddr
	spa, tpa netip.Addr
}

// readAnnouncements collects, until deadline, the ARP frames on fd whose
// sender is ip, stopping early once max are in.
func readAnnouncements(t *testing.T, fd int, ip netip.Addr, max int, deadline time.Time) []arpPacket {
	t.Helper()
	var got []arpPacket
	buf := make([]byte, 1500)
	for len(got) < max && time.Now().Before(deadline) {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("recv: %v", err)
		}
		f := buf[:n]
		if n < ethHeaderLen+arpLen || binary.BigEndian.Uint16(f[12:14]) != unix.ETH_P_ARP {
			continue
		}
		a := f[ethHeaderLen:]
		if binary.BigEndian.Uint16(a[0:2]) != arpHardwareEthernet || binary.BigEndian.Uint16(a[2:4]) != unix.ETH_P_IP || a[4] != 6 || a[5] != 4 {
			continue
		}
		p := arpPacket{
			op:  binary.BigEndian.Uint16(a[6:8]),
			sha: net.HardwareAddr(slices.Clone(a[8:14])),
			spa: netip.AddrFrom4([4]byte(a[14:18])),
			tpa: netip.AddrFrom4([4]byte(a[24:28])),
		}
		if p.spa == ip {
			got = append(got, p)
		}
	}
	return got
}

func TestNetlinkGratuitousARP(t *testing.T) {
	a, b := pair(t)
	fd := arpCapture(t, b, "vb")
	var mac net.HardwareAddr
	a.Do(t, func() error {
		link, err := netlink.LinkByName("va")
		mac = link.Attrs().HardwareAddr
		return err
	})

	vip := bind("va", "198.18.100.10/24")
	n := NewNetlink([]Binding{vip}, nil)
	defer n.Wait()
	if err := a.Run(func() error { return n.Set([]Binding{vip}) }); err != nil {
		t.Fatal(err)
	}
	got := readAnnouncements(t, fd, vip.Prefix.Addr(), len(garpSchedule), time.Now().Add(10*time.Second))
	if len(got) != len(garpSchedule) {
		t.Fatalf("received %d announcements of %s, want %d", len(got), vip.Prefix.Addr(), len(garpSchedule))
	}
	for _, p := range got {
		if p.op != arpOpRequest && p.op != arpOpReply {
			t.Errorf("ARP opcode %d, want request or reply", p.op)
		}
		if p.tpa != vip.Prefix.Addr() {
			t.Errorf("target IP %s, want %s (an announcement)", p.tpa, vip.Prefix.Addr())
		}
		if p.sha.String() != mac.String() {
			t.Errorf("sender MAC %s, want va's %s", p.sha, mac)
		}
	}

	// Binding again is a no-op: no new announcements.
	n.Wait()
	if err := a.Run(func() error { return n.Set([]Binding{vip}) }); err != nil {
		t.Fatal(err)
	}
	if again := readAnnouncements(t, fd, vip.Prefix.Addr(), 1, time.Now().Add(500*time.Millisecond)); len(again) != 0 {
		t.Errorf("a no-op Set announced again: %d frames", len(again))
	}
}

func TestNetlinkRemovalStopsAnnouncements(t *testing.T) {
	saved := garpSchedule
	garpSchedule = []time.Duration{0, 3 * time.Second, 6 * time.Second}
	t.Cleanup(func() { garpSchedule = saved })

	a, b := pair(t)
	fd := arpCapture(t, b, "vb")
	vip := bind("va", "198.18.100.10/24")
	n := NewNetlink([]Binding{vip}, nil)
	if err := a.Run(func() error { return n.Set([]Binding{vip}) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Run(func() error { return n.Set(nil) }); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { n.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Wait still blocked: removing the address did not stop its announcements")
	}
	if got := readAnnouncements(t, fd, vip.Prefix.Addr(), 2, time.Now().Add(300*time.Millisecond)); len(got) > 1 {
		t.Errorf("received %d announcements of a removed address, want at most the first", len(got))
	}
}

func TestNetlinkLoopbackNoARP(t *testing.T) {
	a := netnstest.New(t, "vip-lo")
	v := bind("lo", "198.18.100.50/32")
	n := NewNetlink([]Binding{v}, nil)
	if err := a.Run(func() error { return n.Set([]Binding{v}) }); err != nil {
		t.Fatal(err)
	}
	n.Wait()
	if got := addrs(t, a, "lo"); !slices.Contains(got, "198.18.100.50/32") {
		t.Errorf("lo addresses %v, want 198.18.100.50/32", got)
	}
	if err := a.Run(n.CleanUp); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, a, "lo"); slices.Contains(got, "198.18.100.50/32") {
		t.Errorf("CleanUp left %v", got)
	}
}

func TestGARPFrame(t *testing.T) {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	f := garpFrame(mac, netip.MustParseAddr("198.18.100.10"))
	want := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x06, // Ethernet
		0, 1, 0x08, 0, 6, 4, 0, 1, // Ethernet/IPv4, request
		0x02, 0, 0, 0, 0, 0x01, 198, 18, 100, 10, // sender
		0, 0, 0, 0, 0, 0, 198, 18, 100, 10, // target
	}
	if len(f) != ethMinFrameLen {
		t.Errorf("frame length %d, want %d", len(f), ethMinFrameLen)
	}
	if !slices.Equal(f[:len(want)], want) {
		t.Errorf("frame\n% x\nwant\n% x", f[:len(want)], want)
	}
	if htons(0x0806) != binary.NativeEndian.Uint16([]byte{0x08, 0x06}) {
		t.Errorf("htons(0x0806) = %#x", htons(0x0806))
	}
}

// A quiet binding (aws_vip) is bound without any announcement.
func TestNetlinkQuietBindingSendsNoARP(t *testing.T) {
	a, b := pair(t)
	fd := arpCapture(t, b, "vb")
	vip := bind("va", "198.18.100.20/32")
	vip.Quiet = true
	n := NewNetlink([]Binding{vip}, nil)
	defer n.Wait()
	if err := a.Run(func() error { return n.Set([]Binding{vip}) }); err != nil {
		t.Fatal(err)
	}
	if got := addrs(t, a, "va"); !slices.Contains(got, "198.18.100.20/32") {
		t.Fatalf("addresses %v lack the quiet binding", got)
	}
	if got := readAnnouncements(t, fd, vip.Prefix.Addr(), 1, time.Now().Add(time.Second)); len(got) != 0 {
		t.Errorf("a quiet binding announced itself: %d frames", len(got))
	}
}
