package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// keepalivedConfig is one node's VRRPv3 instance: advertisements every
// 100 ms by unicast to the peer, priority 200 on node1 (MASTER at start,
// preempting) and 100 on node2, the same floating IP as Vigil's.
const keepalivedConfig = `# bench-heartbeat: keepalived VRRPv3 baseline for %[1]s.
global_defs {
	router_id %[1]s
	vrrp_version 3
}
vrrp_instance VI_1 {
	state %[2]s
	interface eth0
	virtual_router_id 51
	priority %[3]d
	advert_int 0.1
	unicast_src_ip %[4]s
	unicast_peer {
		%[5]s
	}
	virtual_ipaddress {
		%[6]s dev eth0
	}
}
`

// keepalivedSteadyHold is how long the floating IP must stay on node1 alone
// before a kill: five advertisement intervals.
const keepalivedSteadyHold = 500 * time.Millisecond

// keepalivedCluster is keepalived (parent and VRRP child) on both nodes.
type keepalivedCluster struct {
	e     *env
	bin   string
	procs [2]*proc
}

func (k *keepalivedCluster) file(i int, ext string) string {
	return filepath.Join(k.e.work, "keepalived-"+nodeNames[i]+ext)
}

// newKeepalived writes both nodes' configurations.
func newKeepalived(e *env, bin string) (*keepalivedCluster, error) {
	k := &keepalivedCluster{e: e, bin: bin}
	for i := range nodeNames {
		state, prio := "MASTER", 200
		if i == 1 {
			state, prio = "BACKUP", 100
		}
		text := fmt.Sprintf(keepalivedConfig, nodeNames[i], state, prio, nodeAddr(i), nodeAddr(1-i), vipCIDR)
		if err := os.WriteFile(k.file(i, ".conf"), []byte(text), 0o644); err != nil {
			return nil, fmt.Errorf("keepalived config: %w", err)
		}
	}
	return k, nil
}

// start starts keepalived (VRRP only, in the foreground, logging to its
// file) on node i, with pid files of its own.
func (k *keepalivedCluster) start(i int) error {
	os.Remove(k.file(i, ".pid"))
	os.Remove(k.file(i, ".vrrp.pid"))
	p, err := k.e.start("keepalived "+nodeNames[i], k.e.nodes[i], k.file(i, ".log"), k.bin,
		"-n", "-l", "-D", "-G", "-P",
		"-f", k.file(i, ".conf"), "-p", k.file(i, ".pid"), "-r", k.file(i, ".vrrp.pid"))
	if err != nil {
		return err
	}
	k.procs[i] = p
	return nil
}

// startBoth starts both and waits for node1 to be MASTER.
func (k *keepalivedCluster) startBoth(ctx context.Context) error {
	for i := range k.procs {
		if err := k.start(i); err != nil {
			return err
		}
	}
	return k.steady(ctx)
}

// stop stops both and removes a floating IP left behind.
func (k *keepalivedCluster) stop() error {
	for _, p := range k.procs {
		if p != nil {
			p.stop(5 * time.Second)
		}
	}
	for i := range k.procs {
		if err := k.e.dropVIP(i); err != nil {
			return err
		}
	}
	return nil
}

// vrrpPid returns node i's VRRP child, from its pid file.
func (k *keepalivedCluster) vrrpPid(i int) (int, error) {
	b, err := os.ReadFile(k.file(i, ".vrrp.pid"))
	if err != nil {
		return 0, fmt.Errorf("keepalived %s VRRP child: %w", nodeNames[i], err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("keepalived %s VRRP pid file: %w", nodeNames[i], err)
	}
	return pid, nil
}

// running reports whether pid exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	j := strings.LastIndexByte(s, ')')
	return j < 0 || j+2 >= len(s) || s[j+2] != 'Z'
}

// steady waits until both keepalived parents and VRRP children run and the
// floating IP is on node1 alone, for keepalivedSteadyHold.
func (k *keepalivedCluster) steady(ctx context.Context) error {
	err := waitFor(ctx, "keepalived: node1 MASTER, node2 BACKUP", settleLimit, keepalivedSteadyHold, func() (bool, string) {
		for i, p := range k.procs {
			if p == nil || !p.alive() {
				return false, "keepalived " + nodeNames[i] + " is not running"
			}
			pid, err := k.vrrpPid(i)
			if err != nil {
				return false, err.Error()
			}
			if !running(pid) {
				return false, fmt.Sprintf("keepalived %s VRRP child %d is not running", nodeNames[i], pid)
			}
		}
		return vipOnlyOn(k.e, 0)
	})
	return k.withLogs(err)
}

func (k *keepalivedCluster) withLogs(err error) error {
	if err == nil {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for i := range k.procs {
		fmt.Fprintf(&b, "\n--- keepalived %s (%s) log tail:\n%s", nodeNames[i], k.file(i, ".log"), tailFile(k.file(i, ".log"), 25))
	}
	return fmt.Errorf("%s", b.String())
}

// killTrial SIGKILLs node1's keepalived, parent and VRRP child at once
// (their process group, in one kill(2)), and returns the time from just
// before the kill to the floating IP's RTM_NEWADDR on node2. It then
// restarts node1's keepalived, which takes the MASTER role back (priority
// 200, preemption), and waits for the steady state.
func (k *keepalivedCluster) killTrial(ctx context.Context) (time.Duration, error) {
	child, err := k.vrrpPid(0)
	if err != nil {
		return 0, err
	}
	w, err := k.e.watchVIP(1)
	if err != nil {
		return 0, err
	}
	defer w.close()
	p := k.procs[0]
	t0 := time.Now()
	if err := syscall.Kill(-p.pid(), syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("SIGKILL to keepalived node1 (group %d): %w", p.pid(), err)
	}
	ev, err := w.waitAdd(ctx, takeoverLimit)
	if err != nil {
		return 0, k.withLogs(fmt.Errorf("keepalived takeover: %w", err))
	}
	took := ev.at.Sub(t0)
	if !p.waitExit(5 * time.Second) {
		return 0, fmt.Errorf("keepalived node1 survived SIGKILL")
	}
	err = waitFor(ctx, "keepalived node1 VRRP child to die", 5*time.Second, 0, func() (bool, string) {
		return !running(child), "still running"
	})
	if err != nil {
		return 0, err
	}
	if err := k.start(0); err != nil {
		return 0, err
	}
	if err := k.steady(ctx); err != nil {
		return 0, err
	}
	return took, nil
}
