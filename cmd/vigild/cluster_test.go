//go:build linux

package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/membership"
	"github.com/vigil-ha/vigil/dataplane/heartbeat"
	"github.com/vigil-ha/vigil/internal/bpftest"
)

// TestDaemonStartAndFailoverAfterSIGKILL runs with the heartbeat answered
// by the kernel and from userspace: the fallback must pass the same test.
func TestDaemonStartAndFailoverAfterSIGKILL(t *testing.T) {
	for _, mode := range []string{"ebpf", "userspace"} {
		t.Run(mode, func(t *testing.T) { testFailoverAfterSIGKILL(t, mode) })
	}
}

func testFailoverAfterSIGKILL(t *testing.T, mode string) {
	c := newTestClusterWith(t, "mode: "+mode)
	c.startBoth()
	c.onlineOn(0, 0, 1)
	if !c.hasAddr(0) || c.hasAddr(1) {
		t.Fatalf("floating IP: node1 %v, node2 %v; want node1 only", c.hasAddr(0), c.hasAddr(1))
	}
	if got := c.count("node1 start"); got != 1 {
		t.Fatalf("app started %d times on node1, want 1: %q", got, c.journal())
	}
	c.kill(0)
	c.onlineOn(1, 1)
	if !c.hasAddr(1) {
		t.Fatal("node2 online without the floating IP")
	}
	if got := c.count("node2 failover"); got != 1 {
		t.Fatalf("journal %q: want one failover start on node2", c.journal())
	}
	s, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	if s.LastFailover == nil || s.LastFailover.From != "node1" || s.LastFailover.To != "node2" {
		t.Fatalf("last failover %+v", s.LastFailover)
	}
	if !strings.HasPrefix(s.Heartbeat, mode) {
		t.Errorf("heartbeat mode %q, want %s", s.Heartbeat, mode)
	}
	// The dead daemon's kernel refuses the probes: a dead daemon, not a
	// dead node.
	if !timelineHas(s.LastFailover, "peer node1 lost: "+membership.CauseDaemonDead) {
		t.Errorf("timeline does not name the cause %q: %+v", membership.CauseDaemonDead, s.LastFailover.Events)
	}
	// The crashed node comes back: it removes the address it left behind
	// and joins as standby.
	c.start(0, filepath.Join(c.dir, "cluster.yaml"))
	c.eventually("node1 back as standby", func() bool { return c.groupOn(0, api.StateOnline, "node2") })
	if c.hasAddr(0) {
		t.Fatal("restarted node1 kept the stale floating IP")
	}
	if got := metric(c.scrape(1), "vigil_failovers_total", `group="failover1"`); got != 1 {
		t.Errorf("vigil_failovers_total on node2 = %v, want 1", got)
	}
}

