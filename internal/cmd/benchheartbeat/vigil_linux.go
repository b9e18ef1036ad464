package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/control/api"
)

// vigilConfig is the cluster both Vigil variants run: two nodes on one
// lane, the fast heartbeat profile, and one group holding the floating IP.
// No NP resolution: a node that loses its peer takes it for down.
const vigilConfig = `# bench-heartbeat: two nodes, one lane, a floating IP.
cluster:
  name: bench
  key_file: cluster.key
  heartbeat: {profile: fast, mode: %s}
  startup_wait_ms: 500
  metrics_address: %s
servers:
  - {name: node1, interconnects: {lan1: 198.18.0.1}}
  - {name: node2, interconnects: {lan1: 198.18.0.2}}
lanes:
  - {name: lan1, priority: 1}
groups:
  - name: failover1
    servers: [node1, node2]
    resources:
      - {name: fip1, type: floating_ip, address: %s, interface: eth0}
`

// Group and limits of the Vigil runs.
const (
	groupName     = "failover1"
	takeoverLimit = 10 * time.Second // a takeover slower than this fails the run
	settleLimit   = 30 * time.Second // bound on reaching a steady state
	steadyHold    = 300 * time.Millisecond
)

// binaries are the programs the benchmark runs.
type binaries struct {
	vigild, vigilctl, keepalived string
}

// vigilCluster is vigild on both nodes with one configuration.
type vigilCluster struct {
	e     *env
	bin   binaries
	mode  string // ebpf or userspace
	tag   string // names log files
	cfg   string
	procs [2]*proc
}

// newVigil writes the configuration for mode and checks it with vigilctl.
func newVigil(ctx context.Context, e *env, bin binaries, mode, tag string) (*vigilCluster, error) {
	key := filepath.Join(e.work, "cluster.key")
	if _, err := os.Stat(key); err != nil {
		b := make([]byte, 48)
		f, err := os.Open("/dev/urandom")
		if err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		_, err = io.ReadFull(f, b)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
		if err := os.WriteFile(key, b, 0o600); err != nil {
			return nil, fmt.Errorf("cluster key: %w", err)
		}
	}
	c := &vigilCluster{e: e, bin: bin, mode: mode, tag: tag, cfg: filepath.Join(e.work, "vigil-"+mode+".yaml")}
	if err := os.WriteFile(c.cfg, []byte(fmt.Sprintf(vigilConfig, mode, metricsAt, vipCIDR)), 0o644); err != nil {
		return nil, fmt.Errorf("vigil config: %w", err)
	}
	if out, err := exec.CommandContext(ctx, bin.vigilctl, "config", "check", c.cfg).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("vigilctl config check %s: %v: %s", c.cfg, err, strings.TrimSpace(string(out)))
	}
	return c, nil
}

func (c *vigilCluster) socket(i int) string {
	return filepath.Join(c.e.work, c.mode+"-"+nodeNames[i]+".sock")
}

func (c *vigilCluster) logPath(i int) string {
	return filepath.Join(c.e.work, "vigild-"+c.tag+"-"+nodeNames[i]+".log")
}

// start starts vigild for node i.
func (c *vigilCluster) start(i int) error {
	p, err := c.e.start("vigild "+nodeNames[i], c.e.nodes[i], c.logPath(i), c.bin.vigild,
		"-config", c.cfg, "-server", nodeNames[i], "-socket", c.socket(i), "-log-level", "debug")
	if err != nil {
		return err
	}
	c.procs[i] = p
	return nil
}

// startBoth starts both daemons and waits until node1 runs the group.
func (c *vigilCluster) startBoth(ctx context.Context) error {
	for i := range c.procs {
		if err := c.start(i); err != nil {
			return err
		}
	}
	return c.steady(ctx, 0)
}

// stop stops both daemons (SIGTERM) and removes a floating IP left behind.
func (c *vigilCluster) stop() error {
	for _, p := range c.procs {
		if p != nil {
			p.stop(10 * time.Second)
		}
	}
	for i := range c.procs {
		if err := c.e.dropVIP(i); err != nil {
			return err
		}
	}
	return nil
}

// status asks node i's daemon for its status.
func (c *vigilCluster) status(ctx context.Context, i int) (api.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return api.NewClient(c.socket(i)).Status(ctx)
}

// sees reports whether node i's daemon is running, sees its peer up and
// the group online on owner.
func (c *vigilCluster) sees(ctx context.Context, i, owner int) (bool, string) {
	if p := c.procs[i]; p == nil || !p.alive() {
		return false, "vigild " + nodeNames[i] + " is not running"
	}
	s, err := c.status(ctx, i)
	if err != nil {
		return false, fmt.Sprintf("%s status: %v", nodeNames[i], err)
	}
	if !strings.HasPrefix(s.Heartbeat, c.mode) {
		return false, fmt.Sprintf("%s heartbeat %q, want %s", nodeNames[i], s.Heartbeat, c.mode)
	}
	if s.Service != api.ServiceRunning {
		return false, fmt.Sprintf("%s service %s %s", nodeNames[i], s.Service, s.Reason)
	}
	for _, n := range s.Nodes {
		if !n.Self && n.State != api.NodeUp {
			return false, fmt.Sprintf("%s sees %s %s", nodeNames[i], n.Name, n.State)
		}
	}
	if len(s.Groups) != 1 {
		return false, fmt.Sprintf("%s reports %d groups", nodeNames[i], len(s.Groups))
	}
	g := s.Groups[0]
	if g.State != api.StateOnline || g.Owner != nodeNames[owner] {
		return false, fmt.Sprintf("%s sees %s %s on %q", nodeNames[i], g.Name, g.State, g.Owner)
	}
	return true, ""
}

