package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Topology: two nodes and a switch namespace with a bridge, one lane.
const (
	nsPrefix   = "vbh-"            // namespace names: vbh-PID-ROLE
	netnsDir   = "/run/netns"      // where iproute2 keeps named namespaces
	vipCIDR    = "198.18.0.100/24" // the floating IP, on eth0
	lanePrefix = "198.18.0."       // node i has 198.18.0.(i+1)/24 on eth0
	metricsAt  = "127.0.0.1:9750"  // vigild's /metrics, inside each node
	hbPort     = 29001             // heartbeat UDP port
)

// vip is the floating IP's address.
var vip = net.ParseIP("198.18.0.100").To4()

// nodeNames are the servers, node i in namespace env.nodes[i].
var nodeNames = [2]string{"node1", "node2"}

// nodeAddr returns node i's lane address.
func nodeAddr(i int) string { return lanePrefix + strconv.Itoa(i+1) }

// env owns everything the benchmark creates: a work directory, network
// namespaces and processes. cleanup removes them all.
type env struct {
	work    string
	verbose bool
	sw      string    // switch namespace
	nodes   [2]string // node namespaces
	workers [2]*nsWorker
	handles [2]*netlink.Handle // netlink in each node namespace

	mu     sync.Mutex
	nsList []string
	procs  []*proc
	spawn  chan spawnReq
}

// newEnv makes the work directory and starts the spawner. Namespaces of
// earlier runs that died without cleaning up are removed first.
func newEnv(verbose bool) (*env, error) {
	sweepStale()
	work, err := os.MkdirTemp("", "bench-heartbeat.")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	e := &env{work: work, verbose: verbose, spawn: make(chan spawnReq)}
	go e.spawner()
	return e, nil
}

// logf prints a progress line when -v is set.
func (e *env) logf(format string, args ...any) {
	if e.verbose {
		fmt.Printf("  . "+format+"\n", args...)
	}
}

// spawnReq asks the spawner to start cmd.
type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

// spawner starts every child process from one OS thread that lives as long
// as the program: Pdeathsig fires when the creating thread ends, and this
// one ends only with the process, so children die with the benchmark (even
// if it is SIGKILLed) and never earlier.
func (e *env) spawner() {
	runtime.LockOSThread()
	for r := range e.spawn {
		r.res <- r.cmd.Start()
	}
}

// sweepStale removes namespaces named by this program for a process that no
// longer exists, killing what still runs in them.
func sweepStale() {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, d := range entries {
		name := d.Name()
		if !strings.HasPrefix(name, nsPrefix) {
			continue
		}
		parts := strings.Split(strings.TrimPrefix(name, nsPrefix), "-")
		pid, err := strconv.Atoi(parts[0])
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue
		}
		fmt.Fprintf(os.Stderr, "bench-heartbeat: removing stale namespace %s\n", name)
		killNamespacePids(name)
		exec.Command("ip", "netns", "del", name).Run()
	}
}

// killNamespacePids SIGKILLs every process left in the named namespace: all
// of them were started by this program.
func killNamespacePids(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
			unix.Kill(pid, unix.SIGCONT)
			unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// ip runs the ip command.
func ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// addNS creates a named namespace with its loopback up.
func (e *env) addNS(ctx context.Context, role string) (string, error) {
	name := fmt.Sprintf("%s%d-%s", nsPrefix, os.Getpid(), role)
	if err := ip(ctx, "netns", "add", name); err != nil {
		return "", err
	}
	e.mu.Lock()
	e.nsList = append(e.nsList, name)
	e.mu.Unlock()
	return name, ip(ctx, "-n", name, "link", "set", "lo", "up")
}

// setup builds the topology: a switch namespace with bridge br0 and two
// node namespaces, each with eth0 (its lane address) on a veth whose other
// end is a bridge port.
func (e *env) setup(ctx context.Context) error {
	var err error
	if e.sw, err = e.addNS(ctx, "sw"); err != nil {
		return err
	}
	if err := ip(ctx, "-n", e.sw, "link", "add", "br0", "type", "bridge"); err != nil {
		return err
	}
	if err := ip(ctx, "-n", e.sw, "link", "set", "br0", "up"); err != nil {
		return err
	}
	for i := range e.nodes {
		if e.nodes[i], err = e.addNS(ctx, "n"+strconv.Itoa(i+1)); err != nil {
			return err
		}
		port := "p" + strconv.Itoa(i+1)
		steps := [][]string{
			{"link", "add", port, "netns", e.sw, "type", "veth", "peer", "name", "eth0", "netns", e.nodes[i]},
			{"-n", e.sw, "link", "set", port, "master", "br0", "up"},
			{"-n", e.nodes[i], "addr", "add", nodeAddr(i) + "/24", "dev", "eth0"},
			{"-n", e.nodes[i], "link", "set", "eth0", "up"},
		}
		for _, s := range steps {
			if err := ip(ctx, s...); err != nil {
				return err
			}
		}
		e.workers[i] = newNSWorker(filepath.Join(netnsDir, e.nodes[i]))
		h, err := netns.GetFromPath(filepath.Join(netnsDir, e.nodes[i]))
		if err != nil {
			return fmt.Errorf("open netns %s: %w", e.nodes[i], err)
		}
		e.handles[i], err = netlink.NewHandleAt(h)
		h.Close()
		if err != nil {
			return fmt.Errorf("netlink in %s: %w", e.nodes[i], err)
		}
	}
	return nil
}

// hasVIP reports whether node i has the floating IP on eth0.
func (e *env) hasVIP(i int) (bool, error) {
	link, err := e.handles[i].LinkByName("eth0")
	if err != nil {
		return false, fmt.Errorf("%s eth0: %w", nodeNames[i], err)
	}
	addrs, err := e.handles[i].AddrList(link, netlink.FAMILY_V4)
	if err != nil {
		return false, fmt.Errorf("%s addresses: %w", nodeNames[i], err)
	}
	for _, a := range addrs {
		if a.IP.Equal(vip) {
			return true, nil
		}
	}
	return false, nil
}

// dropVIP removes the floating IP from node i if it is there.
func (e *env) dropVIP(i int) error {
	has, err := e.hasVIP(i)
	if err != nil || !has {
		return err
	}
	link, err := e.handles[i].LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("%s eth0: %w", nodeNames[i], err)
	}
	a, _ := netlink.ParseAddr(vipCIDR)
	if err := e.handles[i].AddrDel(link, a); err != nil {
		return fmt.Errorf("%s: remove %s: %w", nodeNames[i], vipCIDR, err)
	}
	return nil
}

