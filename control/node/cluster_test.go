package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/control/api"
	"github.com/vigil-ha/vigil/control/config"
	"github.com/vigil-ha/vigil/control/monitor"
	"github.com/vigil-ha/vigil/control/np"
	"github.com/vigil-ha/vigil/control/resource"
	"github.com/vigil-ha/vigil/control/script"
)

// world is what the fake resources change: which server runs which
// resource. It fails the test the moment two servers run the same one.
type world struct {
	t      *testing.T
	mu     sync.Mutex
	active map[string]string // resource → server
	starts map[string]int    // "server/resource" → start count
	failOn map[string]bool   // "server/resource" whose start fails
	monErr map[string]bool   // "server/monitor" that reports an error
	// healAt makes "server/monitor" healthy again once r1 has started that
	// many times on server.
	healAt  map[string]int
	npDown  map[string]bool // server whose NP targets do not answer
	violate []string
	// overlapOK tolerates two servers running a resource at once: the
	// window a network partition leaves before the isolated side stops.
	overlapOK bool
}

func newWorld(t *testing.T) *world {
	return &world{t: t, active: map[string]string{}, starts: map[string]int{},
		failOn: map[string]bool{}, monErr: map[string]bool{}, healAt: map[string]int{}, npDown: map[string]bool{}}
}

func (w *world) set(m map[string]bool, key string, v bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	m[key] = v
}

func (w *world) get(m map[string]bool, key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return m[key]
}

func (w *world) startCount(server, res string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.starts[server+"/"+res]
}

func (w *world) owner(res string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.active[res]
}

type fakeRes struct {
	w            *world
	server, name string
}

func (r *fakeRes) Start(context.Context) error {
	w := r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	w.starts[r.server+"/"+r.name]++
	if w.failOn[r.server+"/"+r.name] {
		return errors.New("injected start failure")
	}
	if o, ok := w.active[r.name]; ok && o != r.server && !w.overlapOK {
		w.violate = append(w.violate, fmt.Sprintf("%s started on %s while active on %s", r.name, r.server, o))
	}
	w.active[r.name] = r.server
	return nil
}

func (r *fakeRes) Stop(context.Context) error {
	w := r.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.active[r.name] == r.server {
		delete(w.active, r.name)
	}
	return nil
}

type fakeCheck struct {
	w            *world
	server, name string
}

func (c *fakeCheck) Check(context.Context) monitor.Result {
	key := c.server + "/" + c.name
	c.w.mu.Lock()
	if at := c.w.healAt[key]; at > 0 && c.w.starts[c.server+"/r1"] >= at {
		c.w.monErr[key] = false
	}
	c.w.mu.Unlock()
	if c.w.get(c.w.monErr, key) {
		return monitor.Result{Status: monitor.Error, Code: 1, Message: "injected error"}
	}
	return monitor.Result{Status: monitor.OK}
}

type fakeNP struct {
	w      *world
	server string
}

func (f *fakeNP) Check(context.Context) np.Result {
	if f.w.get(f.w.npDown, f.server) {
		return np.Result{Detail: "ping 198.18.2.1: injected timeout"}
	}
	return np.Result{Reachable: true, Detail: "ping 198.18.2.1 answered"}
}

// fakeHB is one node's heartbeat on the fake network.
type fakeHB struct {
	mu      sync.Mutex
	payload []byte
}

func (h *fakeHB) SetPayload(p []byte) {
	h.mu.Lock()
	h.payload = append([]byte(nil), p...)
	h.mu.Unlock()
}

func (h *fakeHB) get() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.payload
}

// cluster is a set of nodes on a fake network.
type cluster struct {
	// stopped ends the network; until then it runs even with no node yet
	// (a test adds them after a slow start).
	stopped bool
	t       *testing.T
	w       *world
	cfg     *config.Config
	nodes   []*Node
	hbs     []*fakeHB
	cancel  []context.CancelFunc
	done    []chan error
	mu      sync.Mutex
	cut     map[[2]int]bool
	// laneCut cuts one lane between two nodes: {a, b, lane}.
	laneCut map[[3]int]bool
	dead    map[int]bool
	hashes  [][16]byte
	// runners are the nodes' script runners: they record the shutdown
	// command of a final action.
	runners []*script.Fake
}

