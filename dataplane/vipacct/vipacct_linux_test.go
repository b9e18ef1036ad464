package vipacct

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/vigil-ha/vigil/internal/bpftest"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

// Test addresses: 198.18.21.0/24 inside the tests' namespaces.
var (
	addrB    = netip.MustParseAddr("198.18.21.2")
	vip      = netip.MustParseAddr("198.18.21.100")
	vipSpare = netip.MustParseAddr("198.18.21.101")
)

const payloadSize = 100

// setup makes namespaces A and B joined by a veth pair, binds vip in B,
// attaches the accounting to B's end and returns it with a socket in A.
func setup(t *testing.T) (*Accounting, *net.UDPConn) {
	t.Helper()
	bpftest.RequireTCX(t)
	a := netnstest.New(t, "vip-a")
	b := netnstest.New(t, "vip-b")
	netnstest.Veth(t, a, "va", netip.MustParsePrefix("198.18.21.1/24"), b, "vb", netip.MustParsePrefix("198.18.21.2/24"))
	var acc *Accounting
	b.Do(t, func() error {
		l, err := netlink.LinkByName("vb")
		if err != nil {
			return err
		}
		if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: vip.AsSlice(), Mask: net.CIDRMask(32, 32)}}); err != nil {
			return err
		}
		acc, err = Attach("vb")
		return err
	})
	t.Cleanup(func() { acc.Close() })
	var conn *net.UDPConn
	a.Do(t, func() error {
		var err error
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP("198.18.21.1")})
		return err
	})
	t.Cleanup(func() { conn.Close() })
	return acc, conn
}

func send(t *testing.T, conn *net.UDPConn, to netip.Addr, n int) {
	t.Helper()
	for range n {
		if _, err := conn.WriteToUDPAddrPort(make([]byte, payloadSize), netip.AddrPortFrom(to, 9)); err != nil {
			t.Fatal(err)
		}
	}
}

func stats(t *testing.T, acc *Accounting) map[netip.Addr]VIPStats {
	t.Helper()
	s, err := acc.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitStats polls Stats until cond holds on vip's entry, for at most 5 s.
func waitStats(t *testing.T, acc *Accounting, what string, cond func(VIPStats) bool) VIPStats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		s := stats(t, acc)[vip]
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestCountsAndArming(t *testing.T) {
	acc, conn := setup(t)
	if err := acc.Set([]netip.Addr{vip, vipSpare}); err != nil {
		t.Fatal(err)
	}
	const frameSize = 14 + 20 + 8 + payloadSize

	send(t, conn, addrB, 3) // not a VIP
	send(t, conn, vip, 5)
	s := waitStats(t, acc, "5 packets", func(s VIPStats) bool { return s.Packets >= 5 })
	if s != (VIPStats{Packets: 5, Bytes: 5 * frameSize}) {
		t.Errorf("vip stats %+v, want 5 packets of %d bytes, never armed", s, frameSize)
	}
	all := stats(t, acc)
	if len(all) != 2 || all[vipSpare] != (VIPStats{}) {
		t.Errorf("stats %+v, want the two VIPs only, the spare one untouched", all)
	}

	// Arming: the first packet afterwards is timed.
	before := now()
	if err := acc.Arm(vip); err != nil {
		t.Fatal(err)
	}
	s = stats(t, acc)[vip]
	if s.ArmedAt < before || s.ArmedAt > now() || s.FirstPacket != 0 {
		t.Fatalf("after Arm: %+v (armed between %v and %v)", s, before, now())
	}
	send(t, conn, vip, 1)
	s = waitStats(t, acc, "the first packet after arming", func(s VIPStats) bool { return s.FirstPacket != 0 })
	if s.FirstPacket < s.ArmedAt || s.FirstPacket > now() || s.Packets != 6 {
		t.Errorf("after a packet: %+v", s)
	}
	first := s.FirstPacket
	send(t, conn, vip, 1)
	s = waitStats(t, acc, "a 7th packet", func(s VIPStats) bool { return s.Packets >= 7 })
	if s.FirstPacket != first {
		t.Errorf("first packet moved from %v to %v", first, s.FirstPacket)
	}

	// Set is idempotent; leaving the set forgets.
	if err := acc.Set([]netip.Addr{vipSpare, vip}); err != nil {
		t.Fatal(err)
	}
	if got := stats(t, acc)[vip]; got != s {
		t.Errorf("Set with the same VIPs changed %+v to %+v", s, got)
	}
	if err := acc.Set([]netip.Addr{vip}); err != nil {
		t.Fatal(err)
	}
	if all := stats(t, acc); len(all) != 1 || all[vip] != s {
		t.Errorf("after dropping the spare VIP: %+v", all)
	}
	if err := acc.Arm(vipSpare); !errors.Is(err, ErrUnknownVIP) {
		t.Errorf("Arm of a VIP out of the set = %v, want ErrUnknownVIP", err)
	}
	if err := acc.Set([]netip.Addr{netip.MustParseAddr("2001:db8::1")}); !errors.Is(err, ErrInvalidVIP) {
		t.Errorf("Set with IPv6 = %v, want ErrInvalidVIP", err)
	}
	if err := acc.Set(nil); err != nil {
		t.Fatal(err)
	}
	send(t, conn, vip, 2)
	if all := stats(t, acc); len(all) != 0 {
		t.Errorf("after Set(nil): %+v", all)
	}

	if err := acc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := acc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := acc.Stats(); !errors.Is(err, ErrClosed) {
		t.Errorf("Stats after Close = %v, want ErrClosed", err)
	}
}

// TestNotSupportedBeforeTCX checks, on kernels without tcx, that Attach
// says the system cannot run it rather than failing obscurely.
func TestNotSupportedBeforeTCX(t *testing.T) {
	major, minor, err := bpftest.KernelVersion()
	if err != nil {
		t.Fatal(err)
	}
	if major > 6 || major == 6 && minor >= 6 {
		return // tcx is there: TestCountsAndArming covers Attach
	}
	ns := netnstest.New(t, "vip-old")
	ns.Do(t, func() error {
		acc, err := Attach("lo")
		if err == nil {
			acc.Close()
			return errors.New("Attach succeeded without tcx")
		}
		if !errors.Is(err, ErrNotSupported) {
			return fmt.Errorf("Attach = %v, want ErrNotSupported", err)
		}
		return nil
	})
}
