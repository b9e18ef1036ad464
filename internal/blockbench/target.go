package blockbench

import (
	"errors"
	"fmt"
	"io"
	"unsafe"
)

// Align is the alignment of the buffers workloads write from, and of
// their offsets and sizes: 4 KiB suits O_DIRECT on any device whose
// logical block is 512 bytes or 4 KiB.
const Align = 4096

// Target is what a workload writes to: a file, a block device, a
// replicated volume.
type Target interface {
	// WriteAt writes all of p at byte offset off. With sync set it has
	// FUA semantics: p is durable when WriteAt returns nil.
	WriteAt(p []byte, off int64, sync bool) error
	// Flush makes every write completed before it durable.
	Flush() error
}

// WriteSyncer is a file as the mirror engine sees its volume: positioned
// writes, and Sync (fdatasync) to make them durable. *os.File is one; the
// engine's DataFile is one that writes aligned blocks around the page
// cache and has FUA writes (WriteAtFUA).
type WriteSyncer interface {
	io.WriterAt
	Sync() error
}

// fuaWriter is a WriteSyncer that makes one write durable by itself.
type fuaWriter interface {
	WriteAtFUA(p []byte, off int64) (int, error)
}

// FileTarget is a Target over a file written exactly as the mirror engine
// writes its local volume: a sync write is the file's FUA write when it
// has one (WriteAtFUA), else the write followed by Sync. FileTarget over
// the engine's backing file is therefore its apples-to-apples baseline.
type FileTarget struct {
	File WriteSyncer
}

// WriteAt writes p at off, durably if sync is set.
func (b FileTarget) WriteAt(p []byte, off int64, sync bool) error {
	if f, ok := b.File.(fuaWriter); ok && sync {
		if _, err := f.WriteAtFUA(p, off); err != nil {
			return fmt.Errorf("fua write: %w", err)
		}
		return nil
	}
	if _, err := b.File.WriteAt(p, off); err != nil {
		return err
	}
	if sync {
		if err := b.File.Sync(); err != nil {
			return fmt.Errorf("sync: %w", err)
		}
	}
	return nil
}

// Flush syncs the file.
func (b FileTarget) Flush() error { return b.File.Sync() }

// ErrUnaligned reports an offset, size or buffer address that is not a
// multiple of Align.
var ErrUnaligned = errors.New("blockbench: not aligned to 4 KiB")

// AlignedBuffer returns a zeroed buffer of n bytes whose first byte's
// address is a multiple of Align, as O_DIRECT needs. n must not be
// negative.
func AlignedBuffer(n int) []byte {
	if n < 0 {
		panic("blockbench: negative buffer size")
	}
	b := make([]byte, n+Align)
	skip := 0
	if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(b))) % Align); r != 0 {
		skip = Align - r
	}
	return b[skip : skip+n : skip+n]
}

// IsAligned reports whether p starts at a multiple of Align and its
// length is one.
func IsAligned(p []byte) bool {
	return len(p)%Align == 0 && uintptr(unsafe.Pointer(unsafe.SliceData(p)))%Align == 0
}