const testConfig = `
cluster:
  name: test
  key_file: cluster.key
  heartbeat: {interval_ms: 20, timeout_ms: 400}
  startup_wait_ms: 300
  np_resolution:
    targets: [{ping: 198.18.2.1}]
    timeout_ms: 100
  shutdown_command: [/bin/true]
servers:
  - {name: n1, interconnects: {lan1: 198.18.0.1, lan2: 198.18.1.1}}
  - {name: n2, interconnects: {lan1: 198.18.0.2, lan2: 198.18.1.2}}
lanes:
  - {name: lan1, priority: 1}
  - {name: lan2, priority: 2}
groups:
  - name: g1
    resources:
      - {name: r1, type: exec, start: /bin/true}
      - {name: r2, type: exec, start: /bin/true, depends_on: [r1]}
monitors:
  - name: m1
    type: exec
    script: /bin/true
    interval_ms: 10
    timeout_ms: 50
    timing: active
    active_on: g1
    recovery: {target: g1, reactivation_count: 1, failover_count: 1, final_action: stop_group}
  - name: m2
    type: exec
    script: /bin/true
    interval_ms: 10
    timeout_ms: 50
    recovery: {target: LocalServer, final_action: stop_cluster_service_and_shutdown}
`

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	c, err := config.Parse("test.yaml", []byte(text))
	if err != nil {
		t.Fatalf("parse test config: %v", err)
	}
	return c
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	// Quiet, but a failed test shows what its nodes logged.
	var mu sync.Mutex
	var buf bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			t.Logf("node logs:\n%s", buf.String())
			mu.Unlock()
		}
	})
	return slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func newCluster(t *testing.T, text string) *cluster {
	c := newEmptyCluster(t, text)
	for i := range c.cfg.Servers {
		c.add(i, c.cfg)
	}
	return c
}

// newEmptyCluster returns a cluster whose nodes the test adds itself.
func newEmptyCluster(t *testing.T, text string) *cluster {
	c := &cluster{t: t, w: newWorld(t), cfg: parseConfig(t, text), cut: map[[2]int]bool{}, laneCut: map[[3]int]bool{}, dead: map[int]bool{}}
	t.Cleanup(c.stop)
	go c.network()
	return c
}

func (c *cluster) add(i int, cfg *config.Config) {
	name := cfg.Servers[i].Name
	hb := &fakeHB{}
	runner := &script.Fake{}
	n, err := New(Options{
		Config: cfg, Server: name, Heartbeat: hb,
		Resources: func(group string, r *config.Resource) (resource.Resource, error) {
			return &fakeRes{w: c.w, server: name, name: r.Name}, nil
		},
		Monitors: func(m *config.Monitor) (monitor.Checker, error) {
			return &fakeCheck{w: c.w, server: name, name: m.Name}, nil
		},
		NP: &fakeNP{w: c.w, server: name}, Runner: runner,
		Log: testLogger(c.t).With("node", name), HeartbeatMode: "fake",
	})
	if err != nil {
		c.t.Fatal(err)
	}
	n.crash = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	var h [16]byte
	copy(h[:], cfg.Hash[:16])
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.nodes) <= i {
		c.nodes, c.hbs, c.cancel, c.done, c.hashes = append(c.nodes, nil), append(c.hbs, nil), append(c.cancel, nil), append(c.done, nil), append(c.hashes, [16]byte{})
	}
	for len(c.runners) <= i {
		c.runners = append(c.runners, nil)
	}
	c.nodes[i], c.hbs[i], c.cancel[i], c.done[i], c.hashes[i], c.runners[i] = n, hb, cancel, done, h, runner
	delete(c.dead, i)
}

