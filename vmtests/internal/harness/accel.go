package harness

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
	"github.com/vigil-ha/vigil/vmtests/internal/proto"
	"github.com/vigil-ha/vigil/vmtests/internal/qemu"
)

// probeTimeout bounds the KVM probe's boot; a kernel under working KVM
// reaches init in about a second.
const probeTimeout = 10 * time.Second

// Accel is the accelerator to use and why.
type Accel struct {
	Name string
	// Note says why, when it is not KVM after a probe.
	Note string
	// Probed is set when this call ran the probe (rather than reading
	// its cached verdict).
	Probed bool
}

// ChooseAccel picks KVM when it works, else TCG. /dev/kvm opening is not
// enough (nested KVM can open it and still not run a Linux guest), so the
// probe boots k under KVM with an initramfs that only reports ready; the
// verdict is cached per host boot, qemu and kernel. EnvAccel forces a
// choice.
func (e *Env) ChooseAccel(ctx context.Context, k *kernel.Kernel, init string) (Accel, error) {
	switch v := os.Getenv(EnvAccel); v {
	case "":
	case qemu.KVM, qemu.TCG:
		return Accel{Name: v, Note: "forced by " + EnvAccel + "=" + v}, nil
	default:
		return Accel{}, fmt.Errorf("%s=%q: want kvm or tcg", EnvAccel, v)
	}
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return Accel{Name: qemu.TCG, Note: fmt.Sprintf("KVM unusable: %v; falling back to TCG (slower)", err)}, nil
	}
	f.Close()

	key := probeKey(k)
	verdictFile := filepath.Join(e.Cache, "accel-probe")
	if b, err := os.ReadFile(verdictFile); err == nil {
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) >= 2 && lines[0] == key {
			name, note, _ := strings.Cut(lines[1], " ")
			if name == qemu.KVM || name == qemu.TCG {
				return Accel{Name: name, Note: note}, nil
			}
		}
	}
	a := Accel{Name: qemu.KVM, Probed: true}
	if err := e.probeKVM(ctx, k, init); err != nil {
		a = Accel{Name: qemu.TCG, Note: "KVM unusable: " + err.Error() + "; falling back to TCG (slower)", Probed: true}
	}
	if ctx.Err() != nil {
		return Accel{}, ctx.Err()
	}
	os.WriteFile(verdictFile, []byte(key+"\n"+a.Name+" "+a.Note+"\n"), 0o644)
	return a, nil
}

// probeKey names what the probe's verdict depends on.
func probeKey(k *kernel.Kernel) string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	qemuPath, _ := exec.LookPath("qemu-system-x86_64")
	var qemuTime string
	if fi, err := os.Stat(qemuPath); err == nil {
		qemuTime = fi.ModTime().UTC().Format(time.RFC3339)
	}
	return strings.Join([]string{strings.TrimSpace(string(boot)), qemuPath, qemuTime, k.Package}, " ")
}

func (e *Env) probeKVM(ctx context.Context, k *kernel.Kernel, init string) error {
	dir, err := os.MkdirTemp("", "vigil-vm-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	mods, guestMods, err := moduleFiles(k, baseModules)
	if err != nil {
		return err
	}
	img := &image{
		init:      init,
		modules:   mods,
		manifests: map[string]any{proto.ManifestPath: proto.Manifest{Modules: guestMods, Hostname: "probe"}},
	}
	initrd := filepath.Join(dir, "initrd")
	if _, err := writeImage(k, img, initrd); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	res := boot(ctx, bootConfig{kernel: k, initrd: initrd, accel: qemu.KVM, manifests: []string{proto.ManifestPath}, memoryMB: 256, dir: dir}, nopSink{})
	r := res[0]
	switch {
	case r.Ready:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("a guest under KVM did not reach its init within %v (nested KVM?)", probeTimeout)
	default:
		msg, _, _ := strings.Cut(fmt.Sprint(r.Err), "\n")
		return fmt.Errorf("a guest under KVM failed: %s", msg)
	}
}

type nopSink struct{}

func (nopSink) output(int, int, byte, []byte)     {}
func (nopSink) endRun(int, int)                   {}
func (nopSink) event(int, proto.Event, time.Time) {}
