package ping

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/internal/netnstest"
	"github.com/vigil-ha/vigil/internal/testutil"
)

var (
	hostA  = netip.MustParseAddr("198.18.2.1")
	hostB  = netip.MustParseAddr("198.18.2.2")
	nobody = netip.MustParseAddr("198.18.2.99") // in b's subnet, no host has it
)

// lab makes namespace a (198.18.2.1) joined by a veth to namespace b
// (198.18.2.2), and a Pinger inside a.
func lab(t *testing.T, tryRaw bool, setup func() error) (*netnstest.NS, *Pinger) {
	t.Helper()
	a := netnstest.New(t, "ping-a")
	b := netnstest.New(t, "ping-b")
	netnstest.Veth(t, a, "pa", netip.PrefixFrom(hostA, 24), b, "pb", netip.PrefixFrom(hostB, 24))
	var p *Pinger
	a.Do(t, func() error {
		if setup != nil {
			if err := setup(); err != nil {
				return err
			}
		}
		var err error
		p, err = newPinger(tryRaw)
		return err
	})
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return a, p
}

func ping(t *testing.T, p *Pinger, addr netip.Addr, timeout time.Duration) (time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return p.Ping(ctx, addr)
}

func TestLoopback(t *testing.T) {
	testutil.RequireRoot(t)
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if !p.v4.raw {
		t.Errorf("as root New should open a raw socket")
	}
	rtt, err := ping(t, p, netip.MustParseAddr("127.0.0.1"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt <= 0 {
		t.Errorf("rtt = %v, want > 0", rtt)
	}
}

func TestIPv6Loopback(t *testing.T) {
	_, p := lab(t, true, nil)
	if p.v6 == nil {
		t.Fatalf("no ICMPv6 socket: %v", p.v6Err)
	}
	if _, err := ping(t, p, netip.MustParseAddr("::1"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestNamespacePeerAnswersAndNobodyTimesOut(t *testing.T) {
	_, p := lab(t, true, nil)
	if _, err := ping(t, p, hostB, 5*time.Second); err != nil {
		t.Fatalf("peer in the other namespace: %v", err)
	}
	_, err := ping(t, p, nobody, 300*time.Millisecond)
	if err == nil {
		t.Fatal("ping of an address nobody holds succeeded")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v does not wrap context.DeadlineExceeded", err)
	}
	if !strings.HasPrefix(err.Error(), "ping 198.18.2.99: no echo reply after ") {
		t.Errorf("error = %q, want ping 198.18.2.99: no echo reply after ...", err)
	}
}

func TestUnreachableReportedEarly(t *testing.T) {
	// Make neighbour resolution give up after one probe of 100 ms, so the
	// kernel reports "host unreachable" long before the 10 s deadline.
	_, p := lab(t, true, func() error {
		for file, v := range map[string]string{
			"/proc/sys/net/ipv4/neigh/pa/mcast_solicit":   "1",
			"/proc/sys/net/ipv4/neigh/pa/ucast_solicit":   "1",
			"/proc/sys/net/ipv4/neigh/pa/app_solicit":     "0",
			"/proc/sys/net/ipv4/neigh/pa/retrans_time_ms": "100",
		} {
			if err := os.WriteFile(file, []byte(v), 0); err != nil {
				return err
			}
		}
		return nil
	})
	_, err := ping(t, p, nobody, 10*time.Second)
	if !errors.Is(err, ErrUnreachable) {
		t.Fatalf("error = %v, want one wrapping ErrUnreachable", err)
	}
	if !strings.Contains(err.Error(), "host unreachable (reported by 198.18.2.1)") {
		t.Errorf("error = %q", err)
	}
}

func TestNoRoute(t *testing.T) {
	_, p := lab(t, true, nil)
	_, err := ping(t, p, netip.MustParseAddr("198.19.255.1"), 5*time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "ping 198.19.255.1: send: ") {
		t.Errorf("error = %v, want a send error (no route in the namespace)", err)
	}
}

func TestUnprivilegedPingSocket(t *testing.T) {
	// Ping sockets are allowed per namespace; allow them for root in a.
	_, p := lab(t, false, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 0"), 0)
	})
	if p.v4.raw {
		t.Fatal("newPinger(false) opened a raw socket")
	}
	if _, err := ping(t, p, netip.MustParseAddr("127.0.0.1"), 5*time.Second); err != nil {
		t.Fatalf("loopback: %v", err)
	}
	if _, err := ping(t, p, hostB, 5*time.Second); err != nil {
		t.Fatalf("peer: %v", err)
	}
	if _, err := ping(t, p, nobody, 300*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("nobody: error = %v, want a timeout", err)
	}
}

func TestConcurrent(t *testing.T) {
	for _, raw := range []bool{true, false} {
		t.Run(fmt.Sprintf("raw=%v", raw), func(t *testing.T) {
			_, p := lab(t, raw, func() error {
				return os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte("0 0"), 0)
			})
			targets := []netip.Addr{netip.MustParseAddr("127.0.0.1"), hostA, hostB}
			var wg sync.WaitGroup
			errs := make(chan error, 64*4)
			for g := range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range 4 {
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						_, err := p.Ping(ctx, targets[(g+i)%len(targets)])
						cancel()
						if err != nil {
							errs <- err
						}
					}
				}()
			}
			// Pings that time out run alongside and must not disturb the others.
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				defer cancel()
				if _, err := p.Ping(ctx, nobody); err == nil {
					errs <- errors.New("ping of nobody succeeded")
				}
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			p.v4.mu.Lock()
			left := len(p.v4.pending)
			p.v4.mu.Unlock()
			if left != 0 {
				t.Errorf("%d pings still registered", left)
			}
		})
	}
}

func TestClose(t *testing.T) {
	_, p := lab(t, true, nil)
	errc := make(chan error, 1)
	go func() {
		_, err := ping(t, p, nobody, time.Minute)
		errc <- err
	}()
	// Wait until the ping is in flight, then close under it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.v4.mu.Lock()
		n := len(p.v4.pending)
		p.v4.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ping never registered")
		}
		time.Sleep(time.Millisecond)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("in-flight ping error = %v, want ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the ping in flight")
	}
	if _, err := ping(t, p, hostB, time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("ping after Close: %v, want ErrClosed", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestInvalidAddress(t *testing.T) {
	p := &Pinger{}
	if _, err := p.Ping(context.Background(), netip.Addr{}); err == nil {
		t.Error("Ping of the zero address succeeded")
	}
}
