package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/vmtests/internal/proto"
	"github.com/vigil-ha/vigil/vmtests/vmenv"
)

// portWait bounds the wait for the virtio-serial ports to appear after
// their driver loads, and for network interfaces.
const portWait = 20 * time.Second

// basePath is every run's PATH.
const basePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Main is the VM's init. It never returns: it powers the VM off.
func Main() {
	log := os.Stderr // the console
	defer powerOff(log)
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(log, "vigil-init: panic: %v\n", r)
		}
	}()
	status, err := run(log)
	if err != nil {
		fmt.Fprintf(log, "vigil-init: %v\n", err)
		if status != nil {
			sendStatus(status, proto.Event{Kind: proto.KindError, Message: err.Error()})
		}
	}
}

func run(log io.Writer) (*os.File, error) {
	if err := mountAll(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(manifestPath())
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var m proto.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var modErrs []error
	for _, mod := range m.Modules {
		if err := loadModule(mod); err != nil {
			modErrs = append(modErrs, err)
			fmt.Fprintf(log, "vigil-init: %v\n", err)
		}
	}
	ports, err := findPorts(proto.OutputPort, proto.StatusPort)
	if err != nil {
		return nil, errors.Join(append(modErrs, err)...)
	}
	output, err := os.OpenFile(ports[0], os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open output port: %w", err)
	}
	status, err := os.OpenFile(ports[1], os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("open status port: %w", err)
	}
	if err := errors.Join(modErrs...); err != nil {
		return status, err
	}
	if m.Hostname != "" {
		if err := unix.Sethostname([]byte(m.Hostname)); err != nil {
			return status, fmt.Errorf("hostname: %w", err)
		}
	}
	if err := setupNetwork(m.Links); err != nil {
		return status, err
	}
	sendStatus(status, proto.Event{Kind: proto.KindReady, Uptime: uptime()})

	frames := proto.NewFrameWriter(output)
	env := append([]string{"PATH=" + basePath, "HOME=/root", "TMPDIR=/tmp", vmenv.EnvVM + "=1"}, m.Env...)
	for i, r := range m.Runs {
		sendStatus(status, proto.Event{Kind: proto.KindStart, Run: i})
		fmt.Fprintf(log, "vigil-init: run %d: %s\n", i, r.Name)
		ev := runOne(i, r, env, frames)
		fmt.Fprintf(log, "vigil-init: run %d: exit %d %s after %v\n", i, ev.Code, ev.Signal, ev.Duration)
		if n := killLeftovers(); n > 0 {
			fmt.Fprintf(log, "vigil-init: run %d left %d processes behind; killed them\n", i, n)
		}
		sendStatus(status, ev)
	}
	unix.Sync()
	sendStatus(status, proto.Event{Kind: proto.KindDone})
	return status, nil
}

// runOne runs r as run i and returns its exit event.
func runOne(i int, r proto.Run, env []string, frames *proto.FrameWriter) proto.Event {
	ev := proto.Event{Kind: proto.KindExit, Run: i, Code: -1}
	for _, d := range r.MakeDirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			fmt.Fprintf(frames.Stream(i, proto.Stderr), "vigil-init: %v\n", err)
		}
	}
	cmd := exec.Command(r.Path, r.Args...)
	cmd.Dir = r.Dir
	cmd.Env = append(append([]string(nil), env...), r.Env...)
	cmd.Stdout = frames.Stream(i, proto.Stdout)
	cmd.Stderr = frames.Stream(i, proto.Stderr)
	// A daemon the test left running may hold the pipes open: stop
	// waiting for them soon after the test itself exits.
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	err := cmd.Run()
	ev.Duration = time.Since(start)
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		ev.Code = 0
	case errors.As(err, &exitErr):
		ev.Code = exitErr.ExitCode()
		if ws, ok := exitErr.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ev.Code = 128 + int(ws.Signal())
			ev.Signal = unix.SignalName(ws.Signal())
		}
	case errors.Is(err, exec.ErrWaitDelay):
		ev.Code = cmd.ProcessState.ExitCode()
	default:
		fmt.Fprintf(frames.Stream(i, proto.Stderr), "vigil-init: %s: %v\n", r.Name, err)
	}
	return ev
}

// manifestPath is the vigil.manifest= parameter of the kernel command
// line, or proto.ManifestPath.
func manifestPath() string {
	b, _ := os.ReadFile("/proc/cmdline")
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "vigil.manifest="); ok {
			return v
		}
	}
	return proto.ManifestPath
}

func sendStatus(f *os.File, e proto.Event) {
	if _, err := io.WriteString(f, e.String()+"\n"); err != nil {
		fmt.Fprintf(os.Stderr, "vigil-init: status port: %v\n", err)
	}
}

