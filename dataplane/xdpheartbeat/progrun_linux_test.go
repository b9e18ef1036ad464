package xdpheartbeat

import (
	"bytes"
	"encoding/binary"
	"errors"

	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/vigil-ha/vigil/dataplane/heartbeat"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

// XDP verdicts.
const (
	xdpDrop = 1
	xdpPass = 2
	xdpTx   = 3
)

// loopbackLane1 is a member on lane 1, which is another interface: probes
// from it that arrive on lo (lane 0) are on the wrong lane.
var loopbackLane1 = netip.MustParseAddr("198.18.20.4")

// loadOnLoopback loads a Fastpath as server B in a fresh namespace with
// lane 0 on lo, the interface BPF_PROG_TEST_RUN runs XDP programs on, and
// lane 1 on a veth end.
func loadOnLoopback(t testing.TB) *Fastpath {
	t.Helper()
	ns := netnstest.New(t, "hb-run")
	var f *Fastpath
	ns.Do(t, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d1"}, PeerName: "d1p"}); err != nil {
			return err
		}
		cfg := configB("lo")
		cfg.Interfaces[1] = "d1"
		cfg.Members = append(cfg.Members, Member{Addr: loopbackLane1, Server: 3, Lane: 1})
		var err error
		f, err = Load(cfg)
		return err
	})
	t.Cleanup(func() { f.Close() })
	return f
}

// run runs the program once on in and returns the verdict and the frame
// it left.
func run(t testing.TB, f *Fastpath, in []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, 4096)
	opts := &ebpf.RunOptions{Data: in, DataOut: out}
	ret, err := f.objs.VigilHbXdp.Run(opts)
	if err != nil {
		t.Fatalf("prog run: %v", err)
	}
	return ret, opts.DataOut
}

// TestProgRunAnswersProbes runs probes of every padding case through the
// program and checks the reply byte by byte with the userspace Codec, the
// headers, both checksums, and the copy delivered to ReadProbe.
func TestProgRunAnswersProbes(t *testing.T) {
	f := loadOnLoopback(t)
	if err := f.SetEpoch(0xe90c); err != nil {
		t.Fatal(err)
	}
	c := heartbeat.NewCodec(testKey)
	src := netip.AddrPortFrom(addrA, 40001)
	buf := make([]byte, heartbeat.MaxPacketSize)
	answered := uint64(0)
	for _, n := range []int{0, 1, 7, 8, 13, 40, 47, 48, 55, 56, 63, 64, 100, 111, 112, 500, 1000, 1023, 1024} {
		p := testProbe(serverA, 0, uint64(n+1), n)
		probeBytes := encode(t, c, p)
		in := frame(src, hbB, probeBytes)
		before := time.Now().UnixNano()
		ret, out := run(t, f, in)
		after := time.Now().UnixNano()
		if ret != xdpTx {
			t.Fatalf("payload %d: verdict %d, want XDP_TX; counters %+v", n, ret, f.Counters())
		}
		answered++
		if len(out) != 42+heartbeat.ReplySize {
			t.Fatalf("payload %d: reply frame of %d bytes, want %d", n, len(out), 42+heartbeat.ReplySize)
		}
		// Headers swapped and fixed.
		if !bytes.Equal(out[0:6], in[6:12]) || !bytes.Equal(out[6:12], in[0:6]) {
			t.Errorf("payload %d: MACs not swapped", n)
		}
		if !bytes.Equal(out[26:30], in[30:34]) || !bytes.Equal(out[30:34], in[26:30]) {
			t.Errorf("payload %d: IP addresses not swapped", n)
		}
		if !bytes.Equal(out[34:36], in[36:38]) || !bytes.Equal(out[36:38], in[34:36]) {
			t.Errorf("payload %d: ports not swapped", n)
		}
		if tot := binary.BigEndian.Uint16(out[16:]); tot != 20+8+heartbeat.ReplySize {
			t.Errorf("payload %d: IP total length %d", n, tot)
		}
		if ul := binary.BigEndian.Uint16(out[38:]); ul != 8+heartbeat.ReplySize {
			t.Errorf("payload %d: UDP length %d", n, ul)
		}
		if s := csum(0, out[14:34]); s != 0xffff {
			t.Errorf("payload %d: IPv4 header checksum does not verify (sum %#x)", n, s)
		}
		if got, want := binary.BigEndian.Uint16(out[40:]), udpChecksum(out); got != want {
			t.Errorf("payload %d: UDP checksum %#04x, want %#04x", n, got, want)
		}
		// The reply itself.
		r, err := c.Decode(out[42:])
		if err != nil {
			t.Fatalf("payload %d: decode reply: %v", n, err)
		}
		if r.Type != heartbeat.TypeReply || r.Sender != serverB || r.Lane != 0 || r.Flags != heartbeat.FlagKernelReply ||
			r.ConfigHash != [16]byte{0xb} || r.Incarnation != 0xbbbb || r.Nonce != p.Nonce || r.Seq != p.Seq ||
			r.EchoSentAt != p.SentAt || r.Epoch != 0xe90c {
			t.Errorf("payload %d: reply %+v", n, r)
		}
		if r.ReceivedAt < before-int64(time.Millisecond) || r.ReceivedAt > after+int64(time.Millisecond) ||
			r.SentAt < r.ReceivedAt || r.SentAt > after+int64(time.Millisecond) {
			t.Errorf("payload %d: received at %d, sent at %d, not within [%d, %d]", n, r.ReceivedAt, r.SentAt, before, after)
		}
		// The probe, for the daemon.
		f.SetReadDeadline(time.Now().Add(5 * time.Second))
		pr, err := f.ReadProbe(buf)
		if err != nil {
			t.Fatalf("payload %d: read probe: %v", n, err)
		}
		if !bytes.Equal(buf[:pr.N], probeBytes) || pr.Src != src || pr.Peer != serverA || pr.Lane != 0 ||
			pr.Received <= 0 || pr.Received > Now() {
			t.Errorf("payload %d: ReadProbe %+v, bytes equal %v", n, pr, bytes.Equal(buf[:pr.N], probeBytes))
		}
	}
	if got := f.Counters(); got != (Counters{Answered: answered}) {
		t.Errorf("counters %+v, want only Answered %d", got, answered)
	}
}

