package xdpheartbeat

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/dataplane/heartbeat"
	"github.com/vigil-ha/vigil/internal/bpftest"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

// TestResponder answers a userspace prober's probes from B's kernel, with
// nothing listening on B's heartbeat port: in generic mode (what Load
// picks on veth), and in native mode with an XDP program on A's end, which
// native XDP_TX on a veth needs.
func TestResponder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		mode     string
		wantMode string
		peerXDP  bool
	}{
		{"auto on veth", "", ModeGeneric, false},
		{"native with peer xdp", ModeNative, ModeNative, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b := pair(t)
			cfg := configB("vb")
			cfg.Mode = tc.mode
			f := load(t, b, cfg)
			if f.Mode() != tc.wantMode || f.Modes()["vb"] != tc.wantMode {
				t.Fatalf("Mode() = %q, Modes() = %v, want %s", f.Mode(), f.Modes(), tc.wantMode)
			}
			if tc.peerXDP {
				a.Do(t, func() error {
					c, err := bpftest.XDPPass("va")
					if err != nil {
						return err
					}
					t.Cleanup(func() { c.Close() })
					return nil
				})
			}
			if err := f.SetEpoch(77); err != nil {
				t.Fatal(err)
			}
			p := newProber(t, listen(t, a, hbA), testKey, serverA)
			buf := make([]byte, heartbeat.MaxPacketSize)
			for i, n := range []int{0, 300, heartbeat.MaxPayload} {
				payload := bytes.Repeat([]byte{byte(i + 1)}, n)
				before := time.Now().UnixNano()
				probe, reply := p.roundTrip(hbB, payload)
				after := time.Now().UnixNano()
				if reply.Flags&heartbeat.FlagKernelReply == 0 || reply.Sender != serverB || reply.Seq != probe.Seq ||
					reply.EchoSentAt != probe.SentAt || reply.Epoch != 77 || reply.Incarnation != 0xbbbb {
					t.Fatalf("reply %+v to probe %+v", reply, probe)
				}
				if reply.ReceivedAt < before || reply.ReceivedAt > after {
					t.Errorf("receive time %d not within [%d, %d]", reply.ReceivedAt, before, after)
				}
				// The daemon gets the probe, payload intact. Probes that
				// went unanswered for ARP's sake came before it.
				f.SetReadDeadline(time.Now().Add(5 * time.Second))
				for {
					pr, err := f.ReadProbe(buf)
					if err != nil {
						t.Fatalf("read probe: %v", err)
					}
					got, err := heartbeat.NewCodec(testKey).Decode(buf[:pr.N])
					if err != nil {
						t.Fatalf("decode probe from ring buffer: %v", err)
					}
					if got.Nonce != probe.Nonce {
						continue
					}
					if !bytes.Equal(got.Payload, payload) || pr.Src != hbA || pr.Peer != serverA || pr.Lane != 0 {
						t.Errorf("ReadProbe %+v: payload of %d bytes, want %d", pr, len(got.Payload), n)
					}
					break
				}
			}
			if c := f.Counters(); c.Answered < 3 || c.BadTag != 0 || c.NonMember != 0 {
				t.Errorf("counters %+v", c)
			}
		})
	}
}

// TestNotAnswered sends what the fast path must not answer: probes from a
// non-member address and forged probes.
func TestNotAnswered(t *testing.T) {
	a, b := pair(t)
	f := load(t, b, configB("vb"))
	a.Do(t, func() error {
		l, err := netlink.LinkByName("va")
		if err != nil {
			return err
		}
		return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: addrStrang.AsSlice(), Mask: net.CIDRMask(24, 32)}})
	})
	member := newProber(t, listen(t, a, hbA), testKey, serverA)
	member.roundTrip(hbB, nil) // ARP resolved, fast path up

	stranger := newProber(t, listen(t, a, netip.AddrPortFrom(addrStrang, testPort)), testKey, serverA)
	stranger.noReply(hbB, 300*time.Millisecond)
	waitFor(t, "the non-member probe to be counted", func() bool { return f.Counters().NonMember >= 1 })

	forger := newProber(t, listen(t, a, netip.AddrPortFrom(addrA, testPort+1)), otherKey, serverA)
	forger.noReply(hbB, 300*time.Millisecond)
	waitFor(t, "the forged probe to be counted", func() bool { return f.Counters().BadTag >= 1 })

	if c := f.Counters(); c.Answered != 1 {
		t.Errorf("answered %d probes, want only the member's: %+v", c.Answered, c)
	}
}

