package kmod

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// A made-up modules.dep in the kernel's format: paths relative to the
// modules directory, direct dependencies after the colon.
const depText = `kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko
kernel/net/802/stp.ko: kernel/net/llc/llc.ko
kernel/net/llc/llc.ko:
kernel/drivers/net/veth.ko:
kernel/drivers/char/virtio_console.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_legacy_dev.ko kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/virtio/virtio_ring.ko:
kernel/net/sched/sch-netem.ko:
kernel/x/a.ko: kernel/x/b.ko
kernel/x/b.ko: kernel/x/a.ko
kernel/x/broken.ko: kernel/x/missing.ko
`

const builtinText = `kernel/net/sched/sch_fq_codel.ko
kernel/drivers/tty/serial/8250/8250.ko
`

func index(t *testing.T) *Index {
	t.Helper()
	ix, err := Parse(strings.NewReader(depText), strings.NewReader(builtinText))
	if err != nil {
		t.Fatal(err)
	}
	return ix
}

func TestResolveOrder(t *testing.T) {
	got, err := index(t).Resolve("virtio_pci", "virtio_console", "bridge", "veth", "sch_fq_codel", "sch-netem")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"kernel/drivers/virtio/virtio_pci_legacy_dev.ko",
		"kernel/drivers/virtio/virtio_pci_modern_dev.ko",
		"kernel/drivers/virtio/virtio.ko",
		"kernel/drivers/virtio/virtio_ring.ko",
		"kernel/drivers/virtio/virtio_pci.ko",
		"kernel/drivers/char/virtio_console.ko", // its deps already loaded
		"kernel/net/llc/llc.ko",
		"kernel/net/802/stp.ko",
		"kernel/net/bridge/bridge.ko",
		"kernel/drivers/net/veth.ko",
		// sch_fq_codel is built in: no file
		"kernel/net/sched/sch-netem.ko", // found by its canonical name
	}
	if !slices.Equal(got, want) {
		t.Errorf("Resolve =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every dependency comes before its user.
	pos := map[string]int{}
	for i, f := range got {
		pos[f] = i
	}
	for _, f := range got {
		for _, d := range index(t).deps[f] {
			if pos[d] > pos[f] {
				t.Errorf("%s loads before its dependency %s", f, d)
			}
		}
	}
}

func TestResolveErrors(t *testing.T) {
	ix := index(t)
	if _, err := ix.Resolve("nbd"); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown module: %v, want ErrUnknown", err)
	}
	if _, err := ix.Resolve("broken"); !errors.Is(err, ErrUnknown) || !strings.Contains(err.Error(), "missing.ko") {
		t.Errorf("missing dependency: %v", err)
	}
	if _, err := ix.Resolve("a"); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: %v", err)
	}
	if !ix.Builtin("8250") || ix.Builtin("veth") {
		t.Error("Builtin disagrees with modules.builtin")
	}
}

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"kernel/net/sched/sch_netem.ko":    "sch_netem",
		"kernel/net/sched/sch-netem.ko.xz": "sch_netem",
		"sch-netem":                        "sch_netem",
		"veth":                             "veth",
	} {
		if got := Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRejectsGarbage(t *testing.T) {
	if _, err := Parse(strings.NewReader("no colon here\n"), strings.NewReader("")); err == nil {
		t.Error("Parse accepted a line without a colon")
	}
}

// TestGenerate writes modules whose .modinfo sections name their
// dependencies, as a kernel package ships them (without modules.dep), and
// checks that Load writes the modules.dep and resolves through it.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	for rel, deps := range map[string]string{
		"kernel/net/llc/llc.ko":         "",
		"kernel/net/802/stp.ko":         "llc",
		"kernel/net/bridge/bridge.ko":   "stp,llc",
		"kernel/net/sched/sch_netem.ko": "",
	} {
		p := filepath.Join(dir, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		info := "license=GPL\x00depends=" + deps + "\x00name=" + Name(rel) + "\x00"
		if err := os.WriteFile(p, elfWithModinfo(info), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte("kernel/drivers/tty/serial/8250/8250.ko\n"), 0o644)
	ix, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ix.Resolve("bridge", "sch_netem")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel/net/llc/llc.ko", "kernel/net/802/stp.ko", "kernel/net/bridge/bridge.ko", "kernel/net/sched/sch_netem.ko"}
	if !slices.Equal(got, want) {
		t.Errorf("Resolve = %v, want %v", got, want)
	}
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil || !strings.Contains(string(dep), "kernel/net/bridge/bridge.ko: kernel/net/802/stp.ko kernel/net/llc/llc.ko\n") {
		t.Errorf("modules.dep = %q, %v", dep, err)
	}
}

func TestParseModinfoDepends(t *testing.T) {
	for in, want := range map[string][]string{
		"a=b\x00depends=x,y_z\x00c=d\x00": {"x", "y_z"},
		"depends=\x00":                    nil,
		"name=veth\x00":                   nil,
	} {
		if got := ParseModinfoDepends([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("ParseModinfoDepends(%q) = %q, want %q", in, got, want)
		}
	}
}

// elfWithModinfo returns a minimal ELF64 relocatable object whose only
// section besides the section names is .modinfo holding info.
func elfWithModinfo(info string) []byte {
	le := binary.LittleEndian
	shstr := "\x00.modinfo\x00.shstrtab\x00"
	infoOff := 64
	strOff := infoOff + len(info)
	shOff := (strOff + len(shstr) + 7) &^ 7
	b := make([]byte, shOff+3*64)
	copy(b, "\x7fELF")
	b[4], b[5], b[6] = 2, 1, 1 // 64-bit, little-endian, version 1
	le.PutUint16(b[16:], 1)    // ET_REL
	le.PutUint16(b[18:], 62)   // EM_X86_64
	le.PutUint32(b[20:], 1)
	le.PutUint64(b[40:], uint64(shOff))
	le.PutUint16(b[52:], 64) // e_ehsize
	le.PutUint16(b[58:], 64) // e_shentsize
	le.PutUint16(b[60:], 3)  // e_shnum
	le.PutUint16(b[62:], 2)  // e_shstrndx
	copy(b[infoOff:], info)
	copy(b[strOff:], shstr)
	section := func(i int, name, typ uint32, off, size int) {
		h := b[shOff+64*i:]
		le.PutUint32(h[0:], name)
		le.PutUint32(h[4:], typ)
		le.PutUint64(h[24:], uint64(off))
		le.PutUint64(h[32:], uint64(size))
		le.PutUint64(h[48:], 1)
	}
	section(1, 1, 1, infoOff, len(info))  // .modinfo, SHT_PROGBITS
	section(2, 10, 3, strOff, len(shstr)) // .shstrtab, SHT_STRTAB
	return b
}

func TestElfWithModinfoIsReadable(t *testing.T) {
	p := filepath.Join(t.TempDir(), "m.ko")
	os.WriteFile(p, elfWithModinfo("depends=a,b\x00"), 0o644)
	got, err := modinfoDepends(p)
	if err != nil || !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("modinfoDepends = %v, %v", got, err)
	}
	if !bytes.HasPrefix(elfWithModinfo(""), []byte("\x7fELF")) {
		t.Fatal("no ELF magic")
	}
}
