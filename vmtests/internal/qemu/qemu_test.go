package qemu

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigil-ha/vigil/vmtests/internal/qemu/qemutest"
)

func TestMain(m *testing.M) {
	qemutest.MaybeFake()
	os.Exit(m.Run())
}

func TestArgs(t *testing.T) {
	c := Config{Accel: TCG, CPUs: 2, MemoryMB: 512, Kernel: "/k/vmlinuz", Initrd: "/i/initrd", Dir: "/d", Cmdline: []string{"vigil.manifest=/m.json"}}
	args := strings.Join(c.Args(), " ")
	for _, want := range []string{
		"-accel tcg,thread=multi", "-cpu max", "-smp 2", "-m 512", "-no-reboot", "-kernel /k/vmlinuz", "-initrd /i/initrd",
		"socket,id=console,path=/d/console.sock", "-serial chardev:console",
		"virtserialport,bus=vser.0,chardev=output,name=vigil.output",
		"virtserialport,bus=vser.0,chardev=status,name=vigil.status",
		"console=ttyS0", "panic=-1", "vigil.manifest=/m.json",
	} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %q:\n%s", want, args)
		}
	}
	if strings.Contains(args, "-netdev") {
		t.Error("a network device without Net")
	}
	c.Accel, c.Net, c.MAC = KVM, os.Stdin, "52:54:00:12:34:01"
	args = strings.Join(c.Args(), " ")
	for _, want := range []string{"-accel kvm ", "-cpu host", "-netdev socket,id=net0,fd=3", "virtio-net-pci,netdev=net0,romfile=,mac=52:54:00:12:34:01"} {
		if !strings.Contains(args, want) {
			t.Errorf("KVM/net args lack %q:\n%s", want, args)
		}
	}
}

func fake(t *testing.T, script string) Config {
	t.Helper()
	t.Setenv(qemutest.EnvFake, script)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vigil-qemu-test-") // short: unix socket paths
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return Config{QEMU: exe, Accel: TCG, CPUs: 1, MemoryMB: 64, Kernel: "k", Initrd: "i", Dir: dir}
}

// TestDeadlineKillsAndKeepsConsole runs a VM that never ends: the
// deadline kills it, Wait says so, and the console log holds what the
// guest printed.
func TestDeadlineKillsAndKeepsConsole(t *testing.T) {
	c := fake(t, "hang")
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	m, err := Start(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Wait()
	m.Close()
	if !errors.Is(err, ErrDeadline) {
		t.Fatalf("Wait = %v, want ErrDeadline", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("killed after %v", d)
	}
	b, err := os.ReadFile(m.ConsoleLog)
	if err != nil || !strings.Contains(string(b), "fake: booting") {
		t.Errorf("console log %q, %v", b, err)
	}
}

func TestStartFails(t *testing.T) {
	c := fake(t, "fail")
	_, err := Start(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "fake failure") {
		t.Fatalf("Start = %v, want qemu's own message", err)
	}
}

func TestPortsEndWithQEMU(t *testing.T) {
	c := fake(t, "run")
	m, err := Start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	status, err := io.ReadAll(m.Status)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(); err != nil {
		t.Fatalf("Wait = %v", err)
	}
	m.Close()
	if !strings.HasPrefix(string(status), "ready 1500\nstart 0\n") || !strings.HasSuffix(string(status), "done\n") {
		t.Errorf("status port: %q", status)
	}
}
