package blockbench

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Device is a Target on a block device or a preallocated file, written with
// O_DIRECT: no page cache, so a completed write has reached the device
// (not necessarily its volatile cache). Sync writes go through a second
// descriptor opened with O_DIRECT|O_DSYNC, which the block layer turns into
// a FUA write (or a write and a cache flush); Flush is fdatasync. Buffers,
// offsets and sizes must be multiples of Align (AlignedBuffer makes such
// buffers; the workloads use them). Its methods are safe for concurrent
// use.
type Device struct {
	path  string
	plain *os.File // O_DIRECT
	dsync *os.File // O_DIRECT|O_DSYNC
	size  int64
}

// OpenDevice opens an existing block device or regular file at path for
// direct writes. Its size is the device's, or the file's, rounded down to
// Align; an empty one is refused. A file system without O_DIRECT (tmpfs
// before Linux 6.6) is refused with an error saying so.
func OpenDevice(path string) (*Device, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("blockbench: %w", err)
	}
	if m := st.Mode(); !m.IsRegular() && m&os.ModeDevice == 0 {
		return nil, fmt.Errorf("blockbench: %s is neither a regular file nor a block device", path)
	} else if m&os.ModeCharDevice != 0 {
		return nil, fmt.Errorf("blockbench: %s is a character device, not a block device", path)
	}
	open := func(extra int) (*os.File, error) {
		f, err := os.OpenFile(path, os.O_RDWR|unix.O_DIRECT|extra, 0)
		if errors.Is(err, unix.EINVAL) {
			return nil, fmt.Errorf("blockbench: open %s: the file system does not support O_DIRECT: %w", path, err)
		}
		if err != nil {
			return nil, fmt.Errorf("blockbench: %w", err)
		}
		return f, nil
	}
	plain, err := open(0)
	if err != nil {
		return nil, err
	}
	dsync, err := open(unix.O_DSYNC)
	if err != nil {
		plain.Close()
		return nil, err
	}
	n, err := plain.Seek(0, io.SeekEnd)
	if err != nil {
		plain.Close()
		dsync.Close()
		return nil, fmt.Errorf("blockbench: size of %s: %w", path, err)
	}
	n &^= Align - 1
	if n == 0 {
		plain.Close()
		dsync.Close()
		return nil, fmt.Errorf("blockbench: %s is smaller than %d bytes", path, Align)
	}
	return &Device{path: path, plain: plain, dsync: dsync, size: n}, nil
}

// Size returns the writable size in bytes, a multiple of Align.
func (d *Device) Size() int64 { return d.size }

// Path returns the path the device was opened at.
func (d *Device) Path() string { return d.path }

// WriteAt writes p at off with O_DIRECT, and O_DSYNC if sync is set. p's
// address and length and off must be multiples of Align, and the range
// must lie within Size.
func (d *Device) WriteAt(p []byte, off int64, sync bool) error {
	if !IsAligned(p) || off%Align != 0 {
		return fmt.Errorf("write %d bytes at %d: %w", len(p), off, ErrUnaligned)
	}
	if off < 0 || int64(len(p)) > d.size-off {
		return fmt.Errorf("write %d bytes at %d: beyond the %d bytes of %s", len(p), off, d.size, d.path)
	}
	f := d.plain
	if sync {
		f = d.dsync
	}
	if _, err := f.WriteAt(p, off); err != nil {
		return fmt.Errorf("write at %d: %w", off, err)
	}
	return nil
}

// Flush makes completed writes durable (fdatasync, a cache flush on a
// block device).
func (d *Device) Flush() error {
	if err := unix.Fdatasync(int(d.plain.Fd())); err != nil {
		return fmt.Errorf("fdatasync %s: %w", d.path, err)
	}
	return nil
}

// Close closes both descriptors.
func (d *Device) Close() error {
	return errors.Join(d.plain.Close(), d.dsync.Close())
}
