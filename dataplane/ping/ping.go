// Package ping sends ICMP echo requests and waits for their replies.
//
// One Pinger holds one ICMP socket per address family and one reader
// goroutine per socket that hands each reply to the Ping call waiting for
// it, matched by sequence number, so any number of goroutines may ping
// through the same Pinger at once.
package ping

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Sentinel errors, wrapped by what Ping returns.
var (
	// ErrClosed is returned by Ping once the Pinger is closed.
	ErrClosed = errors.New("pinger closed")
	// ErrUnreachable means an ICMP error (destination unreachable, time
	// exceeded) came back for the echo request instead of a reply.
	ErrUnreachable = errors.New("unreachable")
)

const (
	protoICMP   = 1  // IANA protocol number of ICMP
	protoICMPv6 = 58 // IANA protocol number of ICMPv6
	tokenLen    = 8
)

// Pinger sends ICMP echo requests. Its sockets belong to the network
// namespace of the thread that called New; it may be used from any
// goroutine afterwards. Its methods are safe for concurrent use.
type Pinger struct {
	id        uint16         // echo identifier on raw sockets
	token     [tokenLen]byte // payload that marks our requests
	v4        *endpoint      // always set
	v6        *endpoint      // nil when IPv6 is not available
	v6Err     error          // why v6 is nil
	closeOnce sync.Once
}

// endpoint is one ICMP socket and the pings in flight on it.
type endpoint struct {
	conn  *icmp.PacketConn
	proto int
	raw   bool // raw socket ("ip4:icmp"), else a ping socket ("udp4")

	mu      sync.Mutex
	next    uint16
	pending map[uint16]*request

	done    chan struct{} // closed when the reader stops
	readErr error         // why it stopped, set before done is closed
}

// request is one echo request waiting for its answer.
type request struct {
	dst    netip.Addr
	answer chan answer // buffered, receives at most one value
}

type answer struct {
	at  time.Time
	err error
}

// New opens the ICMP sockets: a raw socket when privileged (CAP_NET_RAW),
// otherwise an unprivileged ping socket, which the system allows to the
// groups in net.ipv4.ping_group_range. IPv4 is required; IPv6 is used when
// available.
func New() (*Pinger, error) { return newPinger(true) }

func newPinger(tryRaw bool) (*Pinger, error) {
	p := &Pinger{}
	var id [2]byte
	rand.Read(id[:])
	p.id = binary.BigEndian.Uint16(id[:])
	rand.Read(p.token[:])

	v4, err := listen(4, tryRaw)
	if err != nil {
		return nil, fmt.Errorf("icmp socket: %w", err)
	}
	p.v4 = v4
	go p.read(v4)
	if v6, err := listen(6, tryRaw); err != nil {
		p.v6Err = err
	} else {
		p.v6 = v6
		go p.read(v6)
	}
	return p, nil
}

// listen opens the socket of one family, raw if tryRaw and allowed.
func listen(family int, tryRaw bool) (*endpoint, error) {
	rawNet, dgramNet, wildcard, proto := "ip4:icmp", "udp4", "0.0.0.0", protoICMP
	if family == 6 {
		rawNet, dgramNet, wildcard, proto = "ip6:ipv6-icmp", "udp6", "::", protoICMPv6
	}
	e := &endpoint{proto: proto, pending: make(map[uint16]*request), done: make(chan struct{})}
	var rawErr error
	if tryRaw {
		c, err := icmp.ListenPacket(rawNet, wildcard)
		if err == nil {
			e.conn, e.raw = c, true
			if err := e.filter(); err != nil {
				c.Close()
				return nil, fmt.Errorf("%s: icmp filter: %w", rawNet, err)
			}
			return e, nil
		}
		rawErr = fmt.Errorf("%s: %w", rawNet, err)
	}
	c, err := icmp.ListenPacket(dgramNet, wildcard)
	if err != nil {
		return nil, errors.Join(rawErr, fmt.Errorf("%s: %w", dgramNet, err))
	}
	e.conn = c
	return e, nil
}

