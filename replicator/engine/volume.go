package engine

import (
	"errors"
	"os"
	"unsafe"
)

// FUAWriter is a Volume that makes a single write durable by itself (a
// FUA write), without a Sync of every write before it. The engine uses
// it for FUA writes when the Volume has it; otherwise a FUA write is
// WriteAt followed by Sync.
type FUAWriter interface {
	WriteAtFUA(p []byte, off int64) (int, error)
}

// writeLocal writes data at off to the local volume, durably if fua.
func (e *Engine) writeLocal(data []byte, off uint64, fua bool) error {
	if fua {
		if w, ok := e.cfg.Data.(FUAWriter); ok {
			_, err := w.WriteAtFUA(data, int64(off))
			return err
		}
	}
	if _, err := e.cfg.Data.WriteAt(data, int64(off)); err != nil {
		return err
	}
	if fua {
		return e.cfg.Data.Sync()
	}
	return nil
}

// DataFile is a data partition held in an *os.File, a block device or a
// preallocated file, as the engine's Volume.
//
// A DataFile made by NewDataFile writes around the page cache where it
// can (O_DIRECT), as DRBD submits its writes straight to the backing
// device: the file system above the mirror has its own page cache, so a
// second copy of every block under it costs a memory copy and memory.
// Such a write must be aligned (buffer address, offset and length) to the
// file's direct I/O alignment; other writes go through the page cache,
// which the kernel keeps coherent with direct writes. Reads go through the
// page cache, so a resync source's read-ahead (Prefetch) serves them.
//
// Sync makes written data durable, and the metadata needed to read it
// back, without the inode times that an fsync also commits (fdatasync):
// on a file-backed partition that is a journal commit per flush saved. A
// FUA write (WriteAtFUA) is one write with RWF_DSYNC: the block layer's
// FUA write where the device has it, instead of a flush of everything
// written before.
//
// A DataFile literal, DataFile{File: f}, writes through the page cache
// only.
type DataFile struct {
	*os.File
	// direct is a second descriptor of the same file opened with
	// O_DIRECT, nil when the file does not support it.
	direct *os.File
	// align is the alignment direct writes need: buffer address, offset
	// and length.
	align int
}

// NewDataFile returns f as a Volume that writes aligned blocks around the
// page cache when f's file system or device supports direct I/O, and
// through it otherwise. Close closes the descriptor it adds, and f.
func NewDataFile(f *os.File) (DataFile, error) {
	d := DataFile{File: f}
	direct, align, err := openDirect(f)
	if err != nil {
		return d, err
	}
	d.direct, d.align = direct, align
	return d, nil
}

// Direct reports whether aligned writes bypass the page cache.
func (d DataFile) Direct() bool { return d.direct != nil }

// pick returns the descriptor a write of p at off goes through.
func (d DataFile) pick(p []byte, off int64) *os.File {
	if d.direct == nil || len(p) == 0 {
		return d.File
	}
	a := d.align
	if off%int64(a) != 0 || len(p)%a != 0 || uintptr(unsafe.Pointer(unsafe.SliceData(p)))%uintptr(a) != 0 {
		return d.File
	}
	return d.direct
}

// WriteAt writes p at off, around the page cache when p, off and len(p)
// are aligned for direct I/O.
func (d DataFile) WriteAt(p []byte, off int64) (int, error) {
	return d.pick(p, off).WriteAt(p, off)
}

// WriteAtFUA writes p at off and makes it durable before it returns
// (RWF_DSYNC), without waiting for other writes.
func (d DataFile) WriteAtFUA(p []byte, off int64) (int, error) {
	return writeDSync(d.pick(p, off), p, off)
}

// Close closes both descriptors.
func (d DataFile) Close() error {
	var err error
	if d.direct != nil {
		err = d.direct.Close()
	}
	return errors.Join(err, d.File.Close())
}

// Sync makes the data written so far durable (fdatasync where the system
// has it).
func (d DataFile) Sync() error {
	rc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = datasync(fd) }); err != nil {
		return err
	}
	if serr != nil {
		return &os.PathError{Op: "fdatasync", Path: d.Name(), Err: serr}
	}
	return nil
}
