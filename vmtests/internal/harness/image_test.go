package harness

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/vmtests/internal/kernel"
	"github.com/vigil-ha/vigil/vmtests/internal/proto"
	"github.com/vigil-ha/vigil/vmtests/internal/testenv"
)

// fakeKernel makes a kernel whose modules directory holds a modules.dep,
// a modules.builtin and stand-in module files.
func fakeKernel(t *testing.T) *kernel.Kernel {
	t.Helper()
	dir := t.TempDir()
	k := &kernel.Kernel{Package: "linux-image-6.1.0-0-test", Release: "6.1.0-0-test", Image: filepath.Join(dir, "vmlinuz"), ModulesDir: filepath.Join(dir, "modules")}
	dep := `kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/char/hw_random/virtio-rng.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/veth.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/llc/llc.ko:
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
`
	files := map[string]string{"modules.dep": dep, "modules.builtin": "kernel/drivers/tty/serial/8250/8250.ko\n"}
	for _, l := range strings.Split(strings.TrimSpace(dep), "\n") {
		f, _, _ := strings.Cut(l, ":")
		files[f] = "module " + f
	}
	for name, text := range files {
		p := filepath.Join(k.ModulesDir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// TestImageContents builds the initramfs of a package as a suite does and
// unpacks it with GNU cpio: init, busybox and its applets, the tool and
// its libraries, the modules in load order, the test binary, the
// package's testdata and the manifest are where the guest expects them.
func TestImageContents(t *testing.T) {
	cpio := testenv.RequireTool(t, "cpio")
	testenv.RequireTool(t, "busybox")
	k := fakeKernel(t)
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "pkg", "testdata"), 0o755)
	os.WriteFile(filepath.Join(root, "pkg", "testdata", "in.txt"), []byte("fixture"), 0o644)
	e := &Env{Root: root}
	initFile := filepath.Join(root, "init")
	os.WriteFile(initFile, []byte("#!init"), 0o755)
	testBin := filepath.Join(root, "pkg.test")
	os.WriteFile(testBin, []byte("test binary"), 0o755)

	pkg := Package{Path: "./pkg", Modules: []string{"bridge", "veth"}, Tools: []string{"ip"}}
	run := proto.Run{Name: "./pkg", Path: "/vigil/bin/0.test", Dir: "/vigil/src/pkg"}
	img, err := e.packageImage(k, initFile, []Package{pkg}, 2, func(int) []proto.Run { return []proto.Run{run} })
	if err != nil {
		t.Fatal(err)
	}
	img.files = mergeMaps(img.files, map[string]string{"/vigil/bin/0.test": testBin})
	archive := filepath.Join(t.TempDir(), "initrd")
	size, err := writeImage(k, img, archive)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(archive); err != nil || fi.Size() != size {
		t.Fatalf("archive size %v, reported %d", fi, size)
	}

	out := t.TempDir()
	cmd := exec.Command(cpio, "-idm", "--quiet", "-F", archive)
	cmd.Dir = out
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -idm: %v: %s", err, b)
	}
	read := func(p string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(out, p))
		if err != nil {
			t.Errorf("%s: %v", p, err)
		}
		return string(b)
	}
	if read("init") != "#!init" || read("vigil/bin/0.test") != "test binary" || read("vigil/src/pkg/testdata/in.txt") != "fixture" {
		t.Error("init, the test binary or the testdata differ")
	}
	if fi, err := os.Stat(filepath.Join(out, "init")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("init mode: %v %v", fi, err)
	}
	// busybox's sh, through the /bin link as on the host.
	sh, err := filepath.EvalSymlinks(filepath.Join(out, "bin", "sh"))
	if err != nil || !strings.HasSuffix(sh, "busybox") {
		t.Errorf("/bin/sh -> %s, %v; want busybox", sh, err)
	}
	// ip is the host's, not busybox's, and its loader is there.
	ip, err := lookTool("ip")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(out, ip)); err != nil {
		t.Errorf("tool %s: %v", ip, err)
	} else if fi.Mode()&os.ModeSymlink != 0 {
		if target, _ := os.Readlink(filepath.Join(out, ip)); strings.Contains(target, "busybox") {
			t.Errorf("%s is busybox's", ip)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "lib64", "ld-linux-x86-64.so.2")); err != nil {
		t.Errorf("the dynamic loader: %v", err)
	}
	for _, m := range []string{"virtio_pci.ko", "virtio_console.ko", "virtio-rng.ko", "veth.ko", "virtio_net.ko", "bridge.ko", "stp.ko", "llc.ko"} {
		matches, _ := filepath.Glob(filepath.Join(out, "lib", "modules", k.Release, "kernel", "*", "*", m))
		more, _ := filepath.Glob(filepath.Join(out, "lib", "modules", k.Release, "kernel", "*", "*", "*", m))
		if len(matches)+len(more) != 1 {
			t.Errorf("module %s: %v %v", m, matches, more)
		}
	}
	var m proto.Manifest
	if err := json.Unmarshal([]byte(read("vigil/manifest-1.json")), &m); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m.Modules {
		names = append(names, filepath.Base(p))
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("manifest names %s: %v", p, err)
		}
	}
	if !slices.Contains(names, "virtio_net.ko") {
		t.Errorf("two VMs without virtio_net: %v", names)
	}
	for _, pair := range [][2]string{{"llc.ko", "stp.ko"}, {"stp.ko", "bridge.ko"}, {"virtio.ko", "virtio_pci.ko"}} {
		if slices.Index(names, pair[0]) > slices.Index(names, pair[1]) {
			t.Errorf("%s loads after %s: %v", pair[0], pair[1], names)
		}
	}
	if !slices.Contains(m.Env, "VIGIL_VM_INDEX=1") || !slices.Contains(m.Env, "VIGIL_VM_COUNT=2") {
		t.Errorf("manifest env %v", m.Env)
	}
	if len(m.Links) != 1 || m.Links[0].Address != "198.18.250.2/24" || len(m.Runs) != 1 {
		t.Errorf("manifest links %v, runs %v", m.Links, m.Runs)
	}
}
