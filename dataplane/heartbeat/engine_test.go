package heartbeat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// waitDeadline is generous: the test machines are shared and noisy. Tests
// wait for behaviour, never assert on timing.
const waitDeadline = 60 * time.Second

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitDeadline)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up after %v waiting for %s", waitDeadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// checkGoroutines fails the test if goroutines it started outlive it. Call
// it first, so that its cleanup runs after the engines' cleanups.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		waitFor(t, fmt.Sprintf("goroutines back to %d", before), func() bool {
			return runtime.NumGoroutine() <= before
		})
	})
}

// freePort returns a UDP port free on every address at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

type recorder struct {
	mu  sync.Mutex
	obs []Observation
}

func (r *recorder) handle(o Observation) {
	r.mu.Lock()
	r.obs = append(r.obs, o)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []Observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Observation(nil), r.obs...)
}

func (r *recorder) has(f func(Observation) bool) bool {
	for _, o := range r.snapshot() {
		if f(o) {
			return true
		}
	}
	return false
}

type node struct {
	*Engine
	rec *recorder
}

// start runs an engine for cfg, with payload set before Run if not nil,
// until the test ends; the cleanup checks that Run returned nil.
func start(t *testing.T, cfg Config, payload []byte) node {
	t.Helper()
	rec := &recorder{}
	cfg.Handler = rec.handle
	cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if payload != nil {
		e.SetPayload(payload)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(waitDeadline):
			t.Errorf("Run did not return within %v of its context ending", waitDeadline)
		}
	})
	return node{Engine: e, rec: rec}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// twoNodeConfigs returns the configs of servers 1 (127.0.0.1) and 2
// (127.0.0.2) on one lane.
func twoNodeConfigs(port int, interval time.Duration) (Config, Config) {
	a := Config{
		Key: testKey, Self: 1, ConfigHash: [16]byte{'A'}, Port: port, Interval: interval,
		Lanes: []LaneConfig{{Index: 0, Name: "lan1", Local: addr("127.0.0.1"), Peers: []Peer{{Index: 2, Addr: addr("127.0.0.2")}}}},
	}
	b := Config{
		Key: testKey, Self: 2, ConfigHash: [16]byte{'B'}, Port: port, Interval: interval,
		Lanes: []LaneConfig{{Index: 0, Name: "lan1", Local: addr("127.0.0.2"), Peers: []Peer{{Index: 1, Addr: addr("127.0.0.1")}}}},
	}
	return a, b
}

