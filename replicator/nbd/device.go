package nbd

import (
	"errors"
	"fmt"
)

// Device is what the server exposes: a disk of Size bytes. The server
// calls its methods concurrently, from one goroutine per request in
// flight, with requests already checked against Size (and, for writes,
// against ServerOptions.ReadOnly): off >= 0, len(p) > 0, off+len(p) <= Size.
// The server reuses p once ReadAt or WriteAt returns: a Device must not
// keep it (as io.ReaderAt and io.WriterAt say), nor modify it in WriteAt.
type Device interface {
	// ReadAt reads len(p) bytes at off, as io.ReaderAt does: it returns
	// len(p) and a nil error (io.EOF is also accepted with a full read), or
	// an error.
	ReadAt(p []byte, off int64) (int, error)
	// WriteAt writes p at off. It returns once the write is complete:
	// visible to every later ReadAt and covered by every later Flush. With
	// fua it returns only once the data is durable.
	WriteAt(p []byte, off int64, fua bool) error
	// Flush makes durable every write whose WriteAt returned before Flush
	// was called. Writes in flight during a Flush may or may not be
	// covered.
	Flush() error
	// Size is the device's size in bytes, a multiple of BlockSize; it does
	// not change while the device is served.
	Size() int64
	// BlockSize is the device's logical block size: a power of two from
	// 512 to 4096 (the kernel's limits). The kernel sends requests aligned
	// to it, but the server does not require that.
	BlockSize() int
}

// Trimmer is a Device that can discard ranges. Only a Device that
// implements it is exposed with TRIM (discard) support.
type Trimmer interface {
	// Trim discards n bytes at off: later reads of the range may return
	// anything (FileDevice returns zeros). It may return
	// ErrNotSupported if discarding turns out to be unavailable.
	Trim(off, n int64) error
}

// Device errors.
var (
	// ErrNotSupported is an operation the device does not support; the
	// client gets ENOTSUP.
	ErrNotSupported = errors.New("not supported")
	// ErrReadOnly is a write to a read-only device; the client gets EPERM.
	ErrReadOnly = errors.New("read-only")
)

// Block size limits.
const (
	MinBlockSize     = 512
	MaxBlockSize     = 4096
	DefaultBlockSize = 4096
)

// checkGeometry validates a device's size and block size.
func checkGeometry(size int64, bs int) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("block size %d: not a power of two in [%d, %d]", bs, MinBlockSize, MaxBlockSize)
	}
	if size <= 0 || size%int64(bs) != 0 {
		return fmt.Errorf("size %d: not a positive multiple of the block size %d", size, bs)
	}
	return nil
}