// TestProgRunPasses checks what the program passes, drops and counts
// without answering.
func TestProgRunPasses(t *testing.T) {
	f := loadOnLoopback(t)
	c := heartbeat.NewCodec(testKey)
	src := netip.AddrPortFrom(addrA, 40001)
	good := encode(t, c, testProbe(serverA, 0, 1, 10))

	withIPOptions := func(b []byte) []byte {
		// Insert 4 bytes of options (NOP NOP NOP EOL) after the IPv4 header.
		out := append(append(append([]byte{}, b[:34]...), 1, 1, 1, 0), b[34:]...)
		out[14] = 0x46
		binary.BigEndian.PutUint16(out[16:], binary.BigEndian.Uint16(out[16:])+4)
		out[24], out[25] = 0, 0
		binary.BigEndian.PutUint16(out[24:], ^csum(0, out[14:38]))
		return out
	}
	mutate := func(b []byte, off int, v byte) []byte {
		b = bytes.Clone(b)
		b[off] = v
		return b
	}
	arp := frame(src, hbB, good)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)

	cases := []struct {
		name    string
		in      []byte
		verdict uint32
		want    Counters
	}{
		{"arp", arp, xdpPass, Counters{}},
		{"other port", frame(src, netip.AddrPortFrom(addrB, 53), good), xdpPass, Counters{}},
		{"non-member", frame(netip.AddrPortFrom(addrStrang, 40001), hbB, good), xdpPass, Counters{NonMember: 1}},
		{"bad tag", frame(src, hbB, mutate(good, len(good)-1, good[len(good)-1]^1)), xdpDrop, Counters{BadTag: 1}},
		{"other key", frame(src, hbB, encode(t, heartbeat.NewCodec(otherKey), testProbe(serverA, 0, 1, 10))), xdpDrop, Counters{BadTag: 1}},
		{"payload tampered", frame(src, hbB, mutate(good, 70, good[70]^0x80)), xdpDrop, Counters{BadTag: 1}},
		{"wrong lane in header", frame(src, hbB, encode(t, c, testProbe(serverA, 1, 1, 10))), xdpPass, Counters{WrongLane: 1}},
		{"wrong sender", frame(src, hbB, encode(t, c, testProbe(7, 0, 1, 10))), xdpPass, Counters{WrongLane: 1}},
		{"member of another lane", frame(netip.AddrPortFrom(loopbackLane1, 40001), hbB, encode(t, c, testProbe(3, 1, 1, 10))), xdpPass, Counters{WrongLane: 1}},
		{"bad magic", frame(src, hbB, mutate(good, 0, 'X')), xdpPass, Counters{Malformed: 1}},
		{"bad version", frame(src, hbB, mutate(good, 4, 2)), xdpPass, Counters{Malformed: 1}},
		{"bad type", frame(src, hbB, mutate(good, 5, 9)), xdpPass, Counters{Malformed: 1}},
		{"payload length too long", frame(src, hbB, mutate(good, 67, 11)), xdpPass, Counters{Malformed: 1}},
		{"truncated", frame(src, hbB, good[:len(good)-1]), xdpPass, Counters{Malformed: 1}},
		{"too short", frame(src, hbB, good[:60]), xdpPass, Counters{Malformed: 1}},
		{"oversize payload length", frame(src, hbB, mutate(mutate(good, 66, 0x04), 67, 0x01)), xdpPass, Counters{Malformed: 1}},
		{"broadcast", frame(src, netip.AddrPortFrom(netip.MustParseAddr("255.255.255.255"), testPort), good), xdpPass, Counters{Malformed: 1}},
		{"ip options", withIPOptions(frame(src, hbB, good)), xdpPass, Counters{IPOptions: 1}},
		{"reply too long", frame(src, hbB, append(encode(t, c, heartbeat.Packet{Type: heartbeat.TypeReply, Sender: serverA}), 0)), xdpPass, Counters{Malformed: 1}},
	}
	for _, tc := range cases {
		before := f.Counters()
		ret, out := run(t, f, tc.in)
		if ret != tc.verdict {
			t.Errorf("%s: verdict %d, want %d", tc.name, ret, tc.verdict)
		}
		if ret == xdpPass && !bytes.Equal(out, tc.in) {
			t.Errorf("%s: passed frame was modified", tc.name)
		}
		if got := diff(f.Counters(), before); got != tc.want {
			t.Errorf("%s: counters moved by %+v, want %+v", tc.name, got, tc.want)
		}
	}
	// Nothing reached the daemon.
	f.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	if _, err := f.ReadProbe(make([]byte, heartbeat.MaxPacketSize)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadProbe = %v, want a deadline error: nothing was answered", err)
	}
}

