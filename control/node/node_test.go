package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

func TestStartsOnHighestPriorityServer(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	s := c.status(1)
	if s.Groups[0].Owner != "n1" || s.Groups[0].State != api.StateOnline {
		t.Fatalf("n2 sees g1 as %+v, want online on n1", s.Groups[0])
	}
	if s.Nodes[0].State != api.NodeUp || s.Nodes[0].Service != "running" {
		t.Fatalf("n2 sees n1 as %+v", s.Nodes[0])
	}
	if got := c.w.startCount("n2", "r1"); got != 0 {
		t.Fatalf("r1 started %d times on n2", got)
	}
}

func TestFailoverAfterCrash(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.kill(0)
	c.eventually("g1 online on n2", c.online(1))
	s := c.status(1)
	if s.Nodes[0].State != api.NodeDown {
		t.Errorf("n1 state %q, want down", s.Nodes[0].State)
	}
	tl := s.LastFailover
	if tl == nil || tl.From != "n1" || tl.To != "n2" {
		t.Fatalf("last failover %+v, want n1 → n2", tl)
	}
	var all []string
	for _, e := range tl.Events {
		all = append(all, e.What)
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{"peer n1 lost: no replies: node or network down", "NP check: ping 198.18.2.1 answered", "claimed group g1", "resource r1 started", "resource r2 started", "group g1 online on n2"} {
		if !strings.Contains(text, want) {
			t.Errorf("timeline lacks %q:\n%s", want, text)
		}
	}
}

func TestMoveAndMoveBack(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	ctx := context.Background()
	if err := c.nodes[0].GroupMove(ctx, "g1", "n2"); err != nil {
		t.Fatalf("move to n2: %v", err)
	}
	c.eventually("g1 online on n2", c.online(1))
	// Moved back from the other end, to the next server by default.
	if err := c.nodes[1].GroupMove(ctx, "g1", ""); err != nil {
		t.Fatalf("move back: %v", err)
	}
	c.eventually("g1 online on n1", c.online(0))
	if err := c.nodes[1].GroupMove(ctx, "g1", "n1"); err == nil || !strings.Contains(err.Error(), "already runs on n1") {
		t.Fatalf("move to the current owner: err = %v", err)
	}
	if err := c.nodes[1].GroupMove(ctx, "nope", ""); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("move of an unknown group: err = %v", err)
	}
}

func TestStartFailureFailsOver(t *testing.T) {
	c := newEmptyCluster(t, testConfig)
	c.w.set(c.w.failOn, "n1/r2", true)
	c.add(0, c.cfg)
	c.add(1, c.cfg)
	c.eventually("g1 online on n2", c.online(1))
	if got := c.w.owner("r1"); got != "n2" {
		t.Errorf("r1 runs on %q, want n2 (n1 must have stopped it)", got)
	}
	g := c.status(1).Groups[0]
	if len(g.FailedOn) != 0 {
		t.Errorf("FailedOn = %v after the group came online, want cleared", g.FailedOn)
	}
	if got := c.w.startCount("n1", "r2"); got != 1 {
		t.Errorf("r2 start attempts on n1 = %d, want 1", got)
	}
}

func TestStartFailureEverywhere(t *testing.T) {
	c := newEmptyCluster(t, testConfig)
	c.w.set(c.w.failOn, "n1/r1", true)
	c.w.set(c.w.failOn, "n2/r1", true)
	c.add(0, c.cfg)
	c.add(1, c.cfg)
	c.eventually("g1 online-failure", func() bool {
		g := c.status(0).Groups[0]
		return g.State == api.StateOnlineFailure && len(g.FailedOn) == 2
	})
	// An operator start clears the failures and tries again.
	c.w.set(c.w.failOn, "n2/r1", false)
	if err := c.nodes[0].GroupStart(context.Background(), "g1", "n2"); err != nil {
		t.Fatalf("group start on n2: %v", err)
	}
	c.eventually("g1 online on n2", c.online(1))
}

func TestRecoveryThroughAllStages(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.w.set(c.w.monErr, "n1/m1", true)
	c.w.set(c.w.monErr, "n2/m1", true)
	// n1 reactivates once, fails over to n2; n2 reactivates once, fails over
	// back to n1; n1 has used its counts: final action, stop the group.
	c.eventually("g1 stopped by the final action", func() bool {
		g := c.status(0).Groups[0]
		return g.Stopped && g.State == api.StateOffline && c.w.owner("r1") == "" && c.w.owner("r2") == ""
	})
	for _, k := range []struct {
		server string
		want   int
	}{{"n1", 3}, {"n2", 2}} {
		if got := c.w.startCount(k.server, "r1"); got != k.want {
			t.Errorf("r1 starts on %s = %d, want %d", k.server, got, k.want)
		}
	}
	for i := range 2 {
		m := c.status(i).Monitors[0]
		if m.Reactivations != 1 || m.Failovers != 1 {
			t.Errorf("%s monitor counts %+v, want 1 reactivation and 1 failover", c.cfg.Servers[i].Name, m)
		}
	}
}

