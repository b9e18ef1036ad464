package xdpheartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/dataplane/heartbeat"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

// Test addresses: 198.18.20.0/24 inside the tests' namespaces.
var (
	testKey    = []byte("0123456789abcdef-test-cluster-key")
	otherKey   = []byte("another-cluster-key-0123456789ab")
	testPort   = uint16(7946)
	addrA      = netip.MustParseAddr("198.18.20.1")
	addrB      = netip.MustParseAddr("198.18.20.2")
	addrStrang = netip.MustParseAddr("198.18.20.3")
	prefixA    = netip.MustParsePrefix("198.18.20.1/24")
	prefixB    = netip.MustParsePrefix("198.18.20.2/24")
	hbA        = netip.AddrPortFrom(addrA, testPort)
	hbB        = netip.AddrPortFrom(addrB, testPort)
)

// Server indexes: A is 1, B is 2; lane 0.
const (
	serverA = 1
	serverB = 2
)

// configB is the configuration of B's fast path on interface ifname.
func configB(ifname string) Config {
	return Config{
		Key: testKey, Self: serverB, ConfigHash: [16]byte{0xb}, Incarnation: 0xbbbb, Port: testPort,
		Interfaces: map[uint8]string{0: ifname},
		Members:    []Member{{Addr: addrA, Server: serverA, Lane: 0}},
	}
}

// configA is the configuration of A's fast path on interface ifname.
func configA(ifname string) Config {
	return Config{
		Key: testKey, Self: serverA, ConfigHash: [16]byte{0xa}, Incarnation: 0xaaaa, Port: testPort,
		Interfaces: map[uint8]string{0: ifname},
		Members:    []Member{{Addr: addrB, Server: serverB, Lane: 0}},
	}
}

// pair makes namespaces A and B joined by veth va (198.18.20.1) - vb
// (198.18.20.2).
func pair(t *testing.T) (a, b *netnstest.NS) {
	t.Helper()
	a = netnstest.New(t, "hb-a")
	b = netnstest.New(t, "hb-b")
	netnstest.Veth(t, a, "va", prefixA, b, "vb", prefixB)
	return a, b
}

// load loads a Fastpath in ns and closes it at the end of the test.
func load(t *testing.T, ns *netnstest.NS, cfg Config) *Fastpath {
	t.Helper()
	var f *Fastpath
	ns.Do(t, func() error {
		var err error
		f, err = Load(cfg)
		return err
	})
	t.Cleanup(func() {
		if err := f.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return f
}

// listen opens a UDP socket on addr inside ns.
func listen(t *testing.T, ns *netnstest.NS, addr netip.AddrPort) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	ns.Do(t, func() error {
		var err error
		c, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// prober is a userspace prober: a socket and a Codec.
type prober struct {
	t     *testing.T
	conn  *net.UDPConn
	codec *heartbeat.Codec
	self  uint8
	seq   uint64
	buf   []byte
}

func newProber(t *testing.T, conn *net.UDPConn, key []byte, self uint8) *prober {
	return &prober{t: t, conn: conn, codec: heartbeat.NewCodec(key), self: self, buf: make([]byte, 2048)}
}

// send sends a probe with payload to dst and returns it.
func (p *prober) send(dst netip.AddrPort, payload []byte) heartbeat.Packet {
	p.t.Helper()
	p.seq++
	pk := heartbeat.Packet{
		Type:        heartbeat.TypeProbe,
		Sender:      p.self,
		Lane:        0,
		ConfigHash:  [16]byte{0xa},
		Incarnation: 0xaaaa,
		Seq:         p.seq,
		SentAt:      time.Now().UnixNano(),
		Payload:     payload,
	}
	binary.BigEndian.PutUint64(pk.Nonce[:], p.seq)
	binary.BigEndian.PutUint64(pk.Nonce[8:], uint64(time.Now().UnixNano()))
	b, err := p.codec.Append(nil, &pk)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, dst); err != nil {
		p.t.Fatalf("send probe: %v", err)
	}
	return pk
}

// recv waits up to d for a datagram and decodes it; ok is false on timeout.
func (p *prober) recv(d time.Duration) (pk heartbeat.Packet, raw []byte, from netip.AddrPort, ok bool) {
	p.t.Helper()
	p.conn.SetReadDeadline(time.Now().Add(d))
	n, from, err := p.conn.ReadFromUDPAddrPort(p.buf)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return heartbeat.Packet{}, nil, from, false
	}
	if err != nil {
		p.t.Fatalf("receive: %v", err)
	}
	raw = bytes.Clone(p.buf[:n])
	pk, err = p.codec.Decode(raw)
	if err != nil {
		p.t.Fatalf("decode %d bytes from %v: %v", n, from, err)
	}
	return pk, raw, from, true
}

// roundTrip sends a probe and waits for its reply, retrying while the
// deadline allows (the first probe may wait for ARP). It fails the test if
// no reply comes.
func (p *prober) roundTrip(dst netip.AddrPort, payload []byte) (probe, reply heartbeat.Packet) {
	p.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		probe = p.send(dst, payload)
		for {
			r, _, _, ok := p.recv(200 * time.Millisecond)
			if !ok {
				break
			}
			if r.Type == heartbeat.TypeReply && r.Nonce == probe.Nonce {
				return probe, r
			}
		}
	}
	p.t.Fatalf("no reply from %v within 5s", dst)
	return
}

// noReply sends a probe and checks that no reply comes within d.
func (p *prober) noReply(dst netip.AddrPort, d time.Duration) {
	p.t.Helper()
	probe := p.send(dst, nil)
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		r, _, _, ok := p.recv(time.Until(end))
		if ok && r.Nonce == probe.Nonce {
			p.t.Fatalf("probe %d answered (flags %#x), want no answer", probe.Seq, r.Flags)
		}
	}
}