// diff returns a - b field by field.
func diff(a, b Counters) Counters {
	return Counters{
		Answered: a.Answered - b.Answered, BadTag: a.BadTag - b.BadTag, NonMember: a.NonMember - b.NonMember,
		WrongLane: a.WrongLane - b.WrongLane, Malformed: a.Malformed - b.Malformed, IPOptions: a.IPOptions - b.IPOptions,
		NotConfigured: a.NotConfigured - b.NotConfigured, RingbufFull: a.RingbufFull - b.RingbufFull,
		TxError: a.TxError - b.TxError, RepliesRecorded: a.RepliesRecorded - b.RepliesRecorded,
		RepliesUnknownNonce: a.RepliesUnknownNonce - b.RepliesUnknownNonce,
		RepliesBadTag:       a.RepliesBadTag - b.RepliesBadTag, RepliesMismatch: a.RepliesMismatch - b.RepliesMismatch,
	}
}

// TestProgRunRecordsReplies runs replies through the prober side.
func TestProgRunRecordsReplies(t *testing.T) {
	f := loadOnLoopback(t) // we are B; A (server 1) answers our probes
	src := netip.AddrPortFrom(addrA, testPort)
	reply := func(key []byte, nonce byte, epoch uint64, flags uint16) []byte {
		p := heartbeat.Packet{
			Type: heartbeat.TypeReply, Sender: serverA, Lane: 0, Flags: flags, Incarnation: 0xaaaa,
			Nonce: [16]byte{nonce}, Seq: uint64(nonce), SentAt: 1, EchoSentAt: 2, ReceivedAt: 3, Epoch: epoch,
		}
		return frame(src, hbB, encode(t, heartbeat.NewCodec(key), p))
	}
	check := func(name string, in []byte, want Counters) {
		t.Helper()
		before := f.Counters()
		ret, out := run(t, f, in)
		if ret != xdpPass || !bytes.Equal(out, in) {
			t.Errorf("%s: verdict %d (frame unchanged %v), want XDP_PASS with the frame unchanged", name, ret, bytes.Equal(out, in))
		}
		if got := diff(f.Counters(), before); got != want {
			t.Errorf("%s: counters moved by %+v, want %+v", name, got, want)
		}
	}

	if _, ok := f.PeerLane(serverA, 0); ok {
		t.Fatal("PeerLane reports a peer before any reply")
	}
	check("unknown nonce", reply(testKey, 1, 5, 0), Counters{RepliesUnknownNonce: 1})

	sent := Now()
	for i := byte(1); i <= 4; i++ {
		if err := f.Outstanding([16]byte{i}, serverA, 0, sent); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Outstanding([16]byte{9}, serverA, 1, sent); err != nil {
		t.Fatal(err)
	}
	check("forged", reply(otherKey, 1, 5, 0), Counters{RepliesBadTag: 1})
	check("registered for another lane", reply(testKey, 9, 5, 0), Counters{RepliesMismatch: 1})
	if _, ok := f.PeerLane(serverA, 0); ok {
		t.Fatal("PeerLane reports a forged or mismatched reply")
	}

	check("authentic", reply(testKey, 1, 5, heartbeat.FlagKernelReply), Counters{RepliesRecorded: 1})
	s1, ok := f.PeerLane(serverA, 0)
	now := Now()
	if !ok || s1.Replies != 1 || s1.KernelReplies != 1 || s1.Epoch != 5 || s1.LastReply < sent || s1.LastReply > now ||
		s1.RTT != s1.LastReply-sent || s1.EpochChanged != s1.LastReply {
		t.Fatalf("after one reply: %+v, %v (sent %v, now %v)", s1, ok, sent, now)
	}
	check("replayed", reply(testKey, 1, 5, 0), Counters{RepliesUnknownNonce: 1})

	// Same epoch: EpochChanged stays; a userspace reply counts apart.
	check("same epoch", reply(testKey, 2, 5, 0), Counters{RepliesRecorded: 1})
	s2, _ := f.PeerLane(serverA, 0)
	if s2.Replies != 2 || s2.KernelReplies != 1 || s2.EpochChanged != s1.EpochChanged || s2.LastReply <= s1.LastReply {
		t.Fatalf("after a reply with the same epoch: %+v, before %+v", s2, s1)
	}
	// New epoch: EpochChanged moves to that reply.
	check("new epoch", reply(testKey, 3, 6, heartbeat.FlagKernelReply), Counters{RepliesRecorded: 1})
	s3, _ := f.PeerLane(serverA, 0)
	if s3.Replies != 3 || s3.Epoch != 6 || s3.EpochChanged != s3.LastReply || s3.EpochChanged <= s2.LastReply {
		t.Fatalf("after a reply with a new epoch: %+v, before %+v", s3, s2)
	}
}

// TestVerifierFigures loads the program with verifier statistics and
// reports them; it fails if the verifier needs more than a tenth of its
// one-million-instruction budget.
func TestVerifierFigures(t *testing.T) {
	ns := netnstest.New(t, "hb-verifier")
	ns.Do(t, func() error {
		spec, err := loadHeartbeat()
		if err != nil {
			return err
		}
		if err := spec.Variables[heartbeatVarHbPort].Set(testPort); err != nil {
			return err
		}
		var objs heartbeatObjects
		err = spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			// Load again for the instruction log, and show its end.
			err2 := spec.LoadAndAssign(&heartbeatObjects{}, &ebpf.CollectionOptions{
				Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelInstruction, LogSizeStart: 1 << 26},
			})
			if errors.As(err2, &ve) {
				tail := ve.Log[max(0, len(ve.Log)-60):]
				t.Logf("verifier log, last %d lines:\n%s", len(tail), strings.Join(tail, "\n"))
			}
		}
		if err != nil {
			return err
		}
		defer objs.Close()
		log := strings.TrimSpace(objs.VigilHbXdp.VerifierLog)
		info, err := objs.VigilHbXdp.Info()
		if err != nil {
			return err
		}
		insns, err := info.Instructions()
		if err != nil {
			return err
		}
		verified, _ := info.VerifiedInstructions()
		jited, _ := info.JitedSize()
		t.Logf("%s: %d BPF instructions, JIT %d bytes, verifier processed %d", ProgramName, len(insns), jited, verified)
		t.Logf("verifier: %s", log)
		if verified > 100_000 {
			t.Errorf("verifier processed %d instructions, want at most 100000", verified)
		}
		return nil
	})
}
