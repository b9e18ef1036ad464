//go:build linux && vmtest

package nbd

// The tests here need the kernel's nbd driver, which the host lacks: they
// are built with the tag vmtest only, and run in the VM suite "nbd"
// (make vmtest VMTEST_FLAGS=nbd), where a missing driver fails them.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vigil-ha/vigil/internal/testutil"
)

// vmTimeout bounds each kernel-facing step; generous, as the VM runs
// under TCG on a loaded machine.
const vmTimeout = 2 * time.Minute

func requireNBD(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	if _, err := os.Stat("/sys/module/nbd"); err != nil {
		t.Fatalf("no nbd driver in the VM (the suite loads nbd.ko): %v", err)
	}
}

func vmCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	t.Cleanup(cancel)
	return ctx
}

// backingFile makes a file of size bytes, filled by fill if not nil, and
// opens it as a FileDevice.
func backingFile(t *testing.T, size int64, fill func([]byte)) (*FileDevice, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "backing")
	b := make([]byte, size)
	if fill != nil {
		fill(b)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err := OpenFile(path, 4096)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, path
}

// expose exposes dev and closes it at the end of the test if the test did
// not.
func expose(t *testing.T, dev Device, opts Options) *Export {
	t.Helper()
	if opts.Server.Log == nil {
		opts.Server.Log = testLogger(t)
	}
	e, err := Expose(vmCtx(t), dev, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposed on %s", e.Path())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
		defer cancel()
		if err := e.Close(ctx); err != nil {
			t.Errorf("cleanup: close %s: %v", e.Path(), err)
		}
	})
	return e
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), vmTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

func mount(t *testing.T, dev, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "mount", "-t", "ext4", dev, dir)
}

func umount(t *testing.T, dir string) {
	t.Helper()
	unix.Sync()
	run(t, "umount", dir)
}

// inUse reports whether the kernel holds device index.
func inUse(t *testing.T, index int) bool {
	t.Helper()
	devs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		if d.Index == index {
			return d.InUse
		}
	}
	return false
}

// TestVMFilesystem makes an ext4 file system on an exported file, writes
// files, and closes the export; exported again, the file system checks
// clean and holds the files. The backing file, after the last close, is a
// clean file system too: every write reached it.
func TestVMFilesystem(t *testing.T) {
	requireNBD(t)
	dev, backing := backingFile(t, 128<<20, nil)
	e := expose(t, dev, Options{Index: AnyIndex, Backend: "vigil-test/fs"})
	run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", e.Path())
	mnt := filepath.Join(t.TempDir(), "mnt")
	mount(t, e.Path(), mnt)

	r := rand.New(rand.NewPCG(1, 2))
	sums := map[string][32]byte{}
	for i := range 40 {
		rel := filepath.Join(fmt.Sprintf("d%d", i%5), fmt.Sprintf("f%02d", i))
		data := make([]byte, r.IntN(2<<20)+1)
		for j := range data {
			data[j] = byte(r.Uint32())
		}
		p := filepath.Join(mnt, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		sums[rel] = sha256.Sum256(data)
	}
	umount(t, mnt)
	if err := e.Close(vmCtx(t)); err != nil {
		t.Fatalf("close: %v", err)
	}
	st := e.Stats()
	t.Logf("first export: %+v", st)
	if st.Writes == 0 || st.Flushes == 0 || st.Trims == 0 {
		t.Fatalf("the kernel sent no writes, flushes or trims (mke2fs discards): %+v", st)
	}
	if st.InFlight != 0 || st.Connections != 0 || st.Buffered != 0 {
		t.Fatalf("server not idle after Close: %+v", st)
	}
	select {
	case <-e.Done():
	default:
		t.Fatal("Done not closed after Close")
	}

	e2 := expose(t, dev, Options{Index: AnyIndex, Backend: "vigil-test/fs"})
	t.Log(run(t, "e2fsck", "-fn", e2.Path()))
	mount(t, e2.Path(), mnt)
	found := 0
	err := filepath.WalkDir(mnt, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == "lost+found" {
			return err
		}
		rel, _ := filepath.Rel(mnt, p)
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		want, ok := sums[rel]
		if !ok {
			return fmt.Errorf("unexpected file %s", rel)
		}
		if sha256.Sum256(data) != want {
			return fmt.Errorf("%s: contents differ", rel)
		}
		found++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found != len(sums) {
		t.Fatalf("%d files found, want %d", found, len(sums))
	}
	umount(t, mnt)
	if err := e2.Close(vmCtx(t)); err != nil {
		t.Fatalf("close: %v", err)
	}
	// What the exports wrote is in the backing file.
	t.Log(run(t, "e2fsck", "-fn", backing))
}

// alignedBuf returns a page-aligned buffer for O_DIRECT.
func alignedBuf(t *testing.T, n int) []byte {
	t.Helper()
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Munmap(b) })
	return b
}

