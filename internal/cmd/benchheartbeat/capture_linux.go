package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Heartbeat wire format offsets (dataplane/heartbeat), from the start of
// the UDP payload.
const (
	hbMagic       = "VGHB"
	hbTypeOff     = 5
	hbFlagsOff    = 8 // u16, bit 0: reply made by the kernel fast path
	hbNonceOff    = 34
	hbNonceEnd    = 50
	hbTypeProbe   = 1
	hbTypeReply   = 2
	captureRcvBuf = 8 << 20
)

// hbPacket is one heartbeat packet seen on a node's eth0.
type hbPacket struct {
	at     time.Time // kernel timestamp (CLOCK_REALTIME)
	probe  bool      // a probe this node sent (else a reply it received)
	kernel bool      // a reply made by the peer's kernel fast path
	nonce  [16]byte
}

// capture records, on one node's eth0, the heartbeat probes the node sends
// and the replies it receives, with the kernel's timestamps, through an
// AF_PACKET socket opened inside the node's namespace. The taps sit where
// the packets leave and enter the node's stack (after any XDP program), so
// a probe and its reply, matched by nonce, give the round trip the node's
// interface sees, late replies included.
type capture struct {
	node     int
	fd       int
	self     netip.Addr
	stop     atomic.Bool
	finished chan struct{}

	mu       sync.Mutex
	pkts     []hbPacket
	noStamp  int
	readErr  error
	kernDrop uint32
}

// startCapture opens the packet socket in node i's namespace and starts
// reading it.
func (e *env) startCapture(i int) (*capture, error) {
	c := &capture{node: i, self: netip.MustParseAddr(nodeAddr(i)), finished: make(chan struct{})}
	err := e.workers[i].do(func() error {
		ifi, err := net.InterfaceByName("eth0")
		if err != nil {
			return err
		}
		proto := htons(unix.ETH_P_ALL)
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(proto))
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		setup := func() error {
			if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: ifi.Index}); err != nil {
				return fmt.Errorf("bind eth0: %w", err)
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1); err != nil {
				return fmt.Errorf("SO_TIMESTAMPNS: %w", err)
			}
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, captureRcvBuf); err != nil {
				return fmt.Errorf("SO_RCVBUFFORCE: %w", err)
			}
			tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
			if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
				return fmt.Errorf("SO_RCVTIMEO: %w", err)
			}
			return nil
		}
		if err := setup(); err != nil {
			unix.Close(fd)
			return err
		}
		c.fd = fd
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("capture on %s eth0: %w", nodeNames[i], err)
	}
	go c.read()
	return c, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read records heartbeat packets until close.
func (c *capture) read() {
	defer close(c.finished)
	buf := make([]byte, 2048)
	oob := make([]byte, 256)
	for !c.stop.Load() {
		n, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			c.mu.Lock()
			c.readErr = err
			c.mu.Unlock()
			return
		}
		sll, ok := from.(*unix.SockaddrLinklayer)
		if !ok || sll.Protocol != htons(unix.ETH_P_IP) {
			continue
		}
		out := sll.Pkttype == unix.PACKET_OUTGOING
		p, ok := c.parse(buf[:n], out)
		if !ok {
			continue
		}
		at, stamped := timestamp(oob[:oobn])
		c.mu.Lock()
		if !stamped {
			c.noStamp++
			at = time.Now()
		}
		p.at = at
		c.pkts = append(c.pkts, p)
		c.mu.Unlock()
	}
}

// parse keeps the node's own probes going out and the replies coming in.
func (c *capture) parse(b []byte, out bool) (hbPacket, bool) {
	var p hbPacket
	if len(b) < 20 || b[0]>>4 != 4 || b[9] != unix.IPPROTO_UDP {
		return p, false
	}
	ihl := int(b[0]&0x0f) * 4
	if len(b) < ihl+8 {
		return p, false
	}
	src, _ := netip.AddrFromSlice(b[12:16])
	dst, _ := netip.AddrFromSlice(b[16:20])
	udp := b[ihl:]
	if binary.BigEndian.Uint16(udp[0:2]) != hbPort || binary.BigEndian.Uint16(udp[2:4]) != hbPort {
		return p, false
	}
	pl := udp[8:]
	if len(pl) < hbNonceEnd || string(pl[:4]) != hbMagic {
		return p, false
	}
	switch {
	case out && pl[hbTypeOff] == hbTypeProbe && src == c.self:
		p.probe = true
	case !out && pl[hbTypeOff] == hbTypeReply && dst == c.self:
		p.kernel = binary.BigEndian.Uint16(pl[hbFlagsOff:])&1 != 0
	default:
		return p, false
	}
	copy(p.nonce[:], pl[hbNonceOff:hbNonceEnd])
	return p, true
}

// timestamp extracts SCM_TIMESTAMPNS from a control message.
func timestamp(oob []byte) (time.Time, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Time{}, false
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:8]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:16]))
			return time.Unix(sec, nsec), true
		}
	}
	return time.Time{}, false
}

// close stops reading, reads the kernel's drop counter and closes the
// socket.
func (c *capture) close() {
	if c.stop.Swap(true) {
		return
	}
	<-c.finished
	if st, err := unix.GetsockoptTpacketStats(c.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		c.kernDrop = st.Drops
	}
	unix.Close(c.fd)
}

// gaps returns, for the node's packets of one kind (its probes, or the
// replies it received) before t: how long before t the last one was seen,
// and the longest gap between two of them (or the last one and t) in the
// window before t.
func (c *capture) gaps(t time.Time, window time.Duration, probes bool) (last, longest time.Duration, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	prev := t
	for j := len(c.pkts) - 1; j >= 0; j-- {
		p := c.pkts[j]
		if p.probe != probes || !p.at.Before(t) {
			continue
		}
		if !ok {
			last, ok = t.Sub(p.at), true
		}
		longest = max(longest, prev.Sub(p.at))
		if t.Sub(p.at) > window {
			break
		}
		prev = p.at
	}
	return last, longest, ok
}

// wireRTT is the outcome of matching one probe with its reply.
type wireRTT struct {
	sent   time.Time
	rtt    time.Duration // 0 if lost
	lost   bool
	kernel bool
}

// rtts matches every probe the node sent with its reply, by nonce.
func (c *capture) rtts() ([]wireRTT, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.readErr != nil {
		return nil, fmt.Errorf("capture on %s: %w", nodeNames[c.node], c.readErr)
	}
	replies := make(map[[16]byte]hbPacket, len(c.pkts)/2)
	for _, p := range c.pkts {
		if !p.probe {
			if _, dup := replies[p.nonce]; !dup {
				replies[p.nonce] = p
			}
		}
	}
	var out []wireRTT
	for _, p := range c.pkts {
		if !p.probe {
			continue
		}
		r, ok := replies[p.nonce]
		w := wireRTT{sent: p.at, lost: !ok}
		if ok {
			w.rtt, w.kernel = r.at.Sub(p.at), r.kernel
		}
		out = append(out, w)
	}
	return out, nil
}
