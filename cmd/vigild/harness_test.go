//go:build linux

package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/internal/netnstest"
)

// vigildBin is the daemon under test, built once by TestMain, or the one
// VIGILD_BIN names.
var vigildBin string

func TestMain(m *testing.M) {
	code := func() int {
		// The VM tests (vmtests/) run this binary where there is no Go
		// toolchain, with a vigild built beforehand.
		if p := os.Getenv("VIGILD_BIN"); p != "" {
			vigildBin = p
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "vigild-test")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		vigildBin = filepath.Join(dir, "vigild")
		out, err := exec.Command("go", "build", "-o", vigildBin, ".").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build vigild: %v\n%s", err, out)
			return 1
		}
		return m.Run()
	}()
	os.Exit(code)
}

// clusterConfig is the configuration the daemon tests run: two nodes on one
// lane, an NP target, a floating IP and an exec application whose start and
// stop append to a journal, and an exec monitor that fails while a marker
// file for its server exists.
const clusterConfig = `
cluster:
  name: itest
  key_file: cluster.key
  heartbeat: {interval_ms: 100, timeout_ms: 1000, @HEARTBEAT@}
  startup_wait_ms: 2000
  np_resolution:
    targets: [{ping: 198.18.0.254}]
    timeout_ms: 300
  shutdown_command: [@DIR@/shutdown.sh]
  metrics_address: 0.0.0.0:9750
servers:
  - {name: node1, availability_zone: az-a, interconnects: {lan1: 198.18.0.1}}
  - {name: node2, availability_zone: az-b, interconnects: {lan1: 198.18.0.2}}
lanes:
  - {name: lan1, priority: 1, mirror: true}
groups:
  - name: failover1
    resources:
      - {name: fip1, type: floating_ip, address: 198.18.0.100/24, interface: eth0}
      - {name: app1, type: exec, start: @DIR@/app.sh, stop: @DIR@/app.sh, depends_on: [fip1]}
monitors:
  - name: appw1
    type: exec
    script: @DIR@/check.sh
    interval_ms: 100
    timeout_ms: 2000
    timing: active
    active_on: failover1
    recovery: {target: failover1, reactivation_count: 1, failover_count: 1, final_action: stop_group}
`

const appScript = `#!/bin/sh
echo "$VIGIL_SERVER $VIGIL_EVENT" >> "$(dirname "$0")/journal"
`

const checkScript = `#!/bin/sh
test ! -e "$(dirname "$0")/fail.$VIGIL_SERVER"
`

// testCluster is two vigild processes in their own network namespaces,
// on a switch namespace shared with an NP target.
type testCluster struct {
	t     *testing.T
	dir   string
	sw    *netnstest.NS
	nat   *netnstest.NS
	nodes [2]*netnstest.NS
	names [2]string
	mu    sync.Mutex
	procs [2]*exec.Cmd
	logs  [2]*syncBuffer
}

func newTestCluster(t *testing.T) *testCluster { return newTestClusterWith(t, "mode: auto") }

// newTestClusterWith is newTestCluster with more heartbeat settings, as
// YAML flow-mapping entries ("mode: userspace, stall_timeout_ms: 3000").
func newTestClusterWith(t *testing.T, heartbeat string) *testCluster {
	c := &testCluster{t: t, dir: t.TempDir(), names: [2]string{"node1", "node2"}}
	c.sw = netnstest.New(t, "sw")
	c.nat = netnstest.New(t, "nat")
	c.nodes[0] = netnstest.New(t, "n1")
	c.nodes[1] = netnstest.New(t, "n2")
	c.ip("-n", c.sw.Name(), "link", "add", "br0", "type", "bridge")
	c.ip("-n", c.sw.Name(), "link", "set", "br0", "up")
	c.plug(c.nodes[0], "p1", "198.18.0.1/24")
	c.plug(c.nodes[1], "p2", "198.18.0.2/24")
	c.plug(c.nat, "pn", "198.18.0.254/24")
	cfg := strings.ReplaceAll(clusterConfig, "@DIR@", c.dir)
	c.write("cluster.yaml", 0o644, strings.ReplaceAll(cfg, "@HEARTBEAT@", heartbeat))
	key := make([]byte, 32)
	rand.Read(key)
	c.write("cluster.key", 0o600, string(key))
	c.write("app.sh", 0o755, appScript)
	c.write("check.sh", 0o755, checkScript)
	c.write("shutdown.sh", 0o755, "#!/bin/sh\ntouch \"$(dirname \"$0\")/shutdown\"\n")
	t.Cleanup(c.stopAll)
	return c
}

func (c *testCluster) ip(args ...string) {
	c.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		c.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// plug joins ns to the switch with a veth whose switch end is port.
func (c *testCluster) plug(ns *netnstest.NS, port, addr string) {
	c.ip("link", "add", port, "netns", c.sw.Name(), "type", "veth", "peer", "name", "eth0", "netns", ns.Name())
	c.ip("-n", c.sw.Name(), "link", "set", port, "master", "br0", "up")
	c.ip("-n", ns.Name(), "addr", "add", addr, "dev", "eth0")
	c.ip("-n", ns.Name(), "link", "set", "eth0", "up")
}

// cut takes node i's switch port down (or up again): the node loses its
// peer and its NP target at once.
func (c *testCluster) cut(i int, down bool) {
	state := "up"
	if down {
		state = "down"
	}
	c.ip("-n", c.sw.Name(), "link", "set", fmt.Sprintf("p%d", i+1), state)
}

func (c *testCluster) write(name string, mode os.FileMode, text string) string {
	c.t.Helper()
	p := filepath.Join(c.dir, name)
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		c.t.Fatal(err)
	}
	return p
}