// filter makes the kernel pass to a raw socket only the ICMP types the
// reader looks at.
func (e *endpoint) filter() error {
	if e.proto == protoICMP {
		var f ipv4.ICMPFilter
		f.SetAll(true)
		f.Accept(ipv4.ICMPTypeEchoReply)
		f.Accept(ipv4.ICMPTypeDestinationUnreachable)
		f.Accept(ipv4.ICMPTypeTimeExceeded)
		return e.conn.IPv4PacketConn().SetICMPFilter(&f)
	}
	var f ipv6.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv6.ICMPTypeEchoReply)
	f.Accept(ipv6.ICMPTypeDestinationUnreachable)
	f.Accept(ipv6.ICMPTypeTimeExceeded)
	return e.conn.IPv6PacketConn().SetICMPFilter(&f)
}

// Ping sends one echo request to addr and waits for its reply until ctx is
// done. It returns the round-trip time. When no reply comes in time the
// error wraps ctx's error (context.DeadlineExceeded for a timeout); when
// an ICMP error comes back instead it wraps ErrUnreachable.
func (p *Pinger) Ping(ctx context.Context, addr netip.Addr) (time.Duration, error) {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return 0, errors.New("ping: invalid address")
	}
	e := p.v4
	if addr.Is6() {
		if p.v6 == nil {
			return 0, fmt.Errorf("ping %s: no ICMPv6 socket: %w", addr, p.v6Err)
		}
		e = p.v6
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("ping %s: %w", addr, err)
	}

	seq, req, err := e.register(addr)
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", addr, err)
	}
	defer e.unregister(seq)

	typ := icmp.Type(ipv4.ICMPTypeEcho)
	if addr.Is6() {
		typ = ipv6.ICMPTypeEchoRequest
	}
	// The ICMPv6 checksum is left to the kernel, which always computes it.
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: int(p.id), Seq: int(seq), Data: p.token[:]}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return 0, fmt.Errorf("ping %s: %w", addr, err)
	}
	var dst net.Addr = &net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	if !e.raw {
		dst = &net.UDPAddr{IP: addr.AsSlice(), Zone: addr.Zone()}
	}

	start := time.Now()
	if _, err := e.conn.WriteTo(b, dst); err != nil {
		if errors.Is(err, net.ErrClosed) {
			err = ErrClosed
		}
		return 0, fmt.Errorf("ping %s: send: %w", addr, err)
	}
	select {
	case a := <-req.answer:
		if a.err != nil {
			return 0, fmt.Errorf("ping %s: %w", addr, a.err)
		}
		return a.at.Sub(start), nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: no echo reply after %s: %w", addr, time.Since(start).Round(time.Millisecond), ctx.Err())
	case <-e.done:
		return 0, fmt.Errorf("ping %s: %w", addr, e.readErr)
	}
}

// Close closes the sockets and stops the readers; pings in flight return
// ErrClosed. It is safe to call more than once.
func (p *Pinger) Close() error {
	var err error
	p.closeOnce.Do(func() {
		for _, e := range []*endpoint{p.v4, p.v6} {
			if e == nil {
				continue
			}
			if cerr := e.conn.Close(); cerr != nil {
				err = errors.Join(err, fmt.Errorf("close icmp socket: %w", cerr))
			}
			<-e.done
		}
	})
	return err
}

// register allocates a sequence number no ping in flight uses.
func (e *endpoint) register(dst netip.Addr) (uint16, *request, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.pending) >= 1<<16 {
		return 0, nil, errors.New("65536 pings in flight")
	}
	for {
		seq := e.next
		e.next++
		if _, busy := e.pending[seq]; !busy {
			r := &request{dst: dst.WithZone(""), answer: make(chan answer, 1)}
			e.pending[seq] = r
			return seq, r, nil
		}
	}
}

func (e *endpoint) unregister(seq uint16) {
	e.mu.Lock()
	delete(e.pending, seq)
	e.mu.Unlock()
}