// waitFor polls cond every few milliseconds until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// frame wraps payload in Ethernet, IPv4 (no options) and UDP headers, with
// valid IPv4 and UDP checksums.
func frame(src, dst netip.AddrPort, payload []byte) []byte {
	b := make([]byte, 42+len(payload))
	copy(b[0:6], []byte{0x02, 0, 0, 0, 0, 0xb})
	copy(b[6:12], []byte{0x02, 0, 0, 0, 0, 0xa})
	binary.BigEndian.PutUint16(b[12:], 0x0800)
	ip := b[14:34]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	ip[6] = 0x40
	ip[8] = 64
	ip[9] = 17
	s4, d4 := src.Addr().As4(), dst.Addr().As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^csum(0, ip))
	udp := b[34:42]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(b[42:], payload)
	binary.BigEndian.PutUint16(udp[6:], udpChecksum(b))
	return b
}

// csum adds b to the one's complement sum and folds it to 16 bits.
func csum(sum uint32, b []byte) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return uint16(sum)
}

// udpChecksum computes the UDP checksum of frame f with the check field
// taken as zero.
func udpChecksum(f []byte) uint16 {
	ip, udp := f[14:34], f[34:]
	var ph [12]byte
	copy(ph[0:8], ip[12:20])
	ph[9] = 17
	binary.BigEndian.PutUint16(ph[10:], uint16(len(udp)))
	c := bytes.Clone(udp)
	c[6], c[7] = 0, 0
	s := ^csum(uint32(csum(0, ph[:])), c)
	if s == 0 {
		s = 0xffff
	}
	return s
}

// encode encodes p with c.
func encode(t testing.TB, c *heartbeat.Codec, p heartbeat.Packet) []byte {
	t.Helper()
	b, err := c.Append(nil, &p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testProbe returns a probe from sender on lane with an n-byte payload.
func testProbe(sender, lane uint8, seq uint64, n int) heartbeat.Packet {
	p := heartbeat.Packet{
		Type:        heartbeat.TypeProbe,
		Sender:      sender,
		Lane:        lane,
		ConfigHash:  [16]byte{1, 2, 3},
		Incarnation: 0x1122334455667788,
		Seq:         seq,
		SentAt:      1_700_000_000_000_000_000 + int64(seq),
		Payload:     make([]byte, n),
	}
	for i := range p.Payload {
		p.Payload[i] = byte(i*7 + 1)
	}
	binary.BigEndian.PutUint64(p.Nonce[:], seq)
	p.Nonce[15] = 0xee
	return p
}