func TestReactivationHeals(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.w.mu.Lock()
	c.w.healAt["n1/m1"] = 2 // the reactivation's start heals it
	c.w.mu.Unlock()
	c.w.set(c.w.monErr, "n1/m1", true)
	c.eventually("a reactivation", func() bool { return c.w.startCount("n1", "r1") >= 2 })
	c.eventually("monitor ok with its reactivation count reset", func() bool {
		m := c.status(0).Monitors[0]
		return m.State == api.MonitorOK && m.Reactivations == 0
	})
	// Every node learns of the group's state through the heartbeat, a
	// tick or so after n1.
	c.eventually("g1 online on n1 as every node sees it", c.online(0))
	if got := c.w.startCount("n1", "r1"); got != 2 {
		t.Fatalf("want g1 on n1 after one reactivation (r1 started %d times):\n%s", got, c.dump())
	}
}

func TestIsolatedStandbyDoesNotStart(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.w.set(c.w.npDown, "n2", true)
	c.partition(0, 1, true)
	c.eventually("n2 isolated", func() bool { return c.status(1).Service == api.ServiceIsolated })
	c.eventually("n1 sees n2 down", func() bool { return c.status(0).Nodes[1].State == api.NodeDown })
	if !c.online(0)() {
		t.Fatalf("g1 left n1:\n%s", c.dump())
	}
	if got := c.w.startCount("n2", "r1"); got != 0 {
		t.Fatalf("isolated n2 started r1 %d times", got)
	}
	c.w.set(c.w.npDown, "n2", false)
	c.partition(0, 1, false)
	c.eventually("n2 running again", func() bool { return c.status(1).Service == api.ServiceRunning })
	if !c.online(0)() {
		t.Fatalf("g1 left n1 after the partition healed:\n%s", c.dump())
	}
}

func TestIsolatedActiveStopsAndPeerTakesOver(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.w.mu.Lock()
	c.w.overlapOK = true
	c.w.mu.Unlock()
	c.w.set(c.w.npDown, "n1", true)
	c.partition(0, 1, true)
	c.eventually("n1 isolated", func() bool { return c.status(0).Service == api.ServiceIsolated })
	c.eventually("g1 online on n2", func() bool { return c.groupOn(1, "g1", api.StateOnline) })
	c.eventually("g1 stopped on n1", func() bool {
		for _, r := range c.status(0).Groups[0].Resources {
			if r.State != api.StateOffline {
				return false
			}
		}
		return true
	})
	c.w.set(c.w.npDown, "n1", false)
	c.partition(0, 1, false)
	c.eventually("n1 back, g1 still on n2", func() bool {
		s := c.status(0)
		return s.Service == api.ServiceRunning && s.Groups[0].Owner == "n2" && s.Groups[0].State == api.StateOnline
	})
	if got := c.w.startCount("n1", "r1"); got != 1 {
		t.Fatalf("r1 starts on n1 = %d, want 1 (never restarted after isolation)", got)
	}
}

func TestConfigMismatchRefused(t *testing.T) {
	c := newEmptyCluster(t, testConfig)
	c.add(0, c.cfg)
	c.eventually("g1 online on n1", c.online(0))
	other := parseConfig(t, strings.Replace(testConfig, "reactivation_count: 1", "reactivation_count: 2", 1))
	c.add(1, other)
	c.eventually("n2 refuses to join", func() bool {
		s := c.status(1)
		return s.Service == api.ServiceRefused && strings.Contains(s.Reason, "configuration differs from n1's")
	})
	c.eventually("n1 sees n2 as mismatched", func() bool { return c.status(0).Nodes[1].State == api.NodeMismatch })
	if err := c.nodes[1].ClusterStart(context.Background()); err == nil {
		t.Error("cluster start on a refused node succeeded")
	}
	if got := c.w.startCount("n2", "r1"); got != 0 {
		t.Fatalf("refused n2 started r1 %d times", got)
	}
}

func TestGroupStopAndStart(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	ctx := context.Background()
	if err := c.nodes[1].GroupStop(ctx, "g1"); err != nil {
		t.Fatalf("group stop: %v", err)
	}
	if o := c.w.owner("r1"); o != "" {
		t.Fatalf("r1 still active on %s after group stop returned", o)
	}
	g := c.status(0).Groups[0]
	if !g.Stopped || g.State != api.StateOffline {
		t.Fatalf("after stop: %+v", g)
	}
	if err := c.nodes[0].GroupStart(ctx, "g1", "n2"); err != nil {
		t.Fatalf("group start on n2: %v", err)
	}
	if !c.online(1)() {
		t.Fatalf("group start returned before g1 was online on n2:\n%s", c.dump())
	}
	if err := c.nodes[0].GroupStart(ctx, "g1", ""); err == nil || !strings.Contains(err.Error(), "already belongs to n2") {
		t.Fatalf("start of a running group: err = %v", err)
	}
}

