//go:build linux && vmtest

package twovm

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/dataplane/ping"
	"github.com/vigil-ha/vigil/internal/testutil"
	"github.com/vigil-ha/vigil/vmtests/internal/vigiltest"
	"github.com/vigil-ha/vigil/vmtests/vmenv"
)

// rendezvousPort is where VM 0 waits for VM 1 to say it is done.
const rendezvousPort = 29100

const config = `
cluster:
  name: twovm
  key_file: cluster.key
  heartbeat: {profile: cross-az, mode: ebpf}
  startup_wait_ms: 1000
servers:
  - {name: vm0, availability_zone: az-a, interconnects: {lan1: %s}}
  - {name: vm1, availability_zone: az-b, interconnects: {lan1: %s}}
lanes:
  - {name: lan1, priority: 1}
`

// TestTwoKernels pings the other VM, then runs vigild in both with the
// eBPF heartbeat and waits until each sees the other up through the
// kernel fast path. The VMs meet at the end so that neither powers off,
// cutting the link, while the other still needs it.
func TestTwoKernels(t *testing.T) {
	if vmenv.Count() != 2 {
		t.Skip("needs the two-VM topology of make vmtest (suite two-vm): two kernels joined by qemu -netdev socket")
	}
	testutil.RequireRoot(t)
	self, peer := vmenv.Index(), 1-vmenv.Index()
	selfAddr, peerAddr := vmenv.Address(self).Addr(), vmenv.Address(peer).Addr()
	names := [2]string{"vm0", "vm1"}
	defer rendezvous(t, self, vmenv.Address(0).Addr())

	p, err := ping.New()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	vigiltest.Eventually(t, 60*time.Second, "the other VM to answer ping", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := p.Ping(ctx, peerAddr)
		return err == nil
	})
	var rtts []string
	for range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		rtt, err := p.Ping(ctx, peerAddr)
		cancel()
		if err != nil {
			t.Fatalf("ping %s: %v", peerAddr, err)
		}
		rtts = append(rtts, rtt.Round(time.Microsecond).String())
	}
	t.Logf("%s -> %s: ping RTTs %s", names[self], peerAddr, strings.Join(rtts, " "))

	vigild, vigilctl := vigiltest.Binaries(t)
	dir := t.TempDir()
	// Both VMs need the same cluster key: derive it from something both
	// know. A test key, on a link between two VMs only.
	key := sha256.Sum256([]byte("vigil two-vm smoke test"))
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), key[:], 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "cluster.yaml")
	text := fmt.Sprintf(config, vmenv.Address(0).Addr(), vmenv.Address(1).Addr())
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d := vigiltest.Start(t, vigild, cfg, names[self], dir, nil)
	var last api.Status
	vigiltest.Eventually(t, 90*time.Second, names[peer]+" up through the eBPF heartbeat", func() bool {
		s, err := vigiltest.Status(vigilctl, d.Socket)
		if err != nil {
			return false
		}
		last = s
		for _, n := range s.Nodes {
			if n.Name == names[peer] && n.State == api.NodeUp && len(n.Lanes) > 0 && n.Lanes[0].Up && n.Lanes[0].RTT > 0 {
				return strings.HasPrefix(s.Heartbeat, "ebpf")
			}
		}
		return false
	})
	for _, n := range last.Nodes {
		if n.Name == names[peer] {
			t.Logf("%s (%s) sees %s up, heartbeat %s, lane %s RTT %v", names[self], selfAddr, n.Name, last.Heartbeat, n.Lanes[0].Name, n.Lanes[0].RTT)
		}
	}
}

// rendezvous makes VM 0 and VM 1 wait for each other: VM 1 dials VM 0 at
// addr; each sends whether it passed and reads the other's word.
func rendezvous(t *testing.T, self int, addr netip.Addr) {
	verdict := "pass"
	if t.Failed() {
		verdict = "fail"
	}
	deadline := time.Now().Add(2 * time.Minute)
	var conn net.Conn
	var err error
	if self == 0 {
		var ln net.Listener
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, rendezvousPort).String())
		if err == nil {
			ln.(*net.TCPListener).SetDeadline(deadline)
			conn, err = ln.Accept()
			ln.Close()
		}
	} else {
		for {
			conn, err = net.DialTimeout("tcp", netip.AddrPortFrom(addr, rendezvousPort).String(), time.Second)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if err != nil {
		t.Errorf("rendezvous with the other VM: %v", err)
		return
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	if _, err := fmt.Fprintln(conn, verdict); err != nil {
		t.Errorf("rendezvous: %v", err)
		return
	}
	other, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("rendezvous: %v", err)
		return
	}
	t.Logf("the other VM says %s", strings.TrimSpace(other))
}