func mountAll() error {
	for _, m := range []struct {
		src, dst, fstype, data string
		perm                   os.FileMode
		optional               bool
	}{
		{"proc", "/proc", "proc", "", 0o555, false},
		{"sysfs", "/sys", "sysfs", "", 0o555, false},
		{"devtmpfs", "/dev", "devtmpfs", "", 0o755, false},
		{"devpts", "/dev/pts", "devpts", "ptmxmode=0666", 0o755, true},
		{"tmpfs", "/dev/shm", "tmpfs", "mode=1777", 0o1777, true},
		{"tmpfs", "/run", "tmpfs", "mode=0755", 0o755, false},
		{"tmpfs", "/tmp", "tmpfs", "mode=1777", 0o1777, false},
		{"bpf", "/sys/fs/bpf", "bpf", "mode=0700", 0o700, false},
		{"cgroup2", "/sys/fs/cgroup", "cgroup2", "", 0o555, true},
		{"debugfs", "/sys/kernel/debug", "debugfs", "", 0o700, true},
		{"tracefs", "/sys/kernel/tracing", "tracefs", "", 0o700, true},
	} {
		if err := os.MkdirAll(m.dst, m.perm); err != nil && !m.optional {
			return fmt.Errorf("mkdir %s: %w", m.dst, err)
		}
		if err := unix.Mount(m.src, m.dst, m.fstype, unix.MS_NOSUID, m.data); err != nil && !errors.Is(err, unix.EBUSY) && !m.optional {
			return fmt.Errorf("mount %s on %s: %w", m.fstype, m.dst, err)
		}
	}
	for name, target := range map[string]string{"/dev/fd": "/proc/self/fd", "/dev/stdin": "/proc/self/fd/0", "/dev/stdout": "/proc/self/fd/1", "/dev/stderr": "/proc/self/fd/2"} {
		os.Symlink(target, name)
	}
	if err := os.MkdirAll("/var", 0o755); err != nil {
		return err
	}
	os.Symlink("/run", "/var/run")
	os.Symlink("/tmp", "/var/tmp")
	return nil
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("module %s: %w", filepath.Base(path), err)
	}
	defer f.Close()
	if err := unix.FinitModule(int(f.Fd()), "", 0); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("load module %s: %w", filepath.Base(path), err)
	}
	return nil
}

// findPorts waits for the named virtio-serial ports and returns their
// device files.
func findPorts(names ...string) ([]string, error) {
	deadline := time.Now().Add(portWait)
	for {
		found := map[string]string{}
		dirs, _ := filepath.Glob("/sys/class/virtio-ports/*")
		for _, d := range dirs {
			b, err := os.ReadFile(filepath.Join(d, "name"))
			if err != nil {
				continue
			}
			dev := "/dev/" + filepath.Base(d)
			if _, err := os.Stat(dev); err == nil {
				found[strings.TrimSpace(string(b))] = dev
			}
		}
		out := make([]string, 0, len(names))
		for _, n := range names {
			if p, ok := found[n]; ok {
				out = append(out, p)
			}
		}
		if len(out) == len(names) {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("virtio-serial ports %v: found only %v after %v", names, found, portWait)
		}
		// Ports appear when the host's control messages have been
		// handled; poll for them, bounded by the deadline.
		time.Sleep(2 * time.Millisecond)
	}
}

func setupNetwork(links []proto.Link) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("lo: %w", err)
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	for _, l := range links {
		var link netlink.Link
		deadline := time.Now().Add(portWait)
		for {
			link, err = netlink.LinkByName(l.Name)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		if err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		addr, err := netlink.ParseAddr(l.Address)
		if err != nil {
			return fmt.Errorf("link %s: %w", l.Name, err)
		}
		if err := netlink.AddrAdd(link, addr); err != nil {
			return fmt.Errorf("link %s: add %s: %w", l.Name, l.Address, err)
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return fmt.Errorf("link %s: up: %w", l.Name, err)
		}
	}
	return nil
}

// killLeftovers kills every process but init and reaps them, and returns
// how many there were.
func killLeftovers() int {
	n := 0
	if err := unix.Kill(-1, unix.SIGKILL); err != nil {
		return 0
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(-1, &ws, 0, nil)
		if err != nil {
			return n
		}
		n++
	}
}

func uptime() time.Duration {
	b, err := os.ReadFile("/proc/uptime")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0
	}
	return time.Duration(s * float64(time.Second))
}

func powerOff(log io.Writer) {
	unix.Sync()
	err := unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	fmt.Fprintf(log, "vigil-init: power off: %v\n", err)
	select {}
}