func TestDaemonGroupMove(t *testing.T) {
	c := newTestCluster(t)
	c.startBoth()
	c.onlineOn(0, 0, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := c.client(1).GroupMove(ctx, "failover1", "node2"); err != nil {
		t.Fatalf("move: %v", err)
	}
	c.onlineOn(1, 0, 1)
	if c.hasAddr(0) || !c.hasAddr(1) {
		t.Fatalf("after move: node1 has the IP %v, node2 %v", c.hasAddr(0), c.hasAddr(1))
	}
	want := []string{"node1 start", "node1 stop", "node2 move"}
	if got := c.journal(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("journal %q, want %q", got, want)
	}
	if err := c.client(0).GroupMove(ctx, "failover1", "node2"); err == nil || !strings.Contains(err.Error(), "already runs on node2") {
		t.Fatalf("second move: err = %v", err)
	}
	if err := c.client(0).GroupStop(ctx, "failover1"); err != nil {
		t.Fatalf("group stop: %v", err)
	}
	if c.hasAddr(0) || c.hasAddr(1) {
		t.Fatal("floating IP still bound after group stop")
	}
	if err := c.client(0).GroupStart(ctx, "failover1", ""); err != nil {
		t.Fatalf("group start: %v", err)
	}
	c.onlineOn(0, 0, 1)
}

func TestDaemonRecoveryThroughAllStages(t *testing.T) {
	c := newTestCluster(t)
	c.startBoth()
	c.onlineOn(0, 0, 1)
	for _, n := range c.names {
		c.write("fail."+n, 0o644, "")
	}
	// node1 reactivates, fails over to node2; node2 reactivates, fails
	// over back; node1 has no count left: final action, stop the group.
	c.eventually("failover1 stopped by the final action", func() bool {
		s, err := c.status(0)
		return err == nil && s.Groups[0].Stopped && s.Groups[0].State == api.StateOffline && !c.hasAddr(0) && !c.hasAddr(1)
	})
	for _, k := range []struct {
		line string
		want int
	}{
		{"node1 start", 1}, {"node1 recover", 1}, {"node2 failover", 1}, {"node2 recover", 1}, {"node1 failover", 1},
	} {
		if got := c.count(k.line); got != k.want {
			t.Errorf("%q %d times, want %d; journal %q", k.line, got, k.want, c.journal())
		}
	}
	text := c.scrape(0)
	for _, action := range []string{"reactivate", "failover", "final"} {
		if got := metric(text, "vigil_monitor_recovery_total", `monitor="appw1"`, `action="`+action+`"`); got != 1 {
			t.Errorf("node1 vigil_monitor_recovery_total{action=%q} = %v, want 1", action, got)
		}
	}
}

func TestDaemonNPResolution(t *testing.T) {
	t.Run("standby cut off", func(t *testing.T) {
		c := newTestCluster(t)
		c.startBoth()
		c.onlineOn(0, 0, 1)
		c.cut(1, true)
		c.eventually("node2 isolated", func() bool {
			s, err := c.status(1)
			return err == nil && s.Service == api.ServiceIsolated
		})
		c.eventually("node1 sees node2 down", func() bool {
			s, err := c.status(0)
			return err == nil && s.Nodes[1].State == api.NodeDown
		})
		if !c.groupOn(0, api.StateOnline, "node1") || !c.hasAddr(0) || c.hasAddr(1) {
			t.Fatal("the partition moved the group")
		}
		if got := c.count("node2 failover"); got != 0 {
			t.Fatalf("isolated node2 started the group: %q", c.journal())
		}
		c.cut(1, false)
		c.eventually("node2 rejoins", func() bool {
			s, err := c.status(1)
			return err == nil && s.Service == api.ServiceRunning && s.Groups[0].Owner == "node1"
		})
	})
	t.Run("active cut off", func(t *testing.T) {
		c := newTestCluster(t)
		c.startBoth()
		c.onlineOn(0, 0, 1)
		c.cut(0, true)
		c.eventually("node1 isolated and stopped", func() bool {
			s, err := c.status(0)
			return err == nil && s.Service == api.ServiceIsolated && !c.hasAddr(0)
		})
		c.onlineOn(1, 1)
		if !c.hasAddr(1) {
			t.Fatal("node2 online without the floating IP")
		}
		c.cut(0, false)
		c.onlineOn(1, 0, 1)
		if got := c.count("node1 start"); got != 1 {
			t.Fatalf("node1 restarted the group after the partition: %q", c.journal())
		}
	})
	// The kernel has no netem: a TC program dropping every frame on the
	// switch's port to node1 is the lost link. node2 hears nothing at all
	// from node1, the "no replies" case.
	t.Run("active's link lost", func(t *testing.T) {
		bpftest.RequireTCX(t)
		c := newTestCluster(t)
		c.startBoth()
		c.onlineOn(0, 0, 1)
		var drop io.Closer
		c.sw.Do(t, func() (err error) { drop, err = bpftest.DropAll("p1"); return err })
		c.onlineOn(1, 1)
		s, err := c.status(1)
		if err != nil {
			t.Fatal(err)
		}
		if !timelineHas(s.LastFailover, "peer node1 lost: "+membership.CauseNoReplies) {
			t.Errorf("timeline does not say %q: %+v", membership.CauseNoReplies, s.LastFailover)
		}
		c.eventually("node1 isolated and stopped", func() bool {
			s, err := c.status(0)
			return err == nil && s.Service == api.ServiceIsolated && !c.hasAddr(0)
		})
		drop.Close()
		c.onlineOn(1, 0, 1)
	})
}

func TestDaemonRefusesPeerWithOtherConfig(t *testing.T) {
	c := newTestCluster(t)
	c.start(0, filepath.Join(c.dir, "cluster.yaml"))
	c.onlineOn(0, 0)
	other := strings.ReplaceAll(clusterConfig, "@DIR@", c.dir)
	other = strings.ReplaceAll(other, "@HEARTBEAT@", "mode: auto")
	other = strings.Replace(other, "reactivation_count: 1", "reactivation_count: 2", 1)
	c.start(1, c.write("other.yaml", 0o644, other))
	c.eventually("node2 refusing to join", func() bool {
		s, err := c.status(1)
		return err == nil && s.Service == api.ServiceRefused && strings.Contains(s.Reason, "configuration differs from node1's")
	})
	c.eventually("node1 sees node2 mismatched", func() bool {
		s, err := c.status(0)
		return err == nil && s.Nodes[1].State == api.NodeMismatch
	})
	if !c.groupOn(0, api.StateOnline, "node1") || c.hasAddr(1) {
		t.Fatal("a refused node disturbed the group")
	}
}

func TestDaemonDropsMalformedHeartbeats(t *testing.T) {
	c := newTestCluster(t)
	c.startBoth()
	c.onlineOn(0, 0, 1)
	key, err := os.ReadFile(filepath.Join(c.dir, "cluster.key"))
	if err != nil {
		t.Fatal(err)
	}
	wrong := heartbeat.NewCodec([]byte("not the cluster key, not at all!"))
	right := heartbeat.NewCodec(key)
	probe := func(codec *heartbeat.Codec, sender uint8) []byte {
		p := &heartbeat.Packet{Type: heartbeat.TypeProbe, Sender: sender, Incarnation: 1, Seq: 1, SentAt: time.Now().UnixNano()}
		b, err := codec.Append(nil, p)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	const rounds = 50
	c.nat.Do(t, func() error {
		conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.MustParseAddrPort("198.18.0.1:29001")))
		if err != nil {
			return err
		}
		defer conn.Close()
		for i := range rounds {
			garbage := []byte(strings.Repeat("x", 20+i))
			for _, b := range [][]byte{garbage, probe(wrong, 1), probe(right, 1)} {
				if _, err := conn.Write(b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	c.eventually("drops counted by reason", func() bool {
		text := c.scrape(0)
		return metric(text, "vigil_heartbeat_dropped_total", `reason="malformed"`) >= rounds &&
			metric(text, "vigil_heartbeat_dropped_total", `reason="bad_mac"`) >= rounds &&
			metric(text, "vigil_heartbeat_dropped_total", `reason="unknown_peer"`) >= rounds
	})
	s, err := c.status(0)
	if err != nil {
		t.Fatalf("vigild after the flood: %v", err)
	}
	if s.Nodes[1].State != api.NodeUp || s.Groups[0].State != api.StateOnline {
		t.Fatalf("after the flood: node2 %s, group %s", s.Nodes[1].State, s.Groups[0].State)
	}
}

func timelineHas(tl *api.Timeline, what string) bool {
	for _, e := range tl.Events {
		if strings.Contains(e.What, what) {
			return true
		}
	}
	return false
}

// TestDaemonStallIsNotDeath stops the active daemon with SIGSTOP while its
// kernel keeps answering heartbeats: shorter than the stall timeout nothing
// moves, longer and the standby takes over, saying why.
func TestDaemonStallIsNotDeath(t *testing.T) {
	c := newTestClusterWith(t, "mode: ebpf, stall_timeout_ms: 3000")
	c.startBoth()
	c.onlineOn(0, 0, 1)

	c.signal(0, syscall.SIGSTOP)
	c.eventually("node2 to see node1 stalled", func() bool {
		s, err := c.status(1)
		if err != nil {
			return false
		}
		for _, n := range s.Nodes {
			if n.Name == "node1" && n.State == api.NodeStalled {
				return true
			}
		}
		return false
	})
	c.signal(0, syscall.SIGCONT)
	c.eventually("node1 up again on node2", func() bool {
		s, err := c.status(1)
		if err != nil {
			return false
		}
		for _, n := range s.Nodes {
			if n.Name == "node1" && n.State == api.NodeUp {
				return true
			}
		}
		return false
	})
	if got := c.count("node2 failover"); got != 0 {
		t.Fatalf("a stall shorter than the stall timeout failed over: %q", c.journal())
	}
	c.onlineOn(0, 0, 1)

	c.signal(0, syscall.SIGSTOP)
	c.eventually("node2 takes over from the stalled node1", func() bool { return c.groupOn(1, api.StateOnline, "node2") })
	s, err := c.status(1)
	if err != nil {
		t.Fatal(err)
	}
	if s.LastFailover == nil || !timelineHas(s.LastFailover, membership.CauseDaemonStalled) {
		t.Fatalf("timeline does not say the daemon stalled: %+v", s.LastFailover)
	}
	if got := metric(c.scrape(1), "vigil_peer_lost_total", `peer="node1"`, `cause="daemon_stalled"`); got != 1 {
		t.Errorf("vigil_peer_lost_total{cause=daemon_stalled} on node2 = %v, want 1", got)
	}
	c.signal(0, syscall.SIGCONT)
	c.eventually("node1 gives the group up when it wakes", func() bool {
		return c.groupOn(0, api.StateOnline, "node2") && !c.hasAddr(0)
	})
}

// TestDaemonStalledStandbyDoesNotTakeOver stops the standby's daemon for
// longer than the heartbeat timeout: when it wakes, its peer's silence was
// its own, and it must not take the group from the healthy active node.
func TestDaemonStalledStandbyDoesNotTakeOver(t *testing.T) {
	for _, mode := range []string{"ebpf", "userspace"} {
		t.Run(mode, func(t *testing.T) {
			c := newTestClusterWith(t, "mode: "+mode+", stall_timeout_ms: 5000")
			c.startBoth()
			c.onlineOn(0, 0, 1)
			c.signal(1, syscall.SIGSTOP)
			time.Sleep(1500 * time.Millisecond) // the stall itself: longer than timeout_ms (1000)
			c.signal(1, syscall.SIGCONT)
			c.eventually("node2 running and seeing node1 again", func() bool {
				s, err := c.status(1)
				return err == nil && s.Service == api.ServiceRunning && s.Nodes[0].State == api.NodeUp
			})
			time.Sleep(1500 * time.Millisecond) // a takeover would have happened by now
			if got := c.count("node2 failover"); got != 0 || !c.groupOn(1, api.StateOnline, "node1") {
				t.Fatalf("the standby took the group after its own stall: journal %q", c.journal())
			}
		})
	}
}
