// Package qemu runs one test VM: qemu-system-x86_64 with a kernel, an
// initramfs, a serial console and the two virtio-serial ports of package
// proto, each carried to the host over a unix socket the host listens on.
// A VM that outlives its context is killed; its console log stays on disk.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vigil-ha/vigil/vmtests/internal/proto"
)

// Accelerators.
const (
	KVM = "kvm"
	TCG = "tcg"
)

// ErrDeadline is returned by Wait when the VM was killed because its
// context's deadline passed.
var ErrDeadline = errors.New("VM killed at its deadline")

// Config describes a VM.
type Config struct {
	// QEMU is the emulator; "qemu-system-x86_64" from PATH when empty.
	QEMU string
	// Accel is KVM or TCG.
	Accel string
	// CPUs and MemoryMB size the guest.
	CPUs     int
	MemoryMB int
	// Kernel is the image to boot, Initrd the initramfs.
	Kernel string
	Initrd string
	// Cmdline is added to the kernel command line.
	Cmdline []string
	// Dir holds the sockets and console.log; it must exist, and its
	// path must be short enough for a unix socket (about 90 bytes).
	Dir string
	// Net, when set, is one end of a connected stream socket (a
	// socketpair) that becomes the guest's eth0, through qemu's
	// -netdev socket; the other end goes to the other VM.
	Net *os.File
	// MAC is eth0's address when Net is set.
	MAC string
	// BIOS is the firmware; qemu's default (SeaBIOS) when empty.
	BIOS string
	// Console, when set, also receives the serial console as it comes.
	Console io.Writer
}

// baseCmdline is what every guest kernel gets: the console on the first
// serial port, quiet, reboot (and so, with -no-reboot, exit) on panic,
// and the probing a test VM does not need turned off.
var baseCmdline = []string{
	"console=ttyS0", "quiet", "panic=-1", "oops=panic", "rdinit=/init",
	"i8042.noaux", "i8042.nomux", "i8042.nopnp", "i8042.dumbkbd",
	"tsc=reliable", "no_timer_check", "random.trust_cpu=on", "mitigations=off",
}

// Args returns qemu's arguments for c.
func (c Config) Args() []string {
	accel := c.Accel
	if accel == TCG && c.CPUs > 1 {
		accel += ",thread=multi"
	}
	cpu := "max"
	if c.Accel == KVM {
		cpu = "host"
	}
	args := []string{
		"-nodefaults", "-no-user-config", "-nographic", "-no-reboot",
		"-machine", "q35", "-accel", accel, "-cpu", cpu,
		"-smp", strconv.Itoa(c.CPUs), "-m", strconv.Itoa(c.MemoryMB),
		"-kernel", c.Kernel, "-initrd", c.Initrd,
		"-append", strings.Join(append(append([]string(nil), baseCmdline...), c.Cmdline...), " "),
		"-chardev", "socket,id=console,path=" + filepath.Join(c.Dir, "console.sock"),
		"-serial", "chardev:console",
		"-device", "virtio-serial-pci,id=vser",
		"-chardev", "socket,id=output,path=" + filepath.Join(c.Dir, "output.sock"),
		"-device", "virtserialport,bus=vser.0,chardev=output,name=" + proto.OutputPort,
		"-chardev", "socket,id=status,path=" + filepath.Join(c.Dir, "status.sock"),
		"-device", "virtserialport,bus=vser.0,chardev=status,name=" + proto.StatusPort,
		"-device", "virtio-rng-pci",
	}
	if c.BIOS != "" {
		args = append(args, "-bios", c.BIOS)
	}
	if c.Net != nil {
		// ExtraFiles[0] is fd 3 in qemu.
		args = append(args, "-netdev", "socket,id=net0,fd=3",
			"-device", "virtio-net-pci,netdev=net0,romfile=,mac="+c.MAC)
	}
	return args
}

