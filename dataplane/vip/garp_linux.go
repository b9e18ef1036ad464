//go:build linux

package vip

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// garpSchedule is when the announcements of a new address are sent,
// counted from the moment it is bound.
var garpSchedule = []time.Duration{0, 100 * time.Millisecond, 200 * time.Millisecond}

// ARP constants (RFC 826).
const (
	arpHardwareEthernet = 1
	arpOpRequest        = 1
	arpOpReply          = 2
	arpLen              = 28
	ethHeaderLen        = 14
	ethMinFrameLen      = 60 // without the frame check sequence
)

// announce sends the gratuitous ARP announcements of b's IPv4 address on
// the interface attrs describes, in the background. The packet socket is
// opened here, on the caller's thread, so that it belongs to the same
// network namespace as the address; the goroutine only writes to it.
// Called with n.mu held.
func (n *Netlink) announce(b Binding, attrs *netlink.LinkAttrs) {
	log := n.log.With("address", b.Prefix.Addr().String(), "interface", b.Interface)
	if attrs.Flags&net.FlagLoopback != 0 || attrs.RawFlags&unix.IFF_NOARP != 0 || len(attrs.HardwareAddr) != 6 {
		log.Debug("gratuitous arp skipped: interface does not use ARP")
		return
	}
	// Protocol 0: the socket sends only and never queues received frames.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		log.Warn("gratuitous arp: packet socket", "err", err)
		return
	}
	frame := garpFrame(attrs.HardwareAddr, b.Prefix.Addr())
	to := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  attrs.Index,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}

	if old, ok := n.announcing[b]; ok {
		close(old)
	}
	stop := make(chan struct{})
	n.announcing[b] = stop
	n.senders++
	go func() {
		defer func() {
			unix.Close(fd)
			n.mu.Lock()
			if n.announcing[b] == stop {
				delete(n.announcing, b)
			}
			if n.senders--; n.senders == 0 {
				n.idle.Broadcast()
			}
			n.mu.Unlock()
		}()
		start := time.Now()
		timer := time.NewTimer(0)
		defer timer.Stop()
		for i, at := range garpSchedule {
			timer.Reset(time.Until(start.Add(at)))
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			// Sending under n.mu orders it with removals: once remove has
			// closed stop, nothing more is sent.
			n.mu.Lock()
			select {
			case <-stop:
				n.mu.Unlock()
				return
			default:
			}
			err := unix.Sendto(fd, frame, 0, to)
			n.mu.Unlock()
			if err != nil {
				log.Warn("gratuitous arp", "n", i+1, "err", err)
				continue
			}
			log.Debug("gratuitous arp sent", "n", i+1)
		}
	}()
}

// stopAnnouncing cancels b's pending announcements: an address no longer
// bound here must not be announced. Called with n.mu held.
func (n *Netlink) stopAnnouncing(b Binding) {
	if stop, ok := n.announcing[b]; ok {
		close(stop)
		delete(n.announcing, b)
	}
}

// garpFrame builds an Ethernet broadcast frame carrying an ARP
// announcement (RFC 5227 section 2.3): a request whose sender and target
// protocol addresses are both ip, sender hardware address mac, and target
// hardware address zero. The frame is padded to the Ethernet minimum.
func garpFrame(mac net.HardwareAddr, ip netip.Addr) []byte {
	f := make([]byte, ethMinFrameLen)
	copy(f[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], unix.ETH_P_ARP)
	a := f[ethHeaderLen : ethHeaderLen+arpLen]
	binary.BigEndian.PutUint16(a[0:2], arpHardwareEthernet)
	binary.BigEndian.PutUint16(a[2:4], unix.ETH_P_IP)
	a[4] = 6 // hardware address length
	a[5] = 4 // protocol address length
	binary.BigEndian.PutUint16(a[6:8], arpOpRequest)
	copy(a[8:14], mac)
	ip4 := ip.As4()
	copy(a[14:18], ip4[:])
	// a[18:24], the target hardware address, stays zero.
	copy(a[24:28], ip4[:])
	return f
}

// htons converts v to network byte order, as sockaddr_ll wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
