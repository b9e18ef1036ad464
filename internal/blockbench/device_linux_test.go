package blockbench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// directDir returns a directory on a file system with O_DIRECT: the test's
// temporary directory, or one under /var/tmp when TMPDIR is a tmpfs
// without it.
func directDir(t *testing.T) string {
	t.Helper()
	for _, parent := range []string{"", "/var/tmp"} {
		var dir string
		if parent == "" {
			dir = t.TempDir()
		} else {
			d, err := os.MkdirTemp(parent, "blockbench-test.")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(d) })
			dir = d
		}
		probe := filepath.Join(dir, "probe")
		f, err := os.OpenFile(probe, os.O_RDWR|os.O_CREATE|unix.O_DIRECT, 0o600)
		if err == nil {
			f.Close()
			os.Remove(probe)
			return dir
		}
	}
	t.Fatal("neither TMPDIR nor /var/tmp supports O_DIRECT")
	return ""
}

func newFile(t *testing.T, dir string, size int64) string {
	t.Helper()
	p := filepath.Join(dir, "dev")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return p
}

func TestDeviceWritesAndWorkloads(t *testing.T) {
	dir := directDir(t)
	path := newFile(t, dir, 4<<20+1000) // rounded down to 4 MiB
	d, err := OpenDevice(path)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Size() != 4<<20 || d.Path() != path {
		t.Fatalf("Size %d Path %q", d.Size(), d.Path())
	}
	ctx := context.Background()
	if err := Fill(ctx, d, FillOptions{Region: Region{Size: d.Size()}, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 1<<20)
	for off := int64(0); off < 4<<20; off += 1 << 20 {
		FillBlock(3, off, want)
		if !bytes.Equal(got[off:off+1<<20], want) {
			t.Fatalf("block at %d differs from what Fill wrote", off)
		}
	}
	if _, err := Sequential(ctx, d, SeqOptions{Region: Region{Size: 2 << 20}, BlockSize: 256 << 10, QueueDepth: 4}); err != nil {
		t.Fatal(err)
	}
	res, err := RandomSync(ctx, d, RandOptions{Region: Region{Size: d.Size()}, Writes: 50})
	if err != nil {
		t.Fatal(err)
	}
	if res.Writes != 50 || res.Latency.Min() <= 0 {
		t.Fatalf("%d writes, min latency %v", res.Writes, res.Latency.Min())
	}
}

func TestDeviceRefusesBadWrites(t *testing.T) {
	d, err := OpenDevice(newFile(t, directDir(t), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	buf := AlignedBuffer(8192)
	for name, c := range map[string]struct {
		p   []byte
		off int64
	}{
		"unaligned offset":  {buf[:4096], 512},
		"unaligned length":  {buf[:1000], 0},
		"unaligned address": {buf[512 : 512+4096], 0},
	} {
		if err := d.WriteAt(c.p, c.off, false); !errors.Is(err, ErrUnaligned) {
			t.Errorf("%s: err = %v, want ErrUnaligned", name, err)
		}
	}
	for _, off := range []int64{1 << 20, 1<<20 - 4096, -4096} {
		if err := d.WriteAt(buf, off, true); err == nil || errors.Is(err, ErrUnaligned) {
			t.Errorf("write of 8 KiB at %d in a 1 MiB device: err = %v, want out of range", off, err)
		}
	}
	if err := d.WriteAt(buf, 1<<20-8192, true); err != nil {
		t.Errorf("last 8 KiB: %v", err)
	}
	if err := d.Flush(); err != nil {
		t.Error(err)
	}
}

func TestOpenDeviceErrors(t *testing.T) {
	dir := directDir(t)
	if _, err := OpenDevice(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := OpenDevice(dir); err == nil || !strings.Contains(err.Error(), "neither a regular file nor a block device") {
		t.Errorf("directory: %v", err)
	}
	if _, err := OpenDevice("/dev/null"); err == nil || !strings.Contains(err.Error(), "character device") {
		t.Errorf("/dev/null: %v", err)
	}
	if _, err := OpenDevice(newFile(t, dir, 100)); err == nil || !strings.Contains(err.Error(), "smaller than") {
		t.Errorf("a 100-byte file: %v", err)
	}
}