// TestProberSide loads the fast path on both sides: B answers A's probes in
// its kernel and A's kernel records the replies it registered, then passes
// them on to A's socket.
func TestProberSide(t *testing.T) {
	a, b := pair(t)
	fb := load(t, b, configB("vb"))
	fa := load(t, a, configA("va"))
	if err := fb.SetEpoch(1000); err != nil {
		t.Fatal(err)
	}
	p := newProber(t, listen(t, a, hbA), testKey, serverA)
	p.roundTrip(hbB, nil) // ARP resolved; this one was not registered

	// exchange registers a probe with A's fast path, sends it and waits
	// for the reply on A's socket, then for A's kernel to have recorded it.
	exchange := func() (heartbeat.Packet, PeerLaneState) {
		t.Helper()
		before, _ := fa.PeerLane(serverB, 0)
		p.seq++
		probe := testProbe(serverA, 0, p.seq, 16)
		sent := Now()
		if err := fa.Outstanding(probe.Nonce, serverB, 0, sent); err != nil {
			t.Fatal(err)
		}
		if _, err := p.conn.WriteToUDPAddrPort(encode(t, p.codec, probe), hbB); err != nil {
			t.Fatal(err)
		}
		var reply heartbeat.Packet
		for reply.Nonce != probe.Nonce {
			var ok bool
			if reply, _, _, ok = p.recv(5 * time.Second); !ok {
				t.Fatalf("no reply to probe seq %d", probe.Seq)
			}
		}
		if reply.Flags&heartbeat.FlagKernelReply == 0 {
			t.Fatalf("reply %+v not made by the kernel", reply)
		}
		s, ok := fa.PeerLane(serverB, 0)
		if !ok || s.Replies != before.Replies+1 {
			t.Fatalf("PeerLane after the reply = %+v, %v; before %+v", s, ok, before)
		}
		if s.LastReply < sent || s.LastReply > Now() || s.RTT != s.LastReply-sent || s.RTT <= 0 || s.RTT > time.Second {
			t.Fatalf("PeerLane %+v, probe sent at %v", s, sent)
		}
		return reply, s
	}

	r1, s1 := exchange()
	if r1.Epoch != 1000 || s1.Epoch != 1000 || s1.EpochChanged != s1.LastReply || s1.KernelReplies != 1 {
		t.Fatalf("first recorded reply: %+v, PeerLane %+v", r1, s1)
	}
	// B's daemon stalls: the epoch stays, replies keep coming.
	_, s2 := exchange()
	_, s3 := exchange()
	if s3.Epoch != 1000 || s2.EpochChanged != s1.EpochChanged || s3.EpochChanged != s1.EpochChanged || s3.LastReply <= s1.LastReply {
		t.Fatalf("frozen epoch: %+v then %+v then %+v", s1, s2, s3)
	}
	// B's daemon ticks again.
	if err := fb.SetEpoch(1001); err != nil {
		t.Fatal(err)
	}
	_, s4 := exchange()
	if s4.Epoch != 1001 || s4.EpochChanged != s4.LastReply || s4.EpochChanged <= s3.LastReply {
		t.Fatalf("epoch bump: %+v after %+v", s4, s3)
	}
	if c := fa.Counters(); c.RepliesRecorded != 4 || c.RepliesBadTag != 0 {
		t.Errorf("A's counters %+v", c)
	}

	// Replies A did not register, or forged ones, are not recorded but
	// still reach the socket (userspace counts its own drops).
	forger := newProber(t, listen(t, b, netip.AddrPortFrom(addrB, testPort+1)), otherKey, serverB)
	var fakeNonce [16]byte
	fakeNonce[0] = 0xfa
	if err := fa.Outstanding(fakeNonce, serverB, 0, Now()); err != nil {
		t.Fatal(err)
	}
	before := fa.Counters()
	for _, r := range []struct {
		codec *heartbeat.Codec
		nonce [16]byte
	}{{forger.codec, fakeNonce}, {p.codec, [16]byte{0xbb}}} {
		pk := heartbeat.Packet{Type: heartbeat.TypeReply, Sender: serverB, Nonce: r.nonce, Incarnation: 1, Epoch: 5}
		// From B's heartbeat address: a socket there sends around B's XDP.
		var conn *net.UDPConn
		b.Do(t, func() error {
			var err error
			conn, err = net.DialUDP("udp4", net.UDPAddrFromAddrPort(hbB), net.UDPAddrFromAddrPort(hbA))
			return err
		})
		if _, err := conn.Write(encode(t, r.codec, pk)); err != nil {
			t.Fatal(err)
		}
		conn.Close()
		p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, _, err := p.conn.ReadFromUDPAddrPort(p.buf); err != nil {
			t.Fatalf("the forged reply did not reach A's socket: %v", err)
		}
	}
	d := diff(fa.Counters(), before)
	if d.RepliesBadTag != 1 || d.RepliesUnknownNonce != 1 || d.RepliesRecorded != 0 {
		t.Errorf("counters moved by %+v, want one bad tag and one unknown nonce", d)
	}
	if s, _ := fa.PeerLane(serverB, 0); s != s4 {
		t.Errorf("PeerLane changed by forged replies: %+v, was %+v", s, s4)
	}
}