// vipOnlyOn reports whether the floating IP is bound on owner and not on
// the other node.
func (c *vigilCluster) vipOnlyOn(owner int) (bool, string) { return vipOnlyOn(c.e, owner) }

func vipOnlyOn(e *env, owner int) (bool, string) {
	for i := range nodeNames {
		has, err := e.hasVIP(i)
		if err != nil {
			return false, err.Error()
		}
		if has != (i == owner) {
			return false, fmt.Sprintf("floating IP bound on %s: %v", nodeNames[i], has)
		}
	}
	return true, ""
}

// steady waits until both daemons run, see each other up and the group
// online on owner, which alone holds the floating IP, for steadyHold.
func (c *vigilCluster) steady(ctx context.Context, owner int) error {
	err := waitFor(ctx, "vigil "+c.mode+": group online on "+nodeNames[owner], settleLimit, steadyHold, func() (bool, string) {
		for i := range c.procs {
			if ok, why := c.sees(ctx, i, owner); !ok {
				return false, why
			}
		}
		return c.vipOnlyOn(owner)
	})
	return c.withLogs(err)
}

// withLogs adds the daemons' last log lines to err.
func (c *vigilCluster) withLogs(err error) error {
	if err == nil {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v", err)
	for i, p := range c.procs {
		if p != nil {
			fmt.Fprintf(&b, "\n--- %s (%s) log tail:\n%s", nodeNames[i], c.logPath(i), p.tail(25))
		}
	}
	return fmt.Errorf("%s", b.String())
}

// killTrial SIGKILLs node1's daemon (the active one) and returns the time
// from just before kill(2) to the floating IP's RTM_NEWADDR on node2. It
// then restarts node1, moves the group back to it and waits for the
// steady state again.
func (c *vigilCluster) killTrial(ctx context.Context) (time.Duration, error) {
	w, err := c.e.watchVIP(1)
	if err != nil {
		return 0, err
	}
	defer w.close()
	p := c.procs[0]
	t0 := time.Now()
	if err := p.signal(syscall.SIGKILL); err != nil {
		return 0, err
	}
	ev, err := w.waitAdd(ctx, takeoverLimit)
	if err != nil {
		return 0, c.withLogs(fmt.Errorf("vigil %s takeover: %w", c.mode, err))
	}
	took := ev.at.Sub(t0)
	if !p.waitExit(5 * time.Second) {
		return 0, fmt.Errorf("vigild node1 survived SIGKILL")
	}
	if err := c.restore(ctx); err != nil {
		return 0, err
	}
	return took, nil
}

// restore restarts node1's daemon, waits for it to join as standby, moves
// the group back to it (Vigil has no automatic failback) and waits for the
// steady state.
func (c *vigilCluster) restore(ctx context.Context) error {
	if err := c.start(0); err != nil {
		return err
	}
	err := waitFor(ctx, "vigil "+c.mode+": node1 back as standby", settleLimit, 0, func() (bool, string) {
		for i := range c.procs {
			if ok, why := c.sees(ctx, i, 1); !ok {
				return false, why
			}
		}
		return c.vipOnlyOn(1)
	})
	if err != nil {
		return c.withLogs(err)
	}
	mctx, cancel := context.WithTimeout(ctx, settleLimit)
	defer cancel()
	out, err := exec.CommandContext(mctx, c.bin.vigilctl, "--socket", c.socket(0), "group", "move", groupName, nodeNames[0]).CombinedOutput()
	if err != nil {
		return c.withLogs(fmt.Errorf("vigilctl group move %s %s: %v: %s", groupName, nodeNames[0], err, strings.TrimSpace(string(out))))
	}
	return c.steady(ctx, 0)
}

// scrape fetches node i's /metrics, dialling from inside its namespace.
func (c *vigilCluster) scrape(i int) (string, error) {
	var conn net.Conn
	err := c.e.workers[i].do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", metricsAt, time.Second)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s metrics: %w", nodeNames[i], err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: vigil\r\n\r\n"); err != nil {
		return "", fmt.Errorf("%s metrics: %w", nodeNames[i], err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", fmt.Errorf("%s metrics: %w", nodeNames[i], err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("%s metrics: %w", nodeNames[i], err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s metrics: %s", nodeNames[i], resp.Status)
	}
	return string(b), nil
}
