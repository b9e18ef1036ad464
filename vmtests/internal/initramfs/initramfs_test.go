package initramfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-ha/vigil/vmtests/internal/cpio"
)

// entry is an archive member as the tests compare it.
type entry struct {
	name, kind, data string
}

func read(t *testing.T, b []byte) []entry {
	t.Helper()
	r := cpio.NewReader(bytes.NewReader(b))
	var out []entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(r)
		kind := "file"
		switch e.Type {
		case cpio.TypeDir:
			kind = "dir"
		case cpio.TypeSymlink:
			kind, data = "link", []byte(e.Linkname)
		}
		out = append(out, entry{e.Name, kind, string(data)})
	}
}

// checkParentsFirst fails if an entry comes before its directory.
func checkParentsFirst(t *testing.T, es []entry) {
	t.Helper()
	seen := map[string]string{".": "dir"}
	for _, e := range es {
		if dir := path.Dir(e.name); seen[dir] != "dir" {
			t.Errorf("%s comes before its directory %s", e.name, dir)
		}
		seen[e.name] = e.kind
	}
}

func TestBuilderMakesParentsAndFollowsLinks(t *testing.T) {
	var buf bytes.Buffer
	b := New(&buf)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(b.Symlink("/lib", "usr/lib"))
	must(b.Bytes("/lib/modules/6.1/veth.ko", 0o644, []byte("ko")))
	must(b.Symlink("/usr/lib/alias", "/usr/lib/modules"))
	must(b.Bytes("/usr/lib/alias/extra", 0o600, []byte("x")))
	must(b.Dir("/vigil/src/pkg", 0o755))
	must(b.Symlink("/lib", "usr/lib")) // the same link again is fine
	if err := b.Bytes("/lib/modules/6.1/veth.ko", 0o644, nil); !errors.Is(err, ErrExists) {
		t.Errorf("second file at the same path: %v, want ErrExists", err)
	}
	if err := b.Symlink("/lib", "elsewhere"); !errors.Is(err, ErrExists) {
		t.Errorf("conflicting link: %v, want ErrExists", err)
	}
	if !b.Has("/lib/modules/6.1/veth.ko") || !b.Has("/usr/lib/modules/extra") || b.Has("/nope") {
		t.Error("Has disagrees with what was added")
	}
	must(b.Close())
	got := read(t, buf.Bytes())
	checkParentsFirst(t, got)
	want := []entry{
		{"lib", "link", "usr/lib"},
		{"usr", "dir", ""},
		{"usr/lib", "dir", ""},
		{"usr/lib/modules", "dir", ""},
		{"usr/lib/modules/6.1", "dir", ""},
		{"usr/lib/modules/6.1/veth.ko", "file", "ko"},
		{"usr/lib/alias", "link", "/usr/lib/modules"},
		{"usr/lib/modules/extra", "file", "x"},
		{"vigil", "dir", ""},
		{"vigil/src", "dir", ""},
		{"vigil/src/pkg", "dir", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("archive:\n%v\nwant\n%v", got, want)
	}
}

// TestHostPathReproducesLinks builds a fake host tree shaped like merged-
// /usr Debian and copies a library path from it.
func TestHostPathReproducesLinks(t *testing.T) {
	root := t.TempDir()
	mk := func(p, data string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.WriteFile(full, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(p, target string) {
		full := filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(full), 0o755)
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3", "foo")
	ln("lib", "usr/lib")
	ln("usr/lib/x86_64-linux-gnu/libfoo.so.1", "libfoo.so.1.2.3")
	ln("lib64", "usr/lib64")
	ln("usr/lib64/ld.so", "../lib/x86_64-linux-gnu/libfoo.so.1") // relative, through another link

	var buf bytes.Buffer
	b := New(&buf)
	b.SetHostRoot(root)
	got, err := b.HostPath("/lib/x86_64-linux-gnu/libfoo.so.1")
	if err != nil {
		t.Fatal(err)
	}
	if got != "/usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3" {
		t.Errorf("HostPath = %s", got)
	}
	if got, err := b.HostPath("/lib64/ld.so"); err != nil || got != "/usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3" {
		t.Errorf("HostPath(/lib64/ld.so) = %s, %v", got, err)
	}
	if _, err := b.HostPath("/lib/x86_64-linux-gnu"); err == nil {
		t.Error("HostPath of a directory succeeded")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	es := read(t, buf.Bytes())
	checkParentsFirst(t, es)
	var names []string
	for _, e := range es {
		names = append(names, e.name+"("+e.kind+")")
	}
	want := "lib(link) usr(dir) usr/lib(dir) usr/lib/x86_64-linux-gnu(dir) usr/lib/x86_64-linux-gnu/libfoo.so.1(link) " +
		"usr/lib/x86_64-linux-gnu/libfoo.so.1.2.3(file) lib64(link) usr/lib64(dir) usr/lib64/ld.so(link)"
	if strings.Join(names, " ") != want {
		t.Errorf("archive: %s\nwant     %s", strings.Join(names, " "), want)
	}
}

// TestLibraries resolves a real dynamic executable of the host: /bin/sh
// on Debian is dash, linked against libc.
func TestLibraries(t *testing.T) {
	libs, err := Libraries("/", "/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	var interp, libc bool
	for _, l := range libs {
		interp = interp || strings.Contains(l, "ld-linux")
		libc = libc || path.Base(l) == "libc.so.6"
	}
	if !interp || !libc {
		t.Errorf("Libraries(/bin/sh) = %v: want the loader and libc.so.6", libs)
	}
	if _, err := Libraries("/", "/nonexistent"); err == nil {
		t.Error("Libraries of a missing file succeeded")
	}
}

func TestTree(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "a", "b"), 0o755)
	os.WriteFile(filepath.Join(src, "a", "b", "f.txt"), []byte("data"), 0o644)
	os.Symlink("b/f.txt", filepath.Join(src, "a", "l"))
	var buf bytes.Buffer
	b := New(&buf)
	if err := b.Tree("/vigil/src/x/testdata", src); err != nil {
		t.Fatal(err)
	}
	b.Close()
	es := read(t, buf.Bytes())
	checkParentsFirst(t, es)
	if !slices.Contains(es, entry{"vigil/src/x/testdata/a/b/f.txt", "file", "data"}) ||
		!slices.Contains(es, entry{"vigil/src/x/testdata/a/l", "link", "b/f.txt"}) {
		t.Errorf("Tree gave %v", es)
	}
}
