package nbd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileDevice is a Device on a regular file or a block device. FUA writes
// use pwritev2 with RWF_DSYNC (or write then fdatasync where the file
// system refuses it), Flush is fdatasync, and Trim punches a hole in a
// file or issues BLKDISCARD on a block device. It is safe for concurrent
// use.
type FileDevice struct {
	f       *os.File
	size    int64
	bs      int
	blkdev  bool
	noDSync atomic.Bool // RWF_DSYNC refused once: write then fdatasync
}

var _ interface {
	Device
	Trimmer
} = (*FileDevice)(nil)

// OpenFile opens path, a regular file or a block device, as a Device of
// its current size with block size bs (DefaultBlockSize when 0). The size
// must be a multiple of bs.
func OpenFile(path string, bs int) (*FileDevice, error) {
	if bs == 0 {
		bs = DefaultBlockSize
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("open device file: %w", err)
	}
	d, err := newFileDevice(f, bs)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open device file %s: %w", path, err)
	}
	return d, nil
}

func newFileDevice(f *os.File, bs int) (*FileDevice, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	d := &FileDevice{f: f, bs: bs}
	switch {
	case fi.Mode().IsRegular():
		d.size = fi.Size()
	case fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0:
		d.blkdev = true
		var size uint64
		if err := control(f, func(fd int) error { return ioctlPtr(fd, unix.BLKGETSIZE64, &size) }); err != nil {
			return nil, fmt.Errorf("BLKGETSIZE64: %w", err)
		}
		d.size = int64(size)
	default:
		return nil, fmt.Errorf("%v: neither a regular file nor a block device", fi.Mode().Type())
	}
	if err := checkGeometry(d.size, bs); err != nil {
		return nil, err
	}
	return d, nil
}

// control runs fn on f's descriptor, which stays open meanwhile.
func control(f *os.File, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = fn(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ReadAt reads from the file.
func (d *FileDevice) ReadAt(p []byte, off int64) (int, error) {
	n, err := d.f.ReadAt(p, off)
	if err == io.EOF && n == len(p) {
		err = nil
	}
	return n, err
}

// WriteAt writes p at off; with fua the data is durable when it returns.
func (d *FileDevice) WriteAt(p []byte, off int64, fua bool) error {
	if !fua {
		_, err := d.f.WriteAt(p, off)
		return err
	}
	if !d.noDSync.Load() {
		err := control(d.f, func(fd int) error {
			for len(p) > 0 {
				n, err := unix.Pwritev2(fd, [][]byte{p}, off, unix.RWF_DSYNC)
				if err == syscall.EINTR {
					continue
				}
				if err != nil {
					return err
				}
				p, off = p[n:], off+int64(n)
			}
			return nil
		})
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EINVAL) {
			return err
		}
		// A kernel or file system without RWF_DSYNC; from now on write
		// then sync.
		d.noDSync.Store(true)
	}
	if _, err := d.f.WriteAt(p, off); err != nil {
		return err
	}
	return d.Flush()
}

// Flush makes every completed write durable (fdatasync).
func (d *FileDevice) Flush() error {
	return control(d.f, func(fd int) error {
		for {
			err := unix.Fdatasync(fd)
			if err != syscall.EINTR {
				return err
			}
		}
	})
}

// Trim punches a hole in a file (it reads back as zeros) or discards the
// range of a block device.
func (d *FileDevice) Trim(off, n int64) error {
	err := control(d.f, func(fd int) error {
		if d.blkdev {
			r := [2]uint64{uint64(off), uint64(n)}
			return ioctlPtr(fd, unix.BLKDISCARD, &r)
		}
		return unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	})
	if errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("trim: %w (%w)", ErrNotSupported, err)
	}
	return err
}

// Size is the file's size when opened.
func (d *FileDevice) Size() int64 { return d.size }

// BlockSize is the block size OpenFile was given.
func (d *FileDevice) BlockSize() int { return d.bs }

// Close closes the file.
func (d *FileDevice) Close() error { return d.f.Close() }

// ioctlPtr issues an ioctl whose argument is a pointer to arg.
func ioctlPtr[T any](fd int, req uint, arg *T) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(unsafe.Pointer(arg)))
	if e != 0 {
		return e
	}
	return nil
}