// TestVMDirectIO reads and writes the block device with O_DIRECT,
// concurrently, and compares with the backing file: reads see its
// contents, writes (some with O_DSYNC, which the kernel sends as FUA) land
// in it, a discard punches it.
func TestVMDirectIO(t *testing.T) {
	requireNBD(t)
	const size = 32 << 20
	seed := rand.New(rand.NewPCG(3, 4))
	dev, backing := backingFile(t, size, func(b []byte) {
		for i := range b {
			b[i] = byte(seed.Uint32())
		}
	})
	model, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	e := expose(t, dev, Options{Index: AnyIndex, Connections: 4})
	fd, err := unix.Open(e.Path(), unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	dsync, err := unix.Open(e.Path(), unix.O_RDWR|unix.O_DIRECT|unix.O_DSYNC|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dsync)

	// Reads of the original contents.
	buf := alignedBuf(t, 1<<20)
	r := rand.New(rand.NewPCG(5, 6))
	for range 64 {
		n := (r.IntN(256) + 1) * 4096
		off := int64(r.IntN((size-n)/4096)) * 4096
		if got, err := unix.Pread(fd, buf[:n], off); err != nil || got != n {
			t.Fatalf("pread %d+%d: %d, %v", off, n, got, err)
		}
		if !bytes.Equal(buf[:n], model[off:off+int64(n)]) {
			t.Fatalf("read %d+%d differs from the backing file", off, n)
		}
	}

	// Concurrent writes, each writer in its own region, then reads back.
	const writers = 16
	region := size / writers
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := range writers {
		wbuf := alignedBuf(t, 256<<10)
		rbuf := alignedBuf(t, 256<<10)
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range 24 {
				n := (r.IntN(64) + 1) * 4096
				off := int64(w*region) + int64(r.IntN((region-n)/4096))*4096
				for j := range n {
					wbuf[j] = byte(r.Uint32())
				}
				wfd := fd
				if i%3 == 0 {
					wfd = dsync
				}
				if got, err := unix.Pwrite(wfd, wbuf[:n], off); err != nil || got != n {
					t.Errorf("pwrite %d+%d: %d, %v", off, n, got, err)
					return
				}
				mu.Lock()
				copy(model[off:], wbuf[:n])
				mu.Unlock()
				if got, err := unix.Pread(fd, rbuf[:n], off); err != nil || got != n || !bytes.Equal(rbuf[:n], wbuf[:n]) {
					t.Errorf("read back %d+%d: %d, %v", off, n, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if err := unix.Fsync(fd); err != nil {
		t.Fatal(err)
	}

	// A discard of 1 MiB.
	rng := [2]uint64{4 << 20, 1 << 20}
	if err := ioctlPtr(fd, unix.BLKDISCARD, &rng); err != nil {
		t.Fatalf("BLKDISCARD: %v", err)
	}
	clear(model[4<<20 : 5<<20])

	got, err := os.ReadFile(backing)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, model) {
		i := 0
		for got[i] == model[i] {
			i++
		}
		t.Fatalf("backing file differs from what was written, first at byte %d", i)
	}
	st := e.Stats()
	t.Logf("stats: %+v", st)
	if st.FUAWrites == 0 || st.Flushes == 0 || st.Trims == 0 {
		t.Fatalf("the kernel sent no FUA write, flush or trim: %+v", st)
	}
}

// TestVMCloseMounted: Close refuses a mounted device and changes nothing;
// after unmounting, Close succeeds and the kernel releases the device.
func TestVMCloseMounted(t *testing.T) {
	requireNBD(t)
	dev, _ := backingFile(t, 64<<20, nil)
	fds := openFDs(t)
	e := expose(t, dev, Options{Index: AnyIndex})
	run(t, "mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", e.Path())
	mnt := filepath.Join(t.TempDir(), "mnt")
	mount(t, e.Path(), mnt)
	if err := e.Close(vmCtx(t)); !errors.Is(err, ErrBusy) {
		t.Fatalf("Close of a mounted device: %v, want ErrBusy", err)
	}
	// Still served.
	if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("still here"), 0o644); err != nil {
		t.Fatal(err)
	}
	unix.Sync()
	select {
	case <-e.Done():
		t.Fatal("connections ended after a refused Close")
	default:
	}
	umount(t, mnt)
	if err := e.Close(vmCtx(t)); err != nil {
		t.Fatalf("Close after umount: %v", err)
	}
	if inUse(t, e.Index()) {
		t.Fatalf("nbd%d still in use after Close", e.Index())
	}
	if err := e.Close(vmCtx(t)); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if n := openFDs(t); n != fds {
		t.Fatalf("%d descriptors open after Close, %d before Expose", n, fds)
	}
}

// openFDs counts this process's open descriptors, once the runtime's
// poller (which a socket starts) is up.
func openFDs(t *testing.T) int {
	t.Helper()
	kfd, c, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(kfd)
	c.Close()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestVMCloseHeldOpen: a process holds the device open (not exclusively)
// with unflushed writes in the kernel's cache. Close flushes them to the
// backing file, disconnects, and returns ErrStillOpen when its context
// ends; the holder's I/O fails from then on; once it closes the device,
// Close succeeds.
func TestVMCloseHeldOpen(t *testing.T) {
	requireNBD(t)
	dev, backing := backingFile(t, 16<<20, nil)
	e := expose(t, dev, Options{Index: AnyIndex})
	held, err := os.OpenFile(e.Path(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	data := pattern(0x5a, 1<<20)
	if _, err := held.WriteAt(data, 2<<20); err != nil { // page cache only
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err = e.Close(ctx)
	cancel()
	if !errors.Is(err, ErrStillOpen) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Close while held open: %v, want ErrStillOpen and the deadline", err)
	}
	select {
	case <-e.Done():
	default:
		t.Fatal("connections still up after Close disconnected")
	}
	got := make([]byte, len(data))
	if f, err := os.Open(backing); err != nil {
		t.Fatal(err)
	} else {
		f.ReadAt(got, 2<<20)
		f.Close()
	}
	if !bytes.Equal(got, data) {
		t.Fatal("Close did not flush the kernel's cache to the device")
	}
	direct, err := unix.Open(e.Path(), unix.O_RDONLY|unix.O_DIRECT|unix.O_CLOEXEC, 0)
	if err == nil {
		buf := alignedBuf(t, 4096)
		_, rerr := unix.Pread(direct, buf, 0)
		unix.Close(direct)
		if rerr == nil {
			t.Fatal("a read of the disconnected device succeeded")
		}
		t.Logf("read after disconnect: %v", rerr)
	}
	held.Close()
	if err := e.Close(vmCtx(t)); err != nil {
		t.Fatalf("Close once released: %v", err)
	}
	if inUse(t, e.Index()) {
		t.Fatalf("nbd%d still in use after Close", e.Index())
	}
}

// TestVMSecondExpose: an index exported by this process cannot be
// exported again, nor cleaned up.
func TestVMSecondExpose(t *testing.T) {
	requireNBD(t)
	dev, _ := backingFile(t, 4<<20, nil)
	e := expose(t, dev, Options{Index: AnyIndex})
	if _, err := Expose(vmCtx(t), dev, Options{Index: e.Index()}); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Expose of nbd%d: %v, want ErrInUse", e.Index(), err)
	}
	if err := CleanUp(vmCtx(t), e.Index()); !errors.Is(err, ErrInUse) {
		t.Fatalf("CleanUp of an exported device: %v, want ErrInUse", err)
	}
	devs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(devs, func(d DeviceInfo) bool { return d.Index == e.Index() })
	if i < 0 || !devs[i].InUse || !devs[i].Here || devs[i].Size != 4<<20 {
		t.Fatalf("List: %+v", devs)
	}
}

// TestVMCleanUpLeftover leaves a device connected with its server gone, as
// a crashed daemon would, then finds it by its backend identifier and
// cleans it up; its index can then be exported again.
func TestVMCleanUpLeftover(t *testing.T) {
	requireNBD(t)
	backend := fmt.Sprintf("vigil-test/leftover-%d", os.Getpid())
	g, err := dialGenl()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	kfd, conn, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	index, err := g.connect(connectConfig{
		index: AnyIndex, size: 16 << 20, blockSize: 4096,
		flags: serverHasFlags | serverSendFlush, fds: []int{kfd}, backend: backend,
	})
	unix.Close(kfd)
	conn.Close() // the "crash": the server's end is gone
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { CleanUp(context.Background(), index) })

	devs, err := List()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(devs, func(d DeviceInfo) bool { return d.Index == index })
	if i < 0 || !devs[i].InUse || devs[i].Backend != backend || devs[i].Here {
		t.Fatalf("leftover nbd%d in List: %+v", index, devs)
	}
	dev, _ := backingFile(t, 16<<20, nil)
	if _, err := Expose(vmCtx(t), dev, Options{Index: index}); !errors.Is(err, ErrInUse) {
		t.Fatalf("Expose over a leftover device: %v, want ErrInUse", err)
	} else {
		t.Logf("Expose over the leftover: %v", err)
	}
	cleaned, err := CleanUpBackend(vmCtx(t), backend)
	if err != nil || !slices.Equal(cleaned, []int{index}) {
		t.Fatalf("CleanUpBackend: %v, %v; want [%d]", cleaned, err, index)
	}
	if inUse(t, index) {
		t.Fatalf("nbd%d in use after CleanUp", index)
	}
	if err := CleanUp(vmCtx(t), index); err != nil {
		t.Fatalf("CleanUp of a free device: %v", err)
	}
	e := expose(t, dev, Options{Index: index})
	if e.Index() != index {
		t.Fatalf("exposed on nbd%d, want nbd%d", e.Index(), index)
	}
}