// deliver hands a to the ping in flight with sequence number seq, if it
// went to dst.
func (e *endpoint) deliver(seq uint16, dst netip.Addr, a answer) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.pending[seq]
	if !ok || r.dst != dst {
		return
	}
	select {
	case r.answer <- a:
	default: // already answered (a duplicate reply)
	}
}

// read receives until the socket is closed.
func (p *Pinger) read(e *endpoint) {
	defer close(e.done)
	buf := make([]byte, 1500)
	for {
		n, peer, err := e.conn.ReadFrom(buf)
		at := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				e.readErr = ErrClosed
			} else {
				e.readErr = fmt.Errorf("receive: %w", err)
			}
			return
		}
		m, err := icmp.ParseMessage(e.proto, buf[:n])
		if err != nil {
			continue
		}
		switch body := m.Body.(type) {
		case *icmp.Echo:
			if m.Type != ipv4.ICMPTypeEchoReply && m.Type != ipv6.ICMPTypeEchoReply {
				continue
			}
			if (e.raw && body.ID != int(p.id)) || !bytes.Equal(body.Data, p.token[:]) {
				continue // another program's, or another Pinger's
			}
			e.deliver(uint16(body.Seq), peerAddr(peer), answer{at: at})
		case *icmp.DstUnreach:
			p.deliverError(e, body.Data, &icmpError{what: unreachableText(e.proto, m.Code), from: peerAddr(peer)})
		case *icmp.TimeExceeded:
			p.deliverError(e, body.Data, &icmpError{what: fmt.Sprintf("time exceeded (code %d)", m.Code), from: peerAddr(peer)})
		}
	}
}

// deliverError matches the echo request quoted in an ICMP error message
// (the original IP header and the start of our ICMP header) to its ping.
// Ping sockets get no such messages; raw ones do.
func (p *Pinger) deliverError(e *endpoint, quoted []byte, err error) {
	var dst netip.Addr
	var icmpHdr []byte
	switch e.proto {
	case protoICMP:
		if len(quoted) < 20 || quoted[0]>>4 != 4 || quoted[9] != protoICMP {
			return
		}
		ihl := int(quoted[0]&0x0f) * 4
		if ihl < 20 || len(quoted) < ihl+8 {
			return
		}
		dst = netip.AddrFrom4([4]byte(quoted[16:20]))
		icmpHdr = quoted[ihl : ihl+8]
		if icmpHdr[0] != byte(ipv4.ICMPTypeEcho) {
			return
		}
	case protoICMPv6:
		if len(quoted) < 48 || quoted[0]>>4 != 6 || quoted[6] != protoICMPv6 {
			return
		}
		dst = netip.AddrFrom16([16]byte(quoted[24:40]))
		icmpHdr = quoted[40:48]
		if icmpHdr[0] != byte(ipv6.ICMPTypeEchoRequest) {
			return
		}
	}
	if binary.BigEndian.Uint16(icmpHdr[4:6]) != p.id {
		return
	}
	e.deliver(binary.BigEndian.Uint16(icmpHdr[6:8]), dst, answer{err: err})
}

// icmpError is an ICMP error message received for an echo request.
type icmpError struct {
	what string
	from netip.Addr
}

func (e *icmpError) Error() string { return e.what + " (reported by " + e.from.String() + ")" }

func (e *icmpError) Unwrap() error { return ErrUnreachable }

// unreachableText names the common destination unreachable codes.
func unreachableText(proto, code int) string {
	if proto == protoICMP {
		switch code {
		case 0:
			return "network unreachable"
		case 1:
			return "host unreachable"
		case 3:
			return "port unreachable"
		case 13:
			return "communication administratively prohibited"
		}
	} else {
		switch code {
		case 0:
			return "no route to destination"
		case 1:
			return "communication administratively prohibited"
		case 3:
			return "address unreachable"
		case 4:
			return "port unreachable"
		}
	}
	return fmt.Sprintf("destination unreachable (code %d)", code)
}

// peerAddr is the IP address of a reader's peer.
func peerAddr(a net.Addr) netip.Addr {
	var ip net.IP
	switch a := a.(type) {
	case *net.IPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}
