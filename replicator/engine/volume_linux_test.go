package engine

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// alignedBuf returns n bytes at an address that is a multiple of 4096.
func alignedBuf(n int) []byte {
	b := make([]byte, n+4096)
	skip := (4096 - int(uintptr(unsafe.Pointer(&b[0]))%4096)) % 4096
	return b[skip : skip+n]
}

// newDataFile returns a DataFile over a new 1 MiB file in the test's
// directory. The directory is on a file system with direct I/O here
// (ext4); a machine without it fails the test rather than skipping it.
func newDataFile(t *testing.T) DataFile {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(1 << 20); err != nil {
		t.Fatal(err)
	}
	d, err := NewDataFile(f)
	if err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if !d.Direct() {
		t.Fatalf("%s: no direct I/O on the test's file system", f.Name())
	}
	return d
}

// fdFlags returns the open flags of f's descriptor.
func fdFlags(t *testing.T, f *os.File) int {
	t.Helper()
	fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	return fl
}

// TestDataFileDirect checks which descriptor each write takes and that
// reads through the page cache see every write, direct or not, in the
// order they were made: an aligned write goes around the page cache
// over bytes an unaligned one left in it, and the other way round.
func TestDataFileDirect(t *testing.T) {
	d := newDataFile(t)
	if fdFlags(t, d.direct)&unix.O_DIRECT == 0 || fdFlags(t, d.File)&unix.O_DIRECT != 0 {
		t.Fatal("O_DIRECT must be set on the direct descriptor only")
	}
	block := alignedBuf(8192)
	for i := range block {
		block[i] = byte(i*7 + 1)
	}
	cases := []struct {
		name   string
		p      []byte
		off    int64
		direct bool
	}{
		{"aligned", block[:4096], 4096, true},
		{"aligned 8 KiB", block, 65536, true},
		{"unaligned offset", block[:4096], 4096 + 512 + 1, false},
		{"unaligned length", block[:100], 8192, false},
		{"unaligned buffer", block[1:4097], 12288, false},
		{"aligned over cached bytes", block[4096:], 8192, true},
		{"empty", block[:0], 0, false},
	}
	want := make([]byte, 1<<20)
	for i, c := range cases {
		if got := d.pick(c.p, c.off) == d.direct; got != c.direct {
			t.Errorf("%s: direct %v, want %v", c.name, got, c.direct)
		}
		var err error
		if i%2 == 0 {
			_, err = d.WriteAt(c.p, c.off)
		} else {
			_, err = d.WriteAtFUA(c.p, c.off)
		}
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		copy(want[c.off:], c.p)
		got := make([]byte, len(want))
		if _, err := d.ReadAt(got, 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("after %s: the file differs from what was written", c.name)
		}
	}
	if err := d.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestDataFileLiteral checks that a DataFile literal writes through the
// page cache, FUA writes included.
func TestDataFileLiteral(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	d := DataFile{File: f}
	defer d.Close()
	b := alignedBuf(4096)
	b[0] = 9
	if d.Direct() || d.pick(b, 0) != f {
		t.Fatal("a literal DataFile must not write around the page cache")
	}
	if _, err := d.WriteAtFUA(b, 4096); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 1)
	if _, err := f.ReadAt(got, 4096); err != nil || got[0] != 9 {
		t.Fatalf("read back %v, %v", got, err)
	}
}
