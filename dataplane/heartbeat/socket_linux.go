package heartbeat

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// listen binds a UDP socket on addr with SO_REUSEADDR, so a restarted daemon
// binds at once, and IP_FREEBIND (IPV6_FREEBIND), so a lane can start before
// its address is up.
func listen(ctx context.Context, addr netip.AddrPort) (*net.UDPConn, error) {
	network := "udp4"
	if addr.Addr().Is6() {
		network = "udp6"
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
				serr = fmt.Errorf("set SO_REUSEADDR: %w", err)
				return
			}
			var err error
			if network == "udp4" {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_FREEBIND, 1)
			} else {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_FREEBIND, 1)
			}
			if err != nil {
				serr = fmt.Errorf("set FREEBIND: %w", err)
				return
			}
			// ICMP errors to an unconnected socket are dropped unless
			// IP_RECVERR asks for them: a port unreachable tells a dead
			// daemon from a dead node.
			if network == "udp4" {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1)
			} else {
				err = unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVERR, 1)
			}
			if err != nil {
				serr = fmt.Errorf("set RECVERR: %w", err)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(ctx, network, addr.String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// readRefused reads one entry of conn's error queue and returns the
// destination of the datagram a peer's kernel refused with ICMP port
// unreachable.
func readRefused(conn *net.UDPConn) (netip.Addr, bool) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return netip.Addr{}, false
	}
	var dst netip.Addr
	var ok bool
	buf := make([]byte, MaxPacketSize)
	oob := make([]byte, 512)
	rc.Read(func(fd uintptr) bool {
		_, oobn, _, from, err := unix.Recvmsg(int(fd), buf, oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		if err != nil {
			return true // nothing queued: give up, do not wait
		}
		if !portUnreachable(oob[:oobn]) {
			return true
		}
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			dst, ok = netip.AddrFrom4(sa.Addr), true
		case *unix.SockaddrInet6:
			dst, ok = netip.AddrFrom16(sa.Addr).Unmap(), true
		}
		return true
	})
	return dst, ok
}

// portUnreachable reports whether the control messages of an error-queue
// read hold an ICMP (or ICMPv6) port unreachable.
func portUnreachable(oob []byte) bool {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return false
	}
	for _, m := range msgs {
		if len(m.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
			continue
		}
		ee := (*unix.SockExtendedErr)(unsafe.Pointer(&m.Data[0]))
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_RECVERR:
			return ee.Origin == unix.SO_EE_ORIGIN_ICMP && ee.Type == 3 && ee.Code == 3
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_RECVERR:
			return ee.Origin == unix.SO_EE_ORIGIN_ICMP6 && ee.Type == 1 && ee.Code == 4
		}
	}
	return false
}

// monoNow reads CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
func monoNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