// TestCloseStopsAnswers closes the fast path, as the daemon's exit would:
// probes go unanswered and ReadProbe reports the close.
func TestCloseStopsAnswers(t *testing.T) {
	a, b := pair(t)
	var f *Fastpath
	b.Do(t, func() error {
		var err error
		f, err = Load(configB("vb"))
		return err
	})
	p := newProber(t, listen(t, a, hbA), testKey, serverA)
	p.roundTrip(hbB, nil)

	readErr := make(chan error, 1)
	go func() {
		_, err := f.ReadProbe(make([]byte, heartbeat.MaxPacketSize))
		for err == nil {
			_, err = f.ReadProbe(make([]byte, heartbeat.MaxPacketSize))
		}
		readErr <- err
	}()
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	select {
	case err := <-readErr:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("ReadProbe after Close = %v, want os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("ReadProbe still blocked 5s after Close")
	}
	if err := f.SetEpoch(1); !errors.Is(err, ErrClosed) {
		t.Errorf("SetEpoch after Close = %v, want ErrClosed", err)
	}
	p.noReply(hbB, 300*time.Millisecond)
	b.Do(t, func() error { return checkNoXDP("vb") })
}

// checkNoXDP fails unless interface name has no XDP program in any mode.
func checkNoXDP(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	ids, err := xdpProgIDs(l.Attrs().Index)
	if err != nil {
		return err
	}
	if len(ids) != 0 {
		return fmt.Errorf("%s still has XDP programs %v", name, ids)
	}
	return nil
}

// childEnv names the namespace a re-executed test binary loads the fast
// path in (TestHelperHoldFastpath).
const childEnv = "VIGIL_XDPHB_CHILD_NETNS"

// TestHelperHoldFastpath is not a test: run by TestKilledDaemon in a child
// process, it loads B's fast path in the namespace childEnv names, says
// "ready" and waits to be killed.
func TestHelperHoldFastpath(t *testing.T) {
	path := os.Getenv(childEnv)
	if path == "" {
		return
	}
	runtime.LockOSThread()
	h, err := netns.GetFromPath(path)
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := unix.Setns(int(h), unix.CLONE_NEWNET); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	f, err := Load(configB("vb"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	if err := f.SetEpoch(4242); err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("ready")
	// Wait for the signal that ends us. A bare select{} would not do: with
	// no other goroutine the runtime reports a deadlock and exits.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, unix.SIGTERM)
	<-sig
	os.Exit(1)
}

// TestKilledDaemon loads the fast path in a child process, checks that it
// answers, kills the child with SIGKILL and checks that the answers stop:
// the bpf_link dies with its process.
func TestKilledDaemon(t *testing.T) {
	a, b := pair(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestHelperHoldFastpath$", "-test.v=false")
	cmd.Env = append(os.Environ(), childEnv+"="+b.Path())
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("child: %q, %v", line, err)
	}
	go io.Copy(io.Discard, out)

	p := newProber(t, listen(t, a, hbA), testKey, serverA)
	if _, r := p.roundTrip(hbB, nil); r.Epoch != 4242 || r.Flags&heartbeat.FlagKernelReply == 0 {
		t.Fatalf("reply from the child's fast path: %+v", r)
	}
	if err := cmd.Process.Signal(unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != unix.SIGKILL {
		t.Fatalf("the child ended with %v, want death by SIGKILL", cmd.ProcessState)
	}
	waitFor(t, "the child's program to leave vb", func() bool {
		return b.Run(func() error { return checkNoXDP("vb") }) == nil
	})
	p.noReply(hbB, 300*time.Millisecond)
}

// TestLinkLoss cuts A's link with a TC drop program: B's fast path gets
// no probes and A no replies; with the link back, replies come again.
func TestLinkLoss(t *testing.T) {
	bpftest.RequireTCX(t)
	a, b := pair(t)
	f := load(t, b, configB("vb"))
	p := newProber(t, listen(t, a, hbA), testKey, serverA)
	p.roundTrip(hbB, nil)

	var drop io.Closer
	a.Do(t, func() error {
		var err error
		drop, err = bpftest.DropAll("va")
		return err
	})
	answered := f.Counters().Answered
	p.noReply(hbB, 300*time.Millisecond)
	if got := f.Counters().Answered; got != answered {
		t.Errorf("B answered %d probes through a dead link", got-answered)
	}
	if err := drop.Close(); err != nil {
		t.Fatal(err)
	}
	p.roundTrip(hbB, nil)
}

// TestLoadErrors checks configuration errors.
func TestLoadErrors(t *testing.T) {
	ns := netnstest.New(t, "hb-cfg")
	good := configB("lo")
	for _, tc := range []struct {
		name string
		edit func(*Config)
	}{
		{"short key", func(c *Config) { c.Key = c.Key[:8] }},
		{"no port", func(c *Config) { c.Port = 0 }},
		{"no incarnation", func(c *Config) { c.Incarnation = 0 }},
		{"no interfaces", func(c *Config) { c.Interfaces = nil }},
		{"missing interface", func(c *Config) { c.Interfaces = map[uint8]string{0: "nosuch0"} }},
		{"bad mode", func(c *Config) { c.Mode = "offload" }},
		{"ipv6 member", func(c *Config) { c.Members = []Member{{Addr: netip.MustParseAddr("2001:db8::1"), Server: 1}} }},
		{"self member", func(c *Config) { c.Members = []Member{{Addr: addrA, Server: serverB}} }},
		{"duplicate member", func(c *Config) { c.Members = append(c.Members, Member{Addr: addrA, Server: 3}) }},
		{"member lane without interface", func(c *Config) { c.Members = []Member{{Addr: addrA, Server: 1, Lane: 4}} }},
	} {
		cfg := good
		cfg.Interfaces = map[uint8]string{0: "lo"}
		cfg.Members = append([]Member(nil), good.Members...)
		tc.edit(&cfg)
		ns.Do(t, func() error {
			f, err := Load(cfg)
			if err == nil {
				f.Close()
				return fmt.Errorf("%s: Load succeeded", tc.name)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				return fmt.Errorf("%s: %v, want ErrInvalidConfig", tc.name, err)
			}
			return nil
		})
	}
	// Native mode where the driver has none is an error, not a fallback.
	ns.Do(t, func() error {
		cfg := good
		cfg.Mode = ModeNative
		f, err := Load(cfg)
		if err == nil {
			f.Close()
			return errors.New("native mode on lo: Load succeeded")
		}
		return nil
	})
}

// TestNotSupportedWithoutPrivileges drops the capabilities eBPF needs in a
// child thread's credentials and checks the error Load gives.
func TestNotSupportedWithoutPrivileges(t *testing.T) {
	ns := netnstest.New(t, "hb-noperm")
	err := ns.Run(func() error {
		// The thread dies with this goroutine (netnstest.Run never
		// unlocks it), so dropping its capabilities is contained.
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			return fmt.Errorf("capset: %w", err)
		}
		_, err := Load(configB("lo"))
		if !errors.Is(err, ErrNotSupported) {
			return fmt.Errorf("Load without capabilities = %v, want ErrNotSupported", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
