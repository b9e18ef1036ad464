package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
	"github.com/vigil-ha/vigil/vmtests/internal/proto"
	"github.com/vigil-ha/vigil/vmtests/internal/qemu"
)

// sink receives what the VMs of a boot say, as it comes.
type sink interface {
	// output is a piece of a run's output; per VM, runs come in order.
	output(vm, run int, stream byte, p []byte)
	// endRun says run has no more output.
	endRun(vm, run int)
	// event is a status event of a VM.
	event(vm int, e proto.Event, at time.Time)
}

// bootConfig is one boot of one or more VMs from one initramfs.
type bootConfig struct {
	// qemu is the emulator; qemu.Config's default when empty.
	qemu   string
	kernel *kernel.Kernel
	initrd string
	accel  string
	// manifests are the guest paths of each VM's manifest.
	manifests []string
	memoryMB  int
	// dir holds one directory per VM (sockets, console log).
	dir string
	// console, when set, receives every VM's serial console.
	console io.Writer
}

// vmResult is what became of one VM.
type vmResult struct {
	// Boot is the time from starting qemu to the guest's ready event.
	Boot time.Duration
	// Uptime is the guest kernel's uptime at ready.
	Uptime time.Duration
	// Elapsed is the time from starting qemu to its exit.
	Elapsed time.Duration
	Ready   bool
	Done    bool
	// Exits holds each run's exit event.
	Exits map[int]proto.Event
	// Errors are the guest init's error events.
	Errors []string
	// Err is a failure of qemu, of the protocol, or the deadline.
	Err error
	// ConsoleLog is the serial console's file.
	ConsoleLog string
}

// qboot is a minimal firmware that boots a kernel faster than SeaBIOS
// (about 0.3 s under TCG); Debian's qemu-system-data ships it.
const qboot = "/usr/share/qemu/qboot.rom"

// firmware returns qboot if it is there, else "" (qemu's default).
func firmware() string {
	if fileExists(qboot) {
		return qboot
	}
	return ""
}

// cpusPerVM shares the host's CPUs among n VMs, at most 4 each.
func cpusPerVM(n int) int {
	return max(1, min(4, runtime.NumCPU()/n))
}

// boot runs the VMs of c until they power off or ctx ends, feeding s.
func boot(ctx context.Context, c bootConfig, s sink) []vmResult {
	n := len(c.manifests)
	results := make([]vmResult, n)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Two VMs: a socketpair joins their eth0s (qemu -netdev socket).
	var nets [2]*os.File
	if n > 2 {
		for i := range results {
			results[i].Err = fmt.Errorf("%d VMs: the harness joins two at most", n)
		}
		return results
	}
	if n == 2 {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			for i := range results {
				results[i].Err = fmt.Errorf("socketpair: %w", err)
			}
			return results
		}
		nets[0], nets[1] = os.NewFile(uintptr(fds[0]), "net0"), os.NewFile(uintptr(fds[1]), "net1")
		defer nets[0].Close()
		defer nets[1].Close()
	}
	var wg sync.WaitGroup
	for i := range n {
		cfg := qemu.Config{
			QEMU:     c.qemu,
			Accel:    c.accel,
			CPUs:     cpusPerVM(n),
			MemoryMB: c.memoryMB,
			Kernel:   c.kernel.Image,
			Initrd:   c.initrd,
			Cmdline:  []string{"vigil.manifest=" + c.manifests[i]},
			Dir:      fmt.Sprintf("%s/vm%d", c.dir, i),
			Console:  c.console,
			BIOS:     firmware(),
		}
		if n == 2 {
			cfg.Net = nets[i]
			cfg.MAC = fmt.Sprintf("52:54:00:12:34:%02x", i+1)
		}
		if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
			results[i].Err = err
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runVM(ctx, i, cfg, s)
			if results[i].Err != nil {
				// The others cannot succeed without this one.
				cancel()
			}
		}()
	}
	wg.Wait()
	return results
}

// runVM runs one VM to its end.
func runVM(ctx context.Context, i int, cfg qemu.Config, s sink) vmResult {
	r := vmResult{Exits: map[int]proto.Event{}}
	m, err := qemu.Start(ctx, cfg)
	if err != nil {
		r.Err = err
		return r
	}
	r.ConsoleLog = m.ConsoleLog
	var wg sync.WaitGroup
	var outErr, statusErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		cur := -1
		for {
			f, err := proto.ReadFrame(m.Output)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					outErr = fmt.Errorf("output port: %w", err)
				}
				break
			}
			for ; cur < f.Run; cur++ {
				if cur >= 0 {
					s.endRun(i, cur)
				}
			}
			if f.Run < cur {
				outErr = fmt.Errorf("output port: frame of run %d after run %d", f.Run, cur)
				break
			}
			s.output(i, f.Run, f.Stream, f.Data)
		}
		if cur >= 0 {
			s.endRun(i, cur)
		}
		// Unblock qemu should the guest keep writing.
		io.Copy(io.Discard, m.Output)
	}()
	go func() {
		defer wg.Done()
		sr := proto.NewStatusReader(m.Status)
		for {
			e, err := sr.Next()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					statusErr = err
				}
				break
			}
			at := time.Now()
			switch e.Kind {
			case proto.KindReady:
				r.Ready, r.Boot, r.Uptime = true, at.Sub(m.Started), e.Uptime
			case proto.KindExit:
				r.Exits[e.Run] = e
			case proto.KindError:
				r.Errors = append(r.Errors, e.Message)
			case proto.KindDone:
				r.Done = true
			}
			s.event(i, e, at)
		}
		io.Copy(io.Discard, m.Status)
	}()
	werr := m.Wait()
	wg.Wait()
	m.Close()
	r.Elapsed = time.Since(m.Started)
	r.Err = errors.Join(werr, outErr, statusErr)
	if r.Err == nil && !r.Done {
		r.Err = fmt.Errorf("the guest stopped before it was done (ready %v); console log: %s", r.Ready, r.ConsoleLog)
	}
	return r
}
