//go:build !linux

package engine

import (
	"os"

	"golang.org/x/sys/unix"
)

func datasync(fd uintptr) error { return unix.Fsync(int(fd)) }

// Prefetch does nothing here.
func (DataFile) Prefetch(off, n int64) {}

// openDirect finds no direct I/O here.
func openDirect(*os.File) (*os.File, int, error) { return nil, 0, nil }

// writeDSync writes p at off, then syncs the file.
func writeDSync(f *os.File, p []byte, off int64) (int, error) {
	n, err := f.WriteAt(p, off)
	if err == nil {
		err = f.Sync()
	}
	return n, err
}