func TestClusterStopHandsGroupsOver(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	ctx := context.Background()
	if err := c.nodes[0].ClusterStop(ctx); err != nil {
		t.Fatalf("cluster stop: %v", err)
	}
	c.eventually("g1 online on n2", c.online(1))
	if s := c.status(0).Service; s != api.ServiceStopped {
		t.Fatalf("n1 service %q, want stopped", s)
	}
	if err := c.nodes[0].ClusterStart(ctx); err != nil {
		t.Fatalf("cluster start: %v", err)
	}
	c.eventually("n1 running", func() bool { return c.status(0).Service == api.ServiceRunning })
	if !c.online(1)() {
		t.Fatal("g1 failed back to n1 on its own")
	}
}

func TestMonitorSuspendResume(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	ctx := context.Background()
	if err := c.nodes[0].MonitorSuspend(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	c.eventually("m1 suspended", func() bool { return c.status(0).Monitors[0].State == api.MonitorSuspended })
	c.w.set(c.w.monErr, "n1/m1", true)
	if err := c.nodes[0].MonitorResume(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	c.eventually("m1 error acted on", func() bool { return c.w.startCount("n1", "r1") >= 2 })
	if err := c.nodes[0].MonitorSuspend(ctx, "nope"); err == nil {
		t.Fatal("suspending an unknown monitor succeeded")
	}
}

func TestFinalActionShutsDownAfterStopping(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.w.set(c.w.monErr, "n1/m2", true)
	c.eventually("g1 handed to n2", c.online(1))
	c.eventually("shutdown command run on n1", func() bool {
		for _, call := range c.runners[0].Calls() {
			if call.Path == "/bin/true" && len(call.Args) == 0 {
				return true
			}
		}
		return false
	})
	if s := c.status(0); s.Service != api.ServiceStopped || !strings.Contains(s.Reason, "final action of monitor m2") {
		t.Fatalf("n1 service %q (%s), want stopped by m2's final action", s.Service, s.Reason)
	}
	if n := len(c.runners[1].Calls()); n != 0 {
		t.Fatalf("n2 ran %d commands", n)
	}
}

func TestPeerDownOnlyWhenEveryLaneIsDown(t *testing.T) {
	c := newCluster(t, testConfig)
	c.eventually("g1 online on n1", c.online(0))
	c.cutLane(0, 1, 0, true)
	c.eventually("n2 sees lan1 down, lan2 up", func() bool {
		l := c.status(1).Nodes[0].Lanes
		return !l[0].Up && l[1].Up && l[1].RTT == 101*time.Microsecond
	})
	if s := c.status(1); s.Nodes[0].State != api.NodeUp || s.LastFailover != nil {
		t.Fatalf("one lane down: n1 %s, last failover %+v", s.Nodes[0].State, s.LastFailover)
	}
	// Both lanes down while both nodes still reach their NP target: the
	// partition ping-based NP resolution cannot tell from a dead peer. n2
	// takes over while n1 keeps running; when a lane heals, the newer
	// generation wins and n1 stops.
	c.w.mu.Lock()
	c.w.overlapOK = true
	c.w.mu.Unlock()
	c.cutLane(0, 1, 1, true)
	c.eventually("g1 online on n2", func() bool { return c.groupOn(1, "g1", api.StateOnline) })
	c.cutLane(0, 1, 0, false)
	c.eventually("n1 stops once it hears n2's newer generation", c.online(1))
}

func TestNodeBootingCutOffStartsNothing(t *testing.T) {
	c := newEmptyCluster(t, testConfig)
	c.w.set(c.w.npDown, "n2", true)
	c.add(1, c.cfg)
	c.eventually("n2 isolated after its startup wait", func() bool {
		s := c.status(1)
		return s.Service == api.ServiceIsolated && strings.Contains(s.Reason, "injected timeout")
	})
	if got := c.w.startCount("n2", "r1"); got != 0 {
		t.Fatalf("n2 started r1 %d times while cut off", got)
	}
	// n1 arrives: n2 leaves isolation, and n1, first in priority, runs g1.
	c.add(0, c.cfg)
	c.eventually("g1 online on n1", c.online(0))
	if s := c.status(1).Service; s != api.ServiceRunning {
		t.Fatalf("n2 service %q after seeing n1, want running", s)
	}
}

func TestNodeBootingAloneStartsAfterWait(t *testing.T) {
	c := newEmptyCluster(t, testConfig)
	c.add(1, c.cfg)
	c.eventually("g1 online on n2, alone", c.online(1))
	if got := c.status(1).Nodes[0].State; got != api.NodeDown {
		t.Fatalf("n1 state %q, want down", got)
	}
}
