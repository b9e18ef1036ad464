//go:build !linux

package engine

import "golang.org/x/sys/unix"

func datasync(fd uintptr) error { return unix.Fsync(int(fd)) }

// Prefetch does nothing here.
func (DataFile) Prefetch(off, n int64) {}