func (c *testCluster) socket(i int) string { return filepath.Join(c.dir, c.names[i]+".sock") }

// start starts vigild for node i with the configuration file cfg.
func (c *testCluster) start(i int, cfg string) {
	c.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", c.nodes[i].Name(), vigildBin,
		"-config", cfg, "-server", c.names[i], "-socket", c.socket(i), "-log-level", "debug")
	buf := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = buf, buf
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start vigild %s: %v", c.names[i], err)
	}
	c.mu.Lock()
	c.procs[i], c.logs[i] = cmd, buf
	c.mu.Unlock()
}

func (c *testCluster) startBoth() {
	cfg := filepath.Join(c.dir, "cluster.yaml")
	c.start(0, cfg)
	c.start(1, cfg)
}

// signal sends sig to node i's vigild.
func (c *testCluster) signal(i int, sig os.Signal) {
	c.t.Helper()
	c.mu.Lock()
	p := c.procs[i]
	c.mu.Unlock()
	if err := p.Process.Signal(sig); err != nil {
		c.t.Fatalf("signal %v to %s: %v", sig, c.names[i], err)
	}
}

// kill ends node i's vigild with SIGKILL, as a crash would.
func (c *testCluster) kill(i int) {
	c.mu.Lock()
	p := c.procs[i]
	c.procs[i] = nil
	c.mu.Unlock()
	p.Process.Kill()
	p.Wait()
}

func (c *testCluster) stopAll() {
	for i := range c.procs {
		c.mu.Lock()
		p := c.procs[i]
		c.procs[i] = nil
		c.mu.Unlock()
		if p == nil {
			continue
		}
		p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.Process.Kill()
			<-done
		}
		if c.t.Failed() {
			c.t.Logf("vigild %s log:\n%s", c.names[i], c.logs[i].String())
		}
	}
}

func (c *testCluster) client(i int) *api.Client { return api.NewClient(c.socket(i)) }

func (c *testCluster) status(i int) (api.Status, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.client(i).Status(ctx)
}

// eventually waits, generously, for cond: the machines are shared.
func (c *testCluster) eventually(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	var b strings.Builder
	for i := range c.names {
		if s, err := c.status(i); err == nil {
			fmt.Fprintf(&b, "%s: service=%s %s groups=%+v monitors=%+v\n", s.Server, s.Service, s.Reason, s.Groups, s.Monitors)
		}
	}
	c.t.Fatalf("timed out waiting for %s\n%s", what, b.String())
}

// groupOn reports whether node i sees failover1 in state on owner.
func (c *testCluster) groupOn(i int, state, owner string) bool {
	s, err := c.status(i)
	if err != nil || len(s.Groups) == 0 {
		return false
	}
	return s.Groups[0].State == state && s.Groups[0].Owner == owner
}

// onlineOn waits until every running node sees failover1 online on owner.
func (c *testCluster) onlineOn(owner int, alive ...int) {
	c.t.Helper()
	c.eventually("failover1 online on "+c.names[owner], func() bool {
		for _, i := range alive {
			if !c.groupOn(i, api.StateOnline, c.names[owner]) {
				return false
			}
		}
		return true
	})
}

// hasAddr reports whether node i holds the floating IP.
func (c *testCluster) hasAddr(i int) bool {
	out, err := exec.Command("ip", "-n", c.nodes[i].Name(), "-o", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		c.t.Fatalf("ip addr: %v: %s", err, out)
	}
	return strings.Contains(string(out), "198.18.0.100/")
}

// journal returns the app script's journal lines.
func (c *testCluster) journal() []string {
	b, err := os.ReadFile(filepath.Join(c.dir, "journal"))
	if err != nil {
		return nil
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (c *testCluster) count(line string) int {
	n := 0
	for _, l := range c.journal() {
		if l == line {
			n++
		}
	}
	return n
}

// scrape fetches node i's /metrics from inside its namespace.
func (c *testCluster) scrape(i int) string {
	var text string
	// Dial on the namespace's thread: http.Transport would dial from
	// another goroutine, in the host's namespace.
	c.nodes[i].Do(c.t, func() error {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:9750", 5*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: vigil\r\n\r\n"); err != nil {
			return err
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		text = string(b)
		return err
	})
	return text
}

// metric returns the value of the first sample whose line starts with name
// and contains every label fragment, or -1.
func metric(text, name string, labels ...string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, name) {
			continue
		}
		ok := true
		for _, f := range labels {
			ok = ok && strings.Contains(l, f)
		}
		if !ok {
			continue
		}
		var v float64
		if _, err := fmt.Sscan(l[strings.LastIndexByte(l, ' ')+1:], &v); err == nil {
			return v
		}
	}
	return -1
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