func TestNewValidates(t *testing.T) {
	good := func() Config {
		a, _ := twoNodeConfigs(29001, time.Second)
		return a
	}
	if _, err := New(good()); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name string
		edit func(c *Config)
	}{
		{"short key", func(c *Config) { c.Key = c.Key[:MinKeySize-1] }},
		{"port 0", func(c *Config) { c.Port = 0 }},
		{"port too big", func(c *Config) { c.Port = 65536 }},
		{"interval too short", func(c *Config) { c.Interval = time.Microsecond }},
		{"no lanes", func(c *Config) { c.Lanes = nil }},
		{"lane without name", func(c *Config) { c.Lanes[0].Name = "" }},
		{"duplicate lane name", func(c *Config) {
			c.Lanes = append(c.Lanes, LaneConfig{Index: 1, Name: "lan1", Local: addr("127.0.0.3")})
		}},
		{"duplicate lane index", func(c *Config) {
			c.Lanes = append(c.Lanes, LaneConfig{Index: 0, Name: "lan2", Local: addr("127.0.0.3")})
		}},
		{"shared local address", func(c *Config) {
			c.Lanes = append(c.Lanes, LaneConfig{Index: 1, Name: "lan2", Local: addr("127.0.0.1")})
		}},
		{"invalid local address", func(c *Config) { c.Lanes[0].Local = netip.Addr{} }},
		{"unspecified local address", func(c *Config) { c.Lanes[0].Local = addr("0.0.0.0") }},
		{"peer is self", func(c *Config) { c.Lanes[0].Peers[0].Index = c.Self }},
		{"duplicate peer index", func(c *Config) {
			c.Lanes[0].Peers = append(c.Lanes[0].Peers, Peer{Index: 2, Addr: addr("127.0.0.3")})
		}},
		{"duplicate peer address", func(c *Config) {
			c.Lanes[0].Peers = append(c.Lanes[0].Peers, Peer{Index: 3, Addr: addr("127.0.0.2")})
		}},
		{"peer at local address", func(c *Config) { c.Lanes[0].Peers[0].Addr = addr("127.0.0.1") }},
		{"peer of another family", func(c *Config) { c.Lanes[0].Peers[0].Addr = addr("::1") }},
		{"invalid peer address", func(c *Config) { c.Lanes[0].Peers[0].Addr = netip.Addr{} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.edit(&c)
			if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("New: %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestRunBindErrorClosesEarlierLanes(t *testing.T) {
	checkGoroutines(t)
	port := freePort(t)
	// A socket without SO_REUSEADDR holds the second lane's address.
	holder, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	e, err := New(Config{
		Key: testKey, Self: 1, Port: port, Interval: time.Second,
		Lanes: []LaneConfig{
			{Index: 0, Name: "lan1", Local: addr("127.0.0.2")},
			{Index: 1, Name: "lan2", Local: addr("127.0.0.3")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	err = e.Run(context.Background())
	want := fmt.Sprintf("bind lane lan2 127.0.0.3:%d: ", port)
	if err == nil || !strings.HasPrefix(err.Error(), want) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Run: %v, want %q... wrapping EADDRINUSE", err, want)
	}
	// lan1's socket was closed: a socket without SO_REUSEADDR can take it.
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: port})
	if err != nil {
		t.Fatalf("lan1 address still bound: %v", err)
	}
	c.Close()
	if err := e.Run(context.Background()); !errors.Is(err, ErrAlreadyRun) {
		t.Fatalf("second Run: %v, want ErrAlreadyRun", err)
	}
}

// TestRunFreeBind binds a lane on an address this host does not have, as a
// lane does before its interface is up. The lane has no peers, so nothing is
// sent.
func TestRunFreeBind(t *testing.T) {
	checkGoroutines(t)
	n := start(t, Config{
		Key: testKey, Self: 1, Port: freePort(t), Interval: 10 * time.Millisecond,
		Lanes: []LaneConfig{{Index: 0, Name: "lan1", Local: addr("198.18.0.1")}},
	}, nil)
	// The epoch advances once per tick; replies would carry it.
	waitFor(t, "a few ticks", func() bool { return n.epoch.Load() >= 3 })
}

func TestLoopbackTwoEngines(t *testing.T) {
	checkGoroutines(t)
	ca, cb := twoNodeConfigs(freePort(t), 20*time.Millisecond)
	a := start(t, ca, nil)
	bn := start(t, cb, []byte("hello"))

	waitFor(t, "A to see B's reply", func() bool {
		return a.rec.has(func(o Observation) bool {
			return o.Kind == ReplyReceived && o.Peer == 2 && o.Lane == 0 && o.RTT > 0 &&
				o.Incarnation == bn.Incarnation() && o.ConfigHash == cb.ConfigHash && o.Epoch >= 1 && o.Payload == nil
		})
	})
	waitFor(t, "A to see B's probe with its payload", func() bool {
		return a.rec.has(func(o Observation) bool {
			return o.Kind == ProbeReceived && o.Peer == 2 && o.Lane == 0 &&
				o.Incarnation == bn.Incarnation() && o.ConfigHash == cb.ConfigHash && string(o.Payload) == "hello"
		})
	})
	waitFor(t, "B to see A's reply and probe", func() bool {
		reply := bn.rec.has(func(o Observation) bool {
			return o.Kind == ReplyReceived && o.Peer == 1 && o.RTT > 0 && o.Incarnation == a.Incarnation() && o.ConfigHash == ca.ConfigHash
		})
		probe := bn.rec.has(func(o Observation) bool {
			return o.Kind == ProbeReceived && o.Peer == 1 && o.Incarnation == a.Incarnation() && o.Payload == nil
		})
		return reply && probe
	})

	bn.SetPayload([]byte("v2"))
	waitFor(t, "A to see B's new payload", func() bool {
		return a.rec.has(func(o Observation) bool { return o.Kind == ProbeReceived && string(o.Payload) == "v2" })
	})

	// B's epoch advances with its ticks, and its replies carry it.
	var first uint64
	for _, o := range a.rec.snapshot() {
		if o.Kind == ReplyReceived {
			first = o.Epoch
			break
		}
	}
	waitFor(t, "B's epoch to advance in its replies", func() bool {
		return a.rec.has(func(o Observation) bool { return o.Kind == ReplyReceived && o.Epoch > first })
	})

	for name, n := range map[string]node{"A": a, "B": bn} {
		s := n.Stats()
		if s.ProbesSent == 0 || s.RepliesSent == 0 || s.ProbesReceived == 0 || s.RepliesReceived == 0 {
			t.Errorf("%s: counters not moving: %+v", name, s)
		}
		if len(s.Drops) != int(numDropReasons) {
			t.Errorf("%s: drops %v lack reasons", name, s.Drops)
		}
		for reason, count := range s.Drops {
			// A loaded machine may delay a reply past its probe's expiry.
			if count != 0 && reason != DropLateReply {
				t.Errorf("%s: %d packets dropped as %s", name, count, reason)
			}
		}
	}
	if _, ok := a.Stats().Misses[PeerLane{Peer: 2, Lane: 0}]; !ok {
		t.Errorf("A's misses %v lack peer 2 on lane 0", a.Stats().Misses)
	}
}

// TestSetPayloadProbesAtOnce uses an interval of an hour: after the first
// round, only SetPayload can make B probe again.
func TestSetPayloadProbesAtOnce(t *testing.T) {
	checkGoroutines(t)
	ca, cb := twoNodeConfigs(freePort(t), time.Hour)
	a := start(t, ca, nil)
	b := start(t, cb, nil)
	// Both sockets are bound once each engine has sent its first round.
	waitFor(t, "both engines' first round", func() bool {
		return a.Stats().ProbesSent+a.Stats().SendErrors >= 1 && b.Stats().ProbesSent+b.Stats().SendErrors >= 1
	})
	b.SetPayload([]byte("state changed"))
	waitFor(t, "A to see B's new payload", func() bool {
		return a.rec.has(func(o Observation) bool {
			return o.Kind == ProbeReceived && o.Peer == 2 && string(o.Payload) == "state changed"
		})
	})
	waitFor(t, "B to get A's reply to it", func() bool {
		return b.rec.has(func(o Observation) bool { return o.Kind == ReplyReceived && o.Peer == 1 })
	})
}

// TestLoopbackThreeLanes runs three lanes, the third towards an address
// nobody is bound to: that lane records misses while the others work.
func TestLoopbackThreeLanes(t *testing.T) {
	checkGoroutines(t)
	port := freePort(t)
	a := start(t, Config{
		Key: testKey, Self: 1, Port: port, Interval: 20 * time.Millisecond,
		Lanes: []LaneConfig{
			{Index: 0, Name: "lan1", Local: addr("127.0.0.1"), Peers: []Peer{{Index: 2, Addr: addr("127.0.0.2")}}},
			{Index: 1, Name: "lan2", Local: addr("127.0.0.3"), Peers: []Peer{{Index: 2, Addr: addr("127.0.0.4")}}},
			{Index: 2, Name: "lan3", Local: addr("127.0.0.5"), Peers: []Peer{{Index: 2, Addr: addr("127.0.0.9")}}},
		},
	}, nil)
	b := start(t, Config{
		Key: testKey, Self: 2, Port: port, Interval: 20 * time.Millisecond,
		Lanes: []LaneConfig{
			{Index: 0, Name: "lan1", Local: addr("127.0.0.2"), Peers: []Peer{{Index: 1, Addr: addr("127.0.0.1")}}},
			{Index: 1, Name: "lan2", Local: addr("127.0.0.4"), Peers: []Peer{{Index: 1, Addr: addr("127.0.0.3")}}},
		},
	}, nil)

	waitFor(t, "misses on lan3", func() bool { return a.Stats().Misses[PeerLane{Peer: 2, Lane: 2}] >= 3 })
	mark := len(a.rec.snapshot())
	for _, lane := range []uint8{0, 1} {
		waitFor(t, fmt.Sprintf("replies on lane %d after lan3's misses", lane), func() bool {
			for _, o := range a.rec.snapshot()[mark:] {
				if o.Kind == ReplyReceived && o.Peer == 2 && o.Lane == lane {
					return true
				}
			}
			return false
		})
	}
	waitFor(t, "B to see A's probes on both its lanes", func() bool {
		return b.rec.has(func(o Observation) bool { return o.Kind == ProbeReceived && o.Lane == 0 }) &&
			b.rec.has(func(o Observation) bool { return o.Kind == ProbeReceived && o.Lane == 1 })
	})
	if a.rec.has(func(o Observation) bool { return o.Lane == 2 && o.Kind != ProbeRefused }) {
		t.Error("A observed a packet on lan3, where nobody listens")
	}
	// The kernel at 127.0.0.9 refuses the probes: that is what tells a dead
	// daemon from a dead node.
	waitFor(t, "a refused probe on lan3", func() bool {
		return a.rec.has(func(o Observation) bool { return o.Lane == 2 && o.Kind == ProbeRefused && o.Peer == 2 })
	})
	if a.Stats().Drops[DropUnknownPeer] != 0 {
		t.Errorf("drops %v", a.Stats().Drops)
	}
}

// TestLoopbackAttacks sends A garbage, forgeries and replays from its peer's
// address and from a stranger's: each is counted under its reason, none is
// answered, none reaches the Handler.
func TestLoopbackAttacks(t *testing.T) {
	checkGoroutines(t)
	port := freePort(t)
	ca, cb := twoNodeConfigs(port, 20*time.Millisecond)

	// Capture one of B's probes on A's address before A runs.
	tap, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, cb, []byte("captured era"))
	codec := NewCodec(testKey)
	var captured []byte
	buf := make([]byte, 2048)
	tap.SetReadDeadline(time.Now().Add(waitDeadline))
	for captured == nil {
		n, err := tap.Read(buf)
		if err != nil {
			t.Fatalf("capture B's probe: %v", err)
		}
		if p, err := codec.Decode(buf[:n]); err == nil && p.Type == TypeProbe && p.Sender == 2 {
			captured = append([]byte(nil), buf[:n]...)
		}
	}
	tap.Close()
	b.SetPayload([]byte("live"))
	a := start(t, ca, nil)
	waitFor(t, "A to see B's live probes", func() bool {
		return a.rec.has(func(o Observation) bool { return o.Kind == ProbeReceived && string(o.Payload) == "live" })
	})
	mark := len(a.rec.snapshot())

	// The attacker sends from B's address, and a stranger from an address
	// that is no peer's.
	attacker, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 3)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	target := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	send := func(c *net.UDPConn, b []byte) {
		t.Helper()
		if _, err := c.WriteToUDP(b, target); err != nil {
			t.Fatal(err)
		}
	}

	const marker = 0xbad0bad0bad0
	forged := func(mutate func(p *Packet)) Packet {
		p := Packet{
			Type: TypeProbe, Sender: 2, Lane: 0, Incarnation: marker, Seq: 1 << 40,
			SentAt: time.Now().UnixNano(), Nonce: [16]byte{0xee}, Payload: []byte("forged"),
		}
		mutate(&p)
		return p
	}
	wrongKey := NewCodec([]byte("not the cluster key, but as long"))

	send(attacker, []byte("garbage"))
	send(attacker, bytes.Repeat([]byte{0x5a}, 200))
	send(attacker, make([]byte, 1500))
	send(attacker, mustAppend(t, wrongKey, forged(func(*Packet) {})))
	send(attacker, captured)
	send(attacker, mustAppend(t, codec, forged(func(p *Packet) {
		p.Type = TypeReply
		p.Nonce = [16]byte{0x11, 0x22}
		p.Epoch = marker
	})))
	send(attacker, mustAppend(t, codec, forged(func(p *Packet) { p.Lane = 5 })))
	send(attacker, mustAppend(t, codec, forged(func(p *Packet) { p.Sender = 9 })))
	send(stranger, mustAppend(t, codec, forged(func(*Packet) {})))

	want := map[string]uint64{
		DropMalformed:        2,
		DropOversize:         1,
		DropBadMAC:           1,
		DropReplay:           1,
		DropUnsolicitedReply: 1,
		DropWrongLane:        1,
		DropUnknownPeer:      2,
	}
	waitFor(t, "every attack to be counted", func() bool {
		d := a.Stats().Drops
		for reason, n := range want {
			if d[reason] < n {
				return false
			}
		}
		return true
	})
	got := a.Stats().Drops
	for reason, n := range want {
		if got[reason] != n {
			t.Errorf("%s drops: %d, want %d", reason, got[reason], n)
		}
	}

	for _, o := range a.rec.snapshot()[mark:] {
		switch {
		case o.Incarnation == marker || o.Epoch == marker || string(o.Payload) == "forged":
			t.Errorf("forged packet delivered: %+v", o)
		case string(o.Payload) == "captured era":
			t.Errorf("replayed probe delivered: %+v", o)
		case o.Peer != 2:
			t.Errorf("observation of a peer that does not exist: %+v", o)
		}
	}

	// Nothing was answered. Absence cannot be waited for; a short read only
	// ever lets a regression through, never fails a good build.
	for _, c := range []*net.UDPConn{attacker, stranger} {
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := c.ReadFromUDP(buf); err == nil {
			t.Errorf("A answered an attack with %d bytes", n)
		}
	}
}