// network delivers, every millisecond or so, each node's payload to every
// peer it can reach, and a reply back.
func (c *cluster) network() {
	inc := uint64(1)
	for {
		time.Sleep(2 * time.Millisecond)
		c.mu.Lock()
		if c.stopped {
			c.mu.Unlock()
			return
		}
		for a := range c.nodes {
			for b := range c.nodes {
				if a == b || c.dead[a] || c.dead[b] || c.cut[[2]int{a, b}] || c.nodes[a] == nil || c.nodes[b] == nil {
					continue
				}
				for l := range c.cfg.Lanes {
					if c.laneCut[[3]int{a, b, l}] {
						continue
					}
					lane := uint8(l)
					c.nodes[b].Observe(Observation{Kind: ProbeReceived, Peer: uint8(a), Lane: lane, ConfigHash: c.hashes[a], Incarnation: inc + uint64(a), Payload: c.hbs[a].get()})
					c.nodes[a].Observe(Observation{Kind: ReplyReceived, Peer: uint8(b), Lane: lane, RTT: time.Duration(100+l) * time.Microsecond, ConfigHash: c.hashes[b], Incarnation: inc + uint64(b)})
				}
			}
		}
		c.mu.Unlock()
	}
}

func (c *cluster) stop() {
	c.mu.Lock()
	nodes := c.nodes
	c.nodes = nil
	c.stopped = true
	c.mu.Unlock()
	for i, n := range nodes {
		if n != nil && !c.dead[i] {
			c.cancel[i]()
			<-c.done[i]
		}
	}
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	for _, v := range c.w.violate {
		c.t.Errorf("split brain: %s", v)
	}
}

// kill ends node i like SIGKILL: nothing is stopped, its resources stay.
func (c *cluster) kill(i int) {
	c.mu.Lock()
	c.dead[i] = true
	n := c.nodes[i]
	c.mu.Unlock()
	close(n.crash)
	<-c.done[i]
	// A killed node's resources are gone with the host in this model.
	c.w.mu.Lock()
	for r, s := range c.w.active {
		if s == n.name {
			delete(c.w.active, r)
		}
	}
	c.w.mu.Unlock()
}

// partition cuts (or heals) the link between nodes a and b, both ways.
func (c *cluster) partition(a, b int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut[[2]int{a, b}], c.cut[[2]int{b, a}] = cut, cut
}

// cutLane cuts (or heals) one lane between nodes a and b, both ways.
func (c *cluster) cutLane(a, b, lane int, cut bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.laneCut[[3]int{a, b, lane}], c.laneCut[[3]int{b, a, lane}] = cut, cut
}

func (c *cluster) status(i int) api.Status { return c.nodes[i].Status() }

// eventually waits, generously, for cond; machines are shared and slow.
func (c *cluster) eventually(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.t.Fatalf("timed out waiting for %s\nnode statuses:\n%s", what, c.dump())
}

func (c *cluster) dump() string {
	var b strings.Builder
	for i, n := range c.nodes {
		if c.dead[i] || n == nil {
			continue
		}
		s := n.Status()
		fmt.Fprintf(&b, "%s: service=%s %s groups=%+v monitors=%+v\n", s.Server, s.Service, s.Reason, s.Groups, s.Monitors)
	}
	return b.String()
}

func (c *cluster) groupOn(i int, group, state string) bool {
	for _, g := range c.status(i).Groups {
		if g.Name == group {
			return g.State == state && g.Owner == c.cfg.Servers[i].Name
		}
	}
	return false
}

// online reports whether g1 runs on node i, as every live node sees it.
func (c *cluster) online(i int) func() bool {
	return func() bool {
		if c.w.owner("r2") != c.cfg.Servers[i].Name {
			return false
		}
		for j, n := range c.nodes {
			if n == nil || c.isDead(j) {
				continue
			}
			if g := c.status(j).Groups[0]; g.State != api.StateOnline || g.Owner != c.cfg.Servers[i].Name {
				return false
			}
		}
		return true
	}
}

func (c *cluster) isDead(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dead[i]
}