// proc is a process the benchmark started, in its own process group.
type proc struct {
	name string
	log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs argv inside namespace ns with `ip netns exec` (which execs
// argv in place: the process is the program itself), its output appended
// to the file logPath.
func (e *env) start(name, ns, logPath string, argv ...string) (*proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s log: %w", name, err)
	}
	defer f.Close()
	fmt.Fprintf(f, "=== bench-heartbeat %s: start %s\n", time.Now().Format(time.RFC3339Nano), strings.Join(argv, " "))
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	res := make(chan error, 1)
	e.spawn <- spawnReq{cmd: cmd, res: res}
	if err := <-res; err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	e.mu.Lock()
	e.procs = append(e.procs, p)
	e.mu.Unlock()
	return p, nil
}

// pid is the process id (the program's, since ip netns exec execs it).
func (p *proc) pid() int { return p.cmd.Process.Pid }

// alive reports whether the process still runs.
func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig syscall.Signal) error {
	if err := syscall.Kill(p.pid(), sig); err != nil {
		return fmt.Errorf("%v to %s (pid %d): %w", sig, p.name, p.pid(), err)
	}
	return nil
}

// waitExit waits up to d for the process to end.
func (p *proc) waitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// stop ends the process and its group: SIGCONT (it may be stopped) and
// SIGTERM, then SIGKILL to the group after grace. Children left behind in
// a node's namespace are killed by cleanup.
func (p *proc) stop(grace time.Duration) {
	if !p.alive() {
		return
	}
	syscall.Kill(-p.pid(), syscall.SIGCONT)
	syscall.Kill(p.pid(), syscall.SIGTERM)
	if !p.waitExit(grace) {
		syscall.Kill(-p.pid(), syscall.SIGKILL)
		p.waitExit(5 * time.Second)
	}
}

// tail returns the last n lines of the process's log.
func (p *proc) tail(n int) string { return tailFile(p.log, n) }

// tailFile returns the last n lines of a file.
func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// cleanup stops every process, removes the namespaces and, unless keep is
// set, the work directory. It is safe to call more than once.
func (e *env) cleanup(keep bool) {
	e.mu.Lock()
	procs := e.procs
	e.procs = nil
	nsList := e.nsList
	e.nsList = nil
	e.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(func() { p.stop(5 * time.Second) })
	}
	wg.Wait()
	for i := range e.handles {
		if e.handles[i] != nil {
			e.handles[i].Close()
			e.handles[i] = nil
		}
		if e.workers[i] != nil {
			e.workers[i].close()
			e.workers[i] = nil
		}
	}
	for j := len(nsList) - 1; j >= 0; j-- {
		killNamespacePids(nsList[j])
		if err := exec.Command("ip", "netns", "del", nsList[j]).Run(); err != nil {
			fmt.Fprintf(os.Stderr, "bench-heartbeat: remove namespace %s: %v\n", nsList[j], err)
		}
	}
	if e.work != "" {
		if keep {
			fmt.Fprintf(os.Stderr, "bench-heartbeat: logs and configuration kept in %s\n", e.work)
		} else {
			os.RemoveAll(e.work)
		}
		e.work = ""
	}
}

// nsWorker runs functions on one OS thread that has entered a network
// namespace, so that sockets they open live in it.
type nsWorker struct {
	jobs chan func()
	err  error
	once sync.Once
}

// newNSWorker starts a worker in the namespace at path. A worker whose
// setns failed answers every job with that error.
func newNSWorker(path string) *nsWorker {
	w := &nsWorker{jobs: make(chan func())}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked: the thread dies with this goroutine instead of
		// going back to the scheduler in the wrong namespace.
		h, err := netns.GetFromPath(path)
		if err == nil {
			err = unix.Setns(int(h), unix.CLONE_NEWNET)
			h.Close()
		}
		if err != nil {
			w.err = fmt.Errorf("enter netns %s: %w", path, err)
		}
		close(ready)
		for job := range w.jobs {
			job()
		}
	}()
	<-ready
	return w
}

// do runs fn in the namespace and returns its error.
func (w *nsWorker) do(fn func() error) error {
	if w.err != nil {
		return w.err
	}
	errc := make(chan error, 1)
	w.jobs <- func() { errc <- fn() }
	return <-errc
}

// close ends the worker's thread.
func (w *nsWorker) close() { w.once.Do(func() { close(w.jobs) }) }