// Machine is a running VM.
type Machine struct {
	// Output and Status are the guest's two ports; they end when qemu
	// exits.
	Output io.Reader
	Status io.Reader
	// ConsoleLog is the file holding the serial console.
	ConsoleLog string
	// Started is when qemu was started.
	Started time.Time

	ctx     context.Context
	cmd     *exec.Cmd
	killed  atomic.Bool // by ctx
	stderr  *tailBuffer
	conns   []net.Conn
	exited  chan struct{}
	waitErr error
	console chan struct{}
}

// Start starts the VM. It is killed when ctx ends.
func Start(ctx context.Context, c Config) (*Machine, error) {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	names := []string{"console", "output", "status"}
	var lns []*net.UnixListener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for _, n := range names {
		p := filepath.Join(c.Dir, n+".sock")
		os.Remove(p)
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", n, err)
		}
		lns = append(lns, l)
	}
	m := &Machine{
		ctx:        ctx,
		ConsoleLog: filepath.Join(c.Dir, "console.log"),
		stderr:     &tailBuffer{max: 8 << 10},
		exited:     make(chan struct{}),
		console:    make(chan struct{}),
	}
	log, err := os.Create(m.ConsoleLog)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, c.QEMU, c.Args()...)
	cmd.Stdout, cmd.Stderr = m.stderr, m.stderr
	if c.Net != nil {
		cmd.ExtraFiles = []*os.File{c.Net}
	}
	cmd.WaitDelay = 5 * time.Second
	// The VM dies with the harness: a harness killed or cut off from its
	// terminal must not leave qemu behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		m.killed.Store(true)
		return cmd.Process.Kill()
	}
	m.Started = time.Now()
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("start %s: %w", c.QEMU, err)
	}
	m.cmd = cmd
	go func() { m.waitErr = cmd.Wait(); close(m.exited) }()

	// qemu connects to each socket while it starts; if it dies first,
	// stop waiting.
	type accepted struct {
		i    int
		conn net.Conn
		err  error
	}
	ch := make(chan accepted, len(lns))
	for i, l := range lns {
		go func() {
			conn, err := l.Accept()
			ch <- accepted{i, conn, err}
		}()
	}
	m.conns = make([]net.Conn, len(lns))
	for range lns {
		var a accepted
		select {
		case a = <-ch:
		case <-m.exited:
			log.Close()
			m.closeConns()
			return nil, fmt.Errorf("start VM: qemu exited: %v: %s", m.waitErr, strings.TrimSpace(m.stderr.String()))
		}
		if a.err != nil {
			log.Close()
			m.closeConns()
			if m.cmd.Process != nil {
				m.cmd.Process.Kill()
			}
			<-m.exited
			return nil, fmt.Errorf("start VM: %s socket: %w", names[a.i], a.err)
		}
		m.conns[a.i] = a.conn
	}
	m.Output, m.Status = m.conns[1], m.conns[2]
	go func() {
		defer close(m.console)
		defer log.Close()
		var w io.Writer = log
		if c.Console != nil {
			w = io.MultiWriter(log, c.Console)
		}
		io.Copy(w, m.conns[0])
	}()
	return m, nil
}

// Close closes the ports; call it after Wait, once Output and Status are
// read.
func (m *Machine) Close() { m.closeConns() }

func (m *Machine) closeConns() {
	for _, c := range m.conns {
		if c != nil {
			c.Close()
		}
	}
}

// Wait waits for qemu to exit and for the console log to be complete. It
// returns ErrDeadline if the VM was killed because its context's deadline
// passed (another error if the context was canceled), and an error holding
// the end of qemu's own output if qemu failed. Output and Status still
// hold what the guest sent last, up to their end.
func (m *Machine) Wait() error {
	<-m.exited
	<-m.console
	if m.killed.Load() {
		if errors.Is(m.ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%w; console log: %s", ErrDeadline, m.ConsoleLog)
		}
		return fmt.Errorf("VM killed: %w; console log: %s", m.ctx.Err(), m.ConsoleLog)
	}
	if m.waitErr != nil {
		return fmt.Errorf("qemu: %w: %s", m.waitErr, strings.TrimSpace(m.stderr.String()))
	}
	return nil
}

// Stderr is the end of qemu's own output.
func (m *Machine) Stderr() string { return m.stderr.String() }

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append([]byte(nil), t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
